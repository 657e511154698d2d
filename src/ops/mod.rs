//! Operations: metrics, rate limits and the failed-authentication guard, the one
//! health/readiness answer both listeners give, and the ops listener's answers
//! (`/metrics`, `/healthz`, `/readyz`).
//!
//! The pipeline calls three hooks, one line each: [`Ops::admit_client`] before the
//! token lookup (failed-auth cooldown, per-IP rate), [`Ops::admit_token`] after it
//! (per-token rate), and [`Ops::record`] once the response head is ready
//! (metrics, failed-auth accounting), with the request's typed [`Outcome`].
//! Nothing here blocks or does I/O on the request path, nothing here ever sees a
//! token secret, and nothing here parses a reason string.
//!
//! This module depends on the config, the store, `policy` and `respond`, never on
//! the gateway: callers pass what an answer needs.

pub mod limits;
pub mod metrics;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use http::{Method, Response, StatusCode};

pub use limits::Limiter;
pub use metrics::{Handshake, Metrics, RequestLabels};

use crate::config::Config;
use crate::policy::TokenId;
use crate::respond::{self, Body, Reject, UpstreamError};
use crate::route::Route;
use crate::store::{GrantCache, Store};

/// Metrics and limiter state shared by every connection.
#[derive(Default)]
pub struct Ops {
    pub metrics: Metrics,
    pub limiter: Limiter,
    /// Set when shutdown began: `/readyz` answers 503 (on every listener) so load
    /// balancers move on.
    pub draining: AtomicBool,
}

/// What became of one request, as a type: the metrics' `decision` and `reason`
/// labels, whether it was a failed authentication and which upstream failure it
/// was all come from here, so nothing downstream parses a reason string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered for a valid token (forwarded, or the token API).
    Allowed,
    /// Answered without a token (health, the OpenAPI document).
    Public,
    /// Refused: a policy denial or a client fault. `failed_authentication` is
    /// [`crate::policy::Denial::is_failed_authentication`].
    Denied { reason: &'static str, failed_authentication: bool },
    /// The upstream failed.
    UpstreamFailed { reason: &'static str, kind: UpstreamFailure },
    /// The gateway itself failed.
    Failed { reason: &'static str },
}

/// The `kind` label of `tilegate_upstream_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpstreamFailure {
    Unavailable,
    Timeout,
    BadDocument,
}

impl UpstreamFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamFailure::Unavailable => "unavailable",
            UpstreamFailure::Timeout => "timeout",
            UpstreamFailure::BadDocument => "bad_document",
        }
    }
}

impl Outcome {
    /// A request answered without a reject: `Allowed` with a token, else `Public`.
    pub fn answered(with_token: bool) -> Outcome {
        if with_token {
            Outcome::Allowed
        } else {
            Outcome::Public
        }
    }

    /// A request that ended in `reject`.
    pub fn rejected(reject: &Reject) -> Outcome {
        let reason = reject.reason();
        match reject {
            Reject::Denied(d) => Outcome::Denied { reason, failed_authentication: d.is_failed_authentication() },
            Reject::Upstream(e) => {
                let kind = match e {
                    UpstreamError::Timeout(_) => UpstreamFailure::Timeout,
                    UpstreamError::BadDocument(_) => UpstreamFailure::BadDocument,
                    UpstreamError::Connect(_) | UpstreamError::Protocol(_) => UpstreamFailure::Unavailable,
                };
                Outcome::UpstreamFailed { reason, kind }
            }
            // Not a reject the pipeline returns (`proxy::relay` answers it), kept exact anyway.
            Reject::UpstreamStatus(_) => Outcome::UpstreamFailed { reason, kind: UpstreamFailure::Unavailable },
            Reject::Internal(_) | Reject::StoreUnavailable(_) => Outcome::Failed { reason },
            _ => Outcome::Denied { reason, failed_authentication: false },
        }
    }

