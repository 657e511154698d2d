//! Prometheus metrics on `prometheus-client`: one [`Registry`] of counter and
//! gauge families with typed label sets, rendered in the Prometheus text format
//! (0.0.4) on the ops listener's `/metrics`.
//!
//! The latency histograms are this module's own [`Histogram`] (fixed buckets,
//! one atomic per bucket) encoded through prometheus-client's encoder:
//! prometheus-client's `Histogram` takes a mutex per observation, and the
//! request histogram is shared by every request on every core.
//!
//! Label values come only from the config (path ids) or from `&'static str`
//! (operations, decisions, reasons, token API actions), plus HTTP status codes,
//! so cardinality stays bounded. Never a token, never a client address.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use super::Outcome;

/// The `Content-Type` of `/metrics`.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Histogram bucket upper bounds, in seconds.
const BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// A latency histogram with fixed buckets, recorded without a lock. Clones share
/// their counts (the registry holds one clone, the recorder another).
#[derive(Clone, Debug, Default)]
pub struct Histogram(Arc<HistogramCounts>);

#[derive(Debug)]
struct HistogramCounts {
    /// Per bucket (not cumulative); the last slot is `+Inf`.
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Default for HistogramCounts {
    fn default() -> Self {
        HistogramCounts { counts: std::array::from_fn(|_| AtomicU64::new(0)), sum_micros: AtomicU64::new(0) }
    }
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let slot = BUCKETS.iter().position(|b| secs <= *b).unwrap_or(BUCKETS.len());
        self.0.counts[slot].fetch_add(1, Ordering::Relaxed);
        self.0.sum_micros.fetch_add(d.as_micros().min(u128::from(u64::MAX)) as u64, Ordering::Relaxed);
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let mut buckets = [(0.0, 0); BUCKETS.len() + 1];
        for (i, slot) in buckets.iter_mut().enumerate() {
            *slot = (BUCKETS.get(i).copied().unwrap_or(f64::INFINITY), self.0.counts[i].load(Ordering::Relaxed));
        }
        let count = buckets.iter().map(|b| b.1).sum();
        let sum = self.0.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// What the pipeline reports for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLabels {
    /// A configured path id, or `-` before routing found one.
    pub path_id: String,
    pub operation: &'static str,
    /// What became of the request; gives the `decision` and `reason` labels.
    pub outcome: Outcome,
    pub status: u16,
}

/// The labels of `tilegate_requests_total`, in the order they are written.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestSeries {
    path_id: String,
    operation: &'static str,
    decision: &'static str,
    reason: &'static str,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PathLabels {
    path_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct UpstreamErrorLabels {
    path_id: String,
    kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TokenApiLabels {
    action: &'static str,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StoreFailureLabels {
    op: &'static str,
    kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StoreUpLabels {
    op: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct VersionLabels {
    version: &'static str,
}

/// Every metric tilegate exports, registered once.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestSeries, Counter>,
    request_duration: Histogram,
    upstream_duration: Family<PathLabels, Histogram>,
    upstream_errors: Family<UpstreamErrorLabels, Counter>,
    store_errors: Counter,
    token_api: Family<TokenApiLabels, Counter>,
    reloads: Family<ResultLabels, Counter>,
    config_loaded_at: Gauge,
    tls_handshakes: Family<ResultLabels, Counter>,
    connections_open: Gauge,
    connections_total: Counter,
    connections_refused: Counter,
    // Saturation (src/server/admission.rs, src/server/body.rs).
    connections_refused_per_ip: Counter,
    connections_shed: Family<StateLabels, Counter>,
    body_timeouts: Counter,
    responses_cut: Family<PathLabels, Counter>,
}

/// How a TLS handshake ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handshake {
    Ok,
    Failed,
    TimedOut,
}

impl Handshake {
    const ALL: [Handshake; 3] = [Handshake::Ok, Handshake::Failed, Handshake::TimedOut];
    fn label(self) -> &'static str {
        match self {
            Handshake::Ok => "ok",
            Handshake::Failed => "failed",
            Handshake::TimedOut => "timeout",
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn unix_now() -> i64 {
    crate::store::now_unix()
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        // Counters are registered without `_total`: the encoder appends it.
        let build = Family::<VersionLabels, Gauge>::default();
        build.get_or_create(&VersionLabels { version: env!("CARGO_PKG_VERSION") }).set(1);
        registry.register("tilegate_build_info", "The running tilegate version", build);
        let started: Gauge = Gauge::default();
        started.set(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64));
        registry.register("tilegate_start_time_seconds", "When the process started (unix seconds)", started);

        let requests = Family::default();
        registry.register(
            "tilegate_requests",
            "Requests by path id, operation, decision (allow, deny, error, public), deny reason and status",
            requests.clone(),
        );
        let request_duration = Histogram::default();
        registry.register(
            "tilegate_request_duration_seconds",
            "Time from request head to the end of the response body",
            request_duration.clone(),
        );
        let upstream_duration = Family::default();
        registry.register(
            "tilegate_upstream_duration_seconds",
            "Time an upstream took to send its response head, by path id",
            upstream_duration.clone(),
        );
        let upstream_errors = Family::default();
        registry.register(
            "tilegate_upstream_errors",
            "Upstream failures by path id and kind (unavailable, timeout, bad_document)",
            upstream_errors.clone(),
        );
        let store_errors = Counter::default();
        registry.register("tilegate_store_errors", "Token store queries that failed", store_errors.clone());
        let token_api = Family::default();
        registry.register("tilegate_token_api_requests", "Token API calls by action and status", token_api.clone());
        let reloads = Family::<ResultLabels, Counter>::default();
        for result in ["ok", "failed"] {
            let _ = reloads.get_or_create(&ResultLabels { result });
        }
        registry.register(
            "tilegate_config_reloads",
            "Config reloads by result (ok, failed: the old config stays)",
            reloads.clone(),
        );
        let config_loaded_at = Gauge::default();
        config_loaded_at.set(unix_now());
        registry.register(
            "tilegate_config_loaded_timestamp_seconds",
            "When the config in use was loaded (unix seconds)",
            config_loaded_at.clone(),
        );
        let tls_handshakes = Family::<ResultLabels, Counter>::default();
        for h in Handshake::ALL {
            let _ = tls_handshakes.get_or_create(&ResultLabels { result: h.label() });
        }
        registry.register(
            "tilegate_tls_handshakes",
            "TLS handshakes by result (ok, failed, timeout)",
            tls_handshakes.clone(),
        );
        let connections_open = Gauge::default();
        registry.register("tilegate_connections_open", "Client connections open now", connections_open.clone());
        let connections_total = Counter::default();
        registry.register("tilegate_connections", "Client connections accepted", connections_total.clone());
        let connections_refused = Counter::default();
        registry.register(
            "tilegate_connections_refused",
            "Client connections closed at once because server.max_connections was reached",
            connections_refused.clone(),
        );
        let connections_refused_per_ip = Counter::default();
        registry.register(
            "tilegate_connections_refused_per_ip",
            "Client connections closed at once because their address held server.max_connections_per_ip",
            connections_refused_per_ip.clone(),
        );
        let connections_shed = Family::<StateLabels, Counter>::default();
        for state in ["head", "idle"] {
            let _ = connections_shed.get_or_create(&StateLabels { state });
        }
        registry.register(
            "tilegate_connections_shed",
            "Connections closed at server.max_connections to admit a new one, by state (head: no complete request head yet; idle: no request in flight)",
            connections_shed.clone(),
        );
        let body_timeouts = Counter::default();
        registry.register(
            "tilegate_request_body_timeouts",
            "Request bodies cut for arriving slower than server.body_read_timeout and server.body_min_rate allow",
            body_timeouts.clone(),
        );
        let responses_cut = Family::default();
        registry.register(
            "tilegate_responses_cut",
            "Responses that did not reach their end (body error, or the client went away), by path id",
            responses_cut.clone(),
        );
        Metrics {
            registry,
            requests,
            request_duration,
            upstream_duration,
            upstream_errors,
            store_errors,
            token_api,
            reloads,
            config_loaded_at,
            tls_handshakes,
            connections_open,
            connections_total,
            connections_refused,
            connections_refused_per_ip,
            connections_shed,
            body_timeouts,
            responses_cut,
        }
    }

    /// One finished request (called once per request, when its response body ended).
    pub fn request(&self, labels: RequestLabels, total: Duration, upstream: Option<Duration>) {
        let RequestLabels { path_id, operation, outcome, status } = labels;
        if let Some(kind) = outcome.upstream_failure() {
            let key = UpstreamErrorLabels { path_id: path_id.clone(), kind: kind.as_str() };
            self.upstream_errors.get_or_create(&key).inc();
        }
        self.request_duration.observe(total);
        let series =
            RequestSeries { path_id, operation, decision: outcome.decision(), reason: outcome.reason(), status };
        self.requests.get_or_create(&series).inc();
        if let Some(up) = upstream {
            let key = PathLabels { path_id: series.path_id };
            self.upstream_duration.get_or_create(&key).observe(up);
        }
    }

    /// A response that did not reach its end (body error, client gone), by path id
    /// (`-` before routing found one). Also counted in `tilegate_requests_total`.
    pub fn response_cut(&self, path_id: &str) {
        self.responses_cut.get_or_create(&PathLabels { path_id: path_id.to_owned() }).inc();
    }

    /// A token store query failed.
    pub fn store_error(&self) {
        self.store_errors.inc();
    }

    /// One token API call: `action` is a literal such as `"create"`, `"list"`,
    /// `"get"` or `"revoke"`; `status` the answer's status code.
    pub fn token_api(&self, action: &'static str, status: u16) {
        self.token_api.get_or_create(&TokenApiLabels { action, status }).inc();
    }

    /// A config reload finished (`ok = false`: the old config stays).
    pub fn reload(&self, ok: bool) {
        self.reloads.get_or_create(&ResultLabels { result: if ok { "ok" } else { "failed" } }).inc();
        if ok {
            self.config_loaded_at.set(unix_now());
        }
    }

    pub fn handshake(&self, outcome: Handshake) {
        self.tls_handshakes.get_or_create(&ResultLabels { result: outcome.label() }).inc();
    }

    /// A connection was accepted (`+1`) or closed (`-1`).
    pub fn connection(&self, opened: bool) {
        if opened {
            self.connections_total.inc();
            self.connections_open.inc();
        } else {
            self.connections_open.dec();
        }
    }

    /// A connection was closed at once because `server.max_connections` was reached
    /// and no open connection could be shed.
    pub fn connection_refused(&self) {
        self.connections_refused.inc();
    }

    /// A connection was closed at once because its address held `server.max_connections_per_ip`.
    pub fn connection_refused_per_ip(&self) {
        self.connections_refused_per_ip.inc();
    }

    /// A connection was shed at `server.max_connections`; `state` is `head` or `idle`.
    pub fn connection_shed(&self, state: &'static str) {
        self.connections_shed.get_or_create(&StateLabels { state }).inc();
    }

    /// A request body was cut for being too slow.
    pub fn body_timeout(&self) {
        self.body_timeouts.inc();
    }

    /// The text exposition. `cache` is (hits, misses, entries) of the grant cache
    /// and `paths` the number of paths in the config in use: values read at scrape
    /// time, written after the registered metrics.
    pub fn render(&self, cache: (u64, u64, usize), paths: usize) -> String {
        self.render_with_store(cache, paths, None)
    }

    /// [`Metrics::render`] with the store's health: failures by operation and
    /// kind, and whether reads and writes work now.
    pub fn render_with_store(
        &self,
        cache: (u64, u64, usize),
        paths: usize,
        store: Option<&crate::store::Health>,
    ) -> String {
        let mut scrape = Registry::default();
        if let Some(health) = store {
            let family = Family::<StoreFailureLabels, Counter>::default();
            for (write, kind, n) in health.errors() {
                let c = family.get_or_create(&StoreFailureLabels {
                    op: if write { "write" } else { "read" },
                    kind: kind.as_str(),
                });
                c.inc_by(n);
            }
            scrape.register(
                "tilegate_store_failures",
                "Token store calls that failed, by op (read, write) and kind (timeout, busy, full, read_only, unreachable, stale, corrupt, other)",
                family,
            );
            let up = Family::<StoreUpLabels, Gauge>::default();
            let report = health.report();
            up.get_or_create(&StoreUpLabels { op: "read" }).set(i64::from(report.read.is_ok()));
            up.get_or_create(&StoreUpLabels { op: "write" }).set(i64::from(report.write.is_ok()));
            scrape.register(
                "tilegate_store_up",
                "1 when the token store can be read (op=read) or written (op=write) now",
                up,
            );
            scrape.register(
                "tilegate_store_stale",
                "1 while the grant cache is older than store.max_stale (cached grants refused)",
                ConstGauge::new(i64::from(report.stale)),
            );
        }
        scrape.register(
            "tilegate_grant_cache_hits",
            "Token lookups answered by the grant cache",
            ConstCounter::new(cache.0),
        );
        scrape.register(
            "tilegate_grant_cache_misses",
            "Token lookups that went to the store",
            ConstCounter::new(cache.1),
        );
        scrape.register("tilegate_grant_cache_entries", "Grants held in the cache", ConstGauge::new(cache.2 as i64));
        scrape.register("tilegate_config_paths", "Paths declared in the config in use", ConstGauge::new(paths as i64));
        let mut out = String::with_capacity(8192);
        // Writing to a String cannot fail; an encoder error would leave the scrape short.
        for registry in [&self.registry, &scrape] {
            if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, registry) {
                tracing::error!(error = %e, "cannot encode the metrics");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(path: &str, status: u16) -> RequestLabels {
        RequestLabels { path_id: path.into(), operation: "xyz.tile", outcome: Outcome::Allowed, status }
    }

    #[test]
    fn counters_and_histograms_render_as_prometheus_text() {
        let m = Metrics::new();
        m.request(labels("osm", 200), Duration::from_millis(3), Some(Duration::from_millis(2)));
        m.request(labels("osm", 200), Duration::from_millis(30), Some(Duration::from_millis(20)));
        let mut timeout = labels("osm", 504);
        timeout.outcome =
            Outcome::UpstreamFailed { reason: "upstream_timeout", kind: super::super::UpstreamFailure::Timeout };
        m.request(timeout, Duration::from_secs(1), None);
        m.token_api("create", 201);
        m.reload(false);
        m.handshake(Handshake::Ok);
        m.response_cut("osm");
        let text = m.render((5, 2, 1), 3);
        for want in [
            "tilegate_requests_total{path_id=\"osm\",operation=\"xyz.tile\",decision=\"allow\",reason=\"-\",status=\"200\"} 2",
            "tilegate_requests_total{path_id=\"osm\",operation=\"xyz.tile\",decision=\"error\",reason=\"upstream_timeout\",status=\"504\"} 1",
            "tilegate_upstream_errors_total{path_id=\"osm\",kind=\"timeout\"} 1",
            "tilegate_responses_cut_total{path_id=\"osm\"} 1",
            "tilegate_request_duration_seconds_bucket{le=\"0.005\"} 1",
            "tilegate_request_duration_seconds_bucket{le=\"1\"} 3",
            "tilegate_request_duration_seconds_bucket{le=\"+Inf\"} 3",
            "tilegate_request_duration_seconds_count 3",
            "tilegate_upstream_duration_seconds_bucket{path_id=\"osm\",le=\"0.0025\"} 1",
            "tilegate_upstream_duration_seconds_count{path_id=\"osm\"} 2",
            "tilegate_grant_cache_hits_total 5",
            "tilegate_grant_cache_entries 1",
            "tilegate_config_paths 3",
            "tilegate_token_api_requests_total{action=\"create\",status=\"201\"} 1",
            "tilegate_config_reloads_total{result=\"failed\"} 1",
            "tilegate_config_reloads_total{result=\"ok\"} 0",
            "tilegate_tls_handshakes_total{result=\"ok\"} 1",
            "tilegate_tls_handshakes_total{result=\"timeout\"} 0",
            "tilegate_build_info{version=\"0.1.0\"} 1",
            "# TYPE tilegate_requests_total counter",
            "# TYPE tilegate_request_duration_seconds histogram",
            "# TYPE tilegate_connections_open gauge",
            "# HELP tilegate_store_errors_total Token store queries that failed.",
        ] {
            assert!(text.lines().any(|l| l == want), "missing `{want}` in\n{text}");
        }
        assert!(!text.contains("# EOF"), "Prometheus text, not OpenMetrics");
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::new();
        m.request(labels("a\"b\\c\nd", 200), Duration::from_millis(1), None);
        let text = m.render((0, 0, 0), 0);
        assert!(text.contains("path_id=\"a\\\"b\\\\c\\nd\""), "{text}");
    }
}
