//! Prometheus metrics: atomic counters and histograms, rendered as the text
//! exposition format on the ops listener's `/metrics`.
//!
//! Label values come only from the config (path ids) or from `&'static str`
//! (operations, decisions, reasons, token API actions), plus HTTP status codes,
//! so cardinality stays bounded. Never a token, never a client address.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;

/// Histogram bucket upper bounds, in seconds.
const BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// A latency histogram with fixed buckets.
pub struct Histogram {
    /// Per bucket (not cumulative); the last slot is `+Inf`.
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: std::array::from_fn(|_| AtomicU64::new(0)), sum_micros: AtomicU64::new(0) }
    }
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let slot = BUCKETS.iter().position(|b| secs <= *b).unwrap_or(BUCKETS.len());
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(d.as_micros().min(u128::from(u64::MAX)) as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.counts[BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {cumulative}");
    }
}

/// The labels of `tilegate_requests_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestLabels {
    /// A configured path id, or `-` before routing found one.
    pub path_id: String,
    pub operation: &'static str,
    pub decision: &'static str,
    pub reason: &'static str,
    pub status: u16,
}

/// Every metric tilegate exports.
pub struct Metrics {
    started: SystemTime,
    requests: DashMap<RequestLabels, AtomicU64>,
    request_duration: Histogram,
    upstream_duration: DashMap<String, Histogram>,
    upstream_errors: DashMap<(String, &'static str), AtomicU64>,
    store_errors: AtomicU64,
    token_api: DashMap<(&'static str, u16), AtomicU64>,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    config_loaded_at: AtomicU64,
    tls_handshakes: [AtomicU64; 3],
    connections_open: AtomicI64,
    connections_total: AtomicU64,
    connections_refused: AtomicU64,
    responses_cut: DashMap<String, AtomicU64>,
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

impl Metrics {
    pub fn new() -> Self {
        Metrics {
            started: SystemTime::now(),
            requests: DashMap::new(),
            request_duration: Histogram::default(),
            upstream_duration: DashMap::new(),
            upstream_errors: DashMap::new(),
            store_errors: AtomicU64::new(0),
            token_api: DashMap::new(),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            config_loaded_at: AtomicU64::new(crate::store::now_unix() as u64),
            tls_handshakes: std::array::from_fn(|_| AtomicU64::new(0)),
            connections_open: AtomicI64::new(0),
            connections_total: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            responses_cut: DashMap::new(),
        }
    }

    /// One finished request (called once per request, when its response body ended).
    pub fn request(&self, labels: RequestLabels, total: Duration, upstream: Option<Duration>) {
        if let Some(up) = upstream {
            match self.upstream_duration.get(&labels.path_id) {
                Some(h) => h.observe(up),
                None => self.upstream_duration.entry(labels.path_id.clone()).or_default().observe(up),
            }
        }
        if let Some(kind) = labels.reason.strip_prefix("upstream_") {
            let kind: &'static str = match kind {
                "timeout" => "timeout",
                "bad_document" => "bad_document",
                _ => "unavailable",
            };
            self.upstream_errors.entry((labels.path_id.clone(), kind)).or_default().fetch_add(1, Ordering::Relaxed);
        }
        self.request_duration.observe(total);
        match self.requests.get(&labels) {
            Some(c) => {
                c.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                self.requests.entry(labels).or_default().fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A response that did not reach its end (body error, client gone), by path id
    /// (`-` before routing found one). Also counted in `tilegate_requests_total`.
    pub fn response_cut(&self, path_id: &str) {
        match self.responses_cut.get(path_id) {
            Some(c) => c.fetch_add(1, Ordering::Relaxed),
            None => self.responses_cut.entry(path_id.to_owned()).or_default().fetch_add(1, Ordering::Relaxed),
        };
    }

    /// A token store query failed.
    pub fn store_error(&self) {
        self.store_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// One token API call: `action` is a literal such as `"create"`, `"list"`,
    /// `"get"` or `"revoke"`; `status` the answer's status code.
    pub fn token_api(&self, action: &'static str, status: u16) {
        self.token_api.entry((action, status)).or_default().fetch_add(1, Ordering::Relaxed);
    }

    /// A config reload finished (`ok = false`: the old config stays).
    pub fn reload(&self, ok: bool) {
        if ok {
            self.reloads_ok.fetch_add(1, Ordering::Relaxed);
            self.config_loaded_at.store(crate::store::now_unix() as u64, Ordering::Relaxed);
        } else {
            self.reloads_failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn handshake(&self, outcome: Handshake) {
        self.tls_handshakes[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// A connection was accepted (`+1`) or closed (`-1`).
    pub fn connection(&self, opened: bool) {
        if opened {
            self.connections_total.fetch_add(1, Ordering::Relaxed);
            self.connections_open.fetch_add(1, Ordering::Relaxed);
        } else {
            self.connections_open.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// A connection was closed at once because `server.max_connections` was reached.
    pub fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// The text exposition. `cache` is (hits, misses, entries) of the grant cache.
    pub fn render(&self, cache: (u64, u64, usize), paths: usize) -> String {
        let mut out = String::with_capacity(4096);
        let counter = |out: &mut String, name: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        };
        let gauge = |out: &mut String, name: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        };

        gauge(&mut out, "tilegate_build_info", "The running tilegate version.");
        let _ = writeln!(out, "tilegate_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));
        gauge(&mut out, "tilegate_start_time_seconds", "When the process started (unix seconds).");
        let started = self.started.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let _ = writeln!(out, "tilegate_start_time_seconds {started}");

        counter(
            &mut out,
            "tilegate_requests_total",
            "Requests by path id, operation, decision (allow, deny, error, public), deny reason and status.",
        );
        let mut rows: Vec<(RequestLabels, u64)> =
            self.requests.iter().map(|e| (e.key().clone(), e.value().load(Ordering::Relaxed))).collect();
        rows.sort();
        for (l, n) in rows {
            let _ = writeln!(
                out,
                "tilegate_requests_total{{path_id=\"{}\",operation=\"{}\",decision=\"{}\",reason=\"{}\",status=\"{}\"}} {n}",
                escape(&l.path_id),
                escape(l.operation),
                l.decision,
                l.reason,
                l.status
            );
        }

        let _ = writeln!(
            out,
            "# HELP tilegate_request_duration_seconds Time from request head to the end of the response body.\n# TYPE tilegate_request_duration_seconds histogram"
        );
        self.request_duration.render(&mut out, "tilegate_request_duration_seconds", "");
        let _ = writeln!(
            out,
            "# HELP tilegate_upstream_duration_seconds Time an upstream took to send its response head, by path id.\n# TYPE tilegate_upstream_duration_seconds histogram"
        );
        let mut ids: Vec<String> = self.upstream_duration.iter().map(|e| e.key().clone()).collect();
        ids.sort();
        for id in ids {
            if let Some(h) = self.upstream_duration.get(&id) {
                h.render(&mut out, "tilegate_upstream_duration_seconds", &format!("path_id=\"{}\"", escape(&id)));
            }
        }

        counter(
            &mut out,
            "tilegate_responses_cut_total",
            "Responses that did not reach their end (body error, or the client went away), by path id.",
        );
        let mut cut: Vec<(String, u64)> =
            self.responses_cut.iter().map(|e| (e.key().clone(), e.value().load(Ordering::Relaxed))).collect();
        cut.sort();
        for (id, n) in cut {
            let _ = writeln!(out, "tilegate_responses_cut_total{{path_id=\"{}\"}} {n}", escape(&id));
        }

        counter(
            &mut out,
            "tilegate_upstream_errors_total",
            "Upstream failures by path id and kind (unavailable, timeout, bad_document).",
        );
        let mut errs: Vec<((String, &str), u64)> =
            self.upstream_errors.iter().map(|e| (e.key().clone(), e.value().load(Ordering::Relaxed))).collect();
        errs.sort();
        for ((id, kind), n) in errs {
            let _ = writeln!(out, "tilegate_upstream_errors_total{{path_id=\"{}\",kind=\"{kind}\"}} {n}", escape(&id));
        }

        counter(&mut out, "tilegate_grant_cache_hits_total", "Token lookups answered by the grant cache.");
        let _ = writeln!(out, "tilegate_grant_cache_hits_total {}", cache.0);
        counter(&mut out, "tilegate_grant_cache_misses_total", "Token lookups that went to the store.");
        let _ = writeln!(out, "tilegate_grant_cache_misses_total {}", cache.1);
        gauge(&mut out, "tilegate_grant_cache_entries", "Grants held in the cache.");
        let _ = writeln!(out, "tilegate_grant_cache_entries {}", cache.2);
        counter(&mut out, "tilegate_store_errors_total", "Token store queries that failed.");
        let _ = writeln!(out, "tilegate_store_errors_total {}", self.store_errors.load(Ordering::Relaxed));

        counter(&mut out, "tilegate_token_api_requests_total", "Token API calls by action and status.");
        let mut api: Vec<((&str, u16), u64)> =
            self.token_api.iter().map(|e| (*e.key(), e.value().load(Ordering::Relaxed))).collect();
        api.sort();
        for ((action, status), n) in api {
            let _ = writeln!(
                out,
                "tilegate_token_api_requests_total{{action=\"{}\",status=\"{status}\"}} {n}",
                escape(action)
            );
        }

        counter(
            &mut out,
            "tilegate_config_reloads_total",
            "Config reloads by result (ok, failed: the old config stays).",
        );
        let _ =
            writeln!(out, "tilegate_config_reloads_total{{result=\"ok\"}} {}", self.reloads_ok.load(Ordering::Relaxed));
        let _ = writeln!(
            out,
            "tilegate_config_reloads_total{{result=\"failed\"}} {}",
            self.reloads_failed.load(Ordering::Relaxed)
        );
        gauge(
            &mut out,
            "tilegate_config_loaded_timestamp_seconds",
            "When the config in use was loaded (unix seconds).",
        );
        let _ =
            writeln!(out, "tilegate_config_loaded_timestamp_seconds {}", self.config_loaded_at.load(Ordering::Relaxed));
        gauge(&mut out, "tilegate_config_paths", "Paths declared in the config in use.");
        let _ = writeln!(out, "tilegate_config_paths {paths}");

        counter(&mut out, "tilegate_tls_handshakes_total", "TLS handshakes by result (ok, failed, timeout).");
        for h in Handshake::ALL {
            let _ = writeln!(
                out,
                "tilegate_tls_handshakes_total{{result=\"{}\"}} {}",
                h.label(),
                self.tls_handshakes[h as usize].load(Ordering::Relaxed)
            );
        }

        gauge(&mut out, "tilegate_connections_open", "Client connections open now.");
        let _ = writeln!(out, "tilegate_connections_open {}", self.connections_open.load(Ordering::Relaxed).max(0));
        counter(&mut out, "tilegate_connections_total", "Client connections accepted.");
        let _ = writeln!(out, "tilegate_connections_total {}", self.connections_total.load(Ordering::Relaxed));
        counter(
            &mut out,
            "tilegate_connections_refused_total",
            "Client connections closed at once because server.max_connections was reached.",
        );
        let _ =
            writeln!(out, "tilegate_connections_refused_total {}", self.connections_refused.load(Ordering::Relaxed));
        out
    }
}

/// Escapes a label value (`\`, `"` and newlines).
fn escape(v: &str) -> std::borrow::Cow<'_, str> {
    if v.contains(['\\', '"', '\n']) {
        v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n").into()
    } else {
        v.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(path: &str, status: u16) -> RequestLabels {
        RequestLabels { path_id: path.into(), operation: "xyz.tile", decision: "allow", reason: "-", status }
    }

    #[test]
    fn counters_and_histograms_render_as_prometheus_text() {
        let m = Metrics::new();
        m.request(labels("osm", 200), Duration::from_millis(3), Some(Duration::from_millis(2)));
        m.request(labels("osm", 200), Duration::from_millis(30), Some(Duration::from_millis(20)));
        let mut timeout = labels("osm", 504);
        timeout.reason = "upstream_timeout";
        timeout.decision = "error";
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
            "tilegate_request_duration_seconds_bucket{le=\"+Inf\"} 3",
            "tilegate_request_duration_seconds_count 3",
            "tilegate_upstream_duration_seconds_bucket{path_id=\"osm\",le=\"0.0025\"} 1",
            "tilegate_upstream_duration_seconds_count{path_id=\"osm\"} 2",
            "tilegate_grant_cache_hits_total 5",
            "tilegate_token_api_requests_total{action=\"create\",status=\"201\"} 1",
            "tilegate_config_reloads_total{result=\"failed\"} 1",
            "tilegate_tls_handshakes_total{result=\"ok\"} 1",
            "# TYPE tilegate_requests_total counter",
        ] {
            assert!(text.lines().any(|l| l == want), "missing `{want}` in\n{text}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(escape("osm"), "osm");
    }
}