    /// The `decision` label: `allow`, `public`, `deny` or `error`.
    pub fn decision(self) -> &'static str {
        match self {
            Outcome::Allowed => "allow",
            Outcome::Public => "public",
            Outcome::Denied { .. } => "deny",
            Outcome::UpstreamFailed { .. } | Outcome::Failed { .. } => "error",
        }
    }

    /// The `reason` label: the reject's snake_case reason, `-` when answered.
    pub fn reason(self) -> &'static str {
        match self {
            Outcome::Allowed | Outcome::Public => "-",
            Outcome::Denied { reason, .. } | Outcome::UpstreamFailed { reason, .. } | Outcome::Failed { reason } => {
                reason
            }
        }
    }

    /// A token was sent and it was no good: the failed-authentication guard counts it.
    pub fn is_failed_authentication(self) -> bool {
        matches!(self, Outcome::Denied { failed_authentication: true, .. })
    }

    pub fn upstream_failure(self) -> Option<UpstreamFailure> {
        match self {
            Outcome::UpstreamFailed { kind, .. } => Some(kind),
            _ => None,
        }
    }
}

/// The scope a bucket belongs to when no path overrides the limit.
const GLOBAL: &str = "*";

impl Ops {
    pub fn new() -> Self {
        Self::default()
    }

    /// Before the token is looked up: refuses a client in a failed-authentication
    /// cooldown, then takes from its per-IP bucket.
    pub fn admit_client(&self, config: &Config, path_id: Option<&str>, client: IpAddr) -> Result<(), Reject> {
        if config.limits.failed_auth.is_some() && !limits::exempt(&config.limits.failed_auth_exempt, client) {
            if let Some(wait) = self.limiter.auth_blocked(client, Instant::now()) {
                return Err(Reject::TooManyFailedAuthentications(wait));
            }
        }
        let Some((scope, rate)) =
            config.path_limit(path_id, |l| l.per_ip).or(config.limits.per_ip.map(|r| (GLOBAL, r)))
        else {
            return Ok(());
        };
        self.limiter.take_ip(scope, client, rate).map_err(Reject::RateLimited)
    }

    /// After the lookup: takes from the token's bucket.
    pub fn admit_token(&self, config: &Config, path_id: Option<&str>, token: TokenId) -> Result<(), Reject> {
        let Some((scope, rate)) =
            config.path_limit(path_id, |l| l.per_token).or(config.limits.per_token.map(|r| (GLOBAL, r)))
        else {
            return Ok(());
        };
        self.limiter.take_token(scope, token, rate).map_err(Reject::RateLimited)
    }

    /// Once per request: counts it and, for a failed authentication, charges the client.
    pub fn record(
        &self,
        config: &Config,
        labels: RequestLabels,
        total: Duration,
        upstream: Option<Duration>,
        client: IpAddr,
    ) {
        if labels.outcome.is_failed_authentication() && !limits::exempt(&config.limits.failed_auth_exempt, client) {
            if let Some(rule) = config.limits.failed_auth {
                if self.limiter.auth_failed(client, rule, Instant::now()) {
                    tracing::warn!(
                        client = %client,
                        failures = rule.max,
                        cooldown = ?rule.cooldown,
                        "too many failed authentications; refusing this client for the cooldown"
                    );
                }
            }
        }
        self.metrics.request(labels, total, upstream);
    }

    /// Forgets idle limiter state; the server calls this every few seconds.
    pub fn sweep(&self, config: &Config) {
        let window = config.limits.failed_auth.map_or(Duration::ZERO, |f| f.window);
        self.limiter.sweep(Instant::now(), window);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}

/// The configured path id a route names, if any (before the path is looked up).
pub fn route_path_id<'a>(route: &Route<'a>) -> Option<&'a str> {
    match *route {
        Route::Path { path_id, .. } | Route::Xyz { path_id, .. } | Route::Ogc { path_id, .. } => Some(path_id),
        _ => None,
    }
}

/// Which health question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// `/healthz`: the process answers.
    Liveness,
    /// `/readyz`: the store answers and the gateway is not shutting down.
    Readiness,
}

/// The one answer to `/healthz` and `/readyz`, on every listener: liveness is
/// always `200 {"status":"ok"}`; readiness is 200 only when the store can be read
/// and written, the grant cache is not older than `store.max_stale` and shutdown
/// has not begun, else 503, with the store's state (`store.read`, `store.write`:
/// `ok`, `unknown` or the failure kind) and the number of paths in the config in
/// use. It never waits on the store: the state comes from the outcome of recent
/// store calls and the watcher's probes (a probe unanswered for a second counts as
/// failing), so it answers at once while a query is stuck behind a lock.
pub async fn health(probe: Probe, ops: &Ops, store: &Store, paths: usize) -> Response<Body> {
    if probe == Probe::Liveness {
        return respond::json(StatusCode::OK, &serde_json::json!({ "status": "ok" }));
    }
    let report = store.health().report();
    let store_ok = report.read.is_ok() && report.write.is_ok() && !report.stale;
    let draining = ops.is_draining();
    let status = match (draining, store_ok) {
        (true, _) => "shutting down",
        (false, true) => "ok",
        (false, false) => "store unavailable",
    };
    let body = serde_json::json!({
        "status": status,
        "store": {
            "backend": if store.is_shared() { "postgres" } else { "sqlite" },
            "read": report.read.as_str(),
            "write": report.write.as_str(),
            "stale": report.stale,
        },
        "config": { "loaded": true, "paths": paths },
    });
    let ready = store_ok && !draining;
    respond::json(if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, &body)
}

/// Answers one request on the ops listener. `paths` is the number of paths in
/// the config in use.
pub async fn answer(ops: &Ops, cache: &GrantCache, paths: usize, method: &Method, path: &str) -> Response<Body> {
    if method != Method::GET && method != Method::HEAD {
        return Reject::MethodNotAllowed("GET or HEAD").into_response();
    }
    match path {
        "/metrics" => {
            let (hits, misses) = cache.stats();
            let text = ops.metrics.render_with_store((hits, misses, cache.len()), paths, Some(cache.store().health()));
            let mut res = Response::new(respond::full(text));
            res.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(metrics::CONTENT_TYPE));
            res
        }
        "/healthz" => health(Probe::Liveness, ops, cache.store(), paths).await,
        "/readyz" => health(Probe::Readiness, ops, cache.store(), paths).await,
        _ => Reject::NotFound.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Denial, Tier};

    #[test]
    fn only_a_bad_token_counts_as_a_failed_authentication() {
        let table: &[(Denial, bool)] = &[
            (Denial::MalformedToken, true),
            (Denial::UnknownToken, true),
            (Denial::Revoked, true),
            (Denial::Expired, true),
            (Denial::MissingToken, false),
            (Denial::ConflictingTokens, false),
            (Denial::QueryTokenDisabled, false),
            (Denial::PathNotFound, false),
            (Denial::ScopeOgcOnly, false),
            (Denial::TierTooLow { needed: Tier::Edit, held: Tier::View }, false),
            (Denial::LayerNotCovered("x".into()), false),
            (Denial::ZoomAboveMax, false),
            (Denial::OutsideGeofence, false),
            (Denial::UnsupportedCrs, false),
            (Denial::UnboundedFeatureRequest, false),
            (Denial::FenceUnverifiable, false),
            (Denial::PropertyFenced("p".into()), false),
        ];
        for (denial, failed) in table {
            assert_eq!(denial.is_failed_authentication(), *failed, "{denial:?}");
            let outcome = Outcome::rejected(&Reject::Denied(denial.clone()));
            assert_eq!(outcome.is_failed_authentication(), *failed, "{denial:?}");
            assert_eq!((outcome.decision(), outcome.reason()), ("deny", denial.reason()));
        }
        let rate = Outcome::rejected(&Reject::RateLimited(Duration::from_secs(1)));
        assert!(!rate.is_failed_authentication(), "a rate-limited request is not a failed authentication");
    }

    #[test]
    fn upstream_failures_and_our_own_are_errors_with_their_kind() {
        let timeout = Outcome::rejected(&Reject::Upstream(UpstreamError::Timeout(Duration::from_secs(1))));
        assert_eq!((timeout.decision(), timeout.reason()), ("error", "upstream_timeout"));
        assert_eq!(timeout.upstream_failure(), Some(UpstreamFailure::Timeout));
        let bad = Outcome::rejected(&Reject::Upstream(UpstreamError::BadDocument("x".into())));
        assert_eq!(bad.upstream_failure(), Some(UpstreamFailure::BadDocument));
        let down = Outcome::rejected(&Reject::Upstream(UpstreamError::Connect("refused".into())));
        assert_eq!(
            (down.reason(), down.upstream_failure()),
            ("upstream_unavailable", Some(UpstreamFailure::Unavailable))
        );
        let ours = Outcome::rejected(&Reject::internal_bug("boom"));
        assert_eq!((ours.decision(), ours.reason(), ours.upstream_failure()), ("error", "internal_error", None));
        assert_eq!((Outcome::answered(true).decision(), Outcome::answered(false).decision()), ("allow", "public"));
    }
}
