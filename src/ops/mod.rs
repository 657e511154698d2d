//! Operations: metrics, rate limits and the failed-authentication guard, and the
//! ops listener's answers (`/metrics`, `/healthz`, `/readyz`).
//!
//! The pipeline calls three hooks, one line each: [`Ops::admit_client`] before the
//! token lookup (failed-auth cooldown, per-IP rate), [`Ops::admit_token`] after it
//! (per-token rate), and [`Ops::record`] once the response head is ready
//! (metrics, failed-auth accounting). Nothing here blocks or does I/O on the
//! request path, and nothing here ever sees a token secret.

pub mod limits;
pub mod metrics;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use http::{Method, Response, StatusCode};

pub use limits::Limiter;
pub use metrics::{Handshake, Metrics, RequestLabels};

use crate::config::Config;
use crate::gateway::Gateway;
use crate::policy::TokenId;
use crate::respond::{self, Body, Reject};
use crate::route::Route;
use limits::{client_key, Kind};

/// Metrics and limiter state shared by every connection.
#[derive(Default)]
pub struct Ops {
    pub metrics: Metrics,
    pub limiter: Limiter,
    /// Set when shutdown began: `/readyz` answers 503 so load balancers move on.
    pub draining: std::sync::atomic::AtomicBool,
}

/// The deny reasons that count as a failed authentication: a token was sent and
/// it was no good. A request without any token is not an attempt.
const FAILED_AUTH_REASONS: [&str; 4] = ["malformed_token", "unknown_token", "revoked_token", "expired_token"];

/// The scope a bucket belongs to when no path overrides the limit.
const GLOBAL: &str = "*";

impl Ops {
    pub fn new() -> Self {
        Self::default()
    }

    /// Before the token is looked up: refuses a client in a failed-authentication
    /// cooldown, then takes from its per-IP bucket.
    pub fn admit_client(&self, config: &Config, path_id: Option<&str>, client: IpAddr) -> Result<(), Reject> {
        let now = Instant::now();
        if config.limits.failed_auth.is_some() {
            if let Some(wait) = self.limiter.auth_blocked(client, now) {
                return Err(Reject::TooManyFailedAuthentications(wait));
            }
        }
        let Some((scope, rate)) =
            config.path_limit(path_id, |l| l.per_ip).or(config.limits.per_ip.map(|r| (GLOBAL, r)))
        else {
            return Ok(());
        };
        self.limiter.take(Kind::Ip, scope, client_key(client), rate, now).map_err(Reject::RateLimited)
    }

    /// After the lookup: takes from the token's bucket.
    pub fn admit_token(&self, config: &Config, path_id: Option<&str>, token: TokenId) -> Result<(), Reject> {
        let Some((scope, rate)) =
            config.path_limit(path_id, |l| l.per_token).or(config.limits.per_token.map(|r| (GLOBAL, r)))
        else {
            return Ok(());
        };
        self.limiter.take(Kind::Token, scope, token, rate, Instant::now()).map_err(Reject::RateLimited)
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
        if labels.status == 401 && FAILED_AUTH_REASONS.contains(&labels.reason) {
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
}

/// The configured path id a route names, if any (before the path is looked up).
pub fn route_path_id<'a>(route: &Route<'a>) -> Option<&'a str> {
    match *route {
        Route::Path { path_id, .. } | Route::Xyz { path_id, .. } | Route::Ogc { path_id, .. } => Some(path_id),
        _ => None,
    }
}

/// Answers one request on the ops listener.
pub async fn answer(gateway: &Gateway, method: &Method, path: &str) -> Response<Body> {
    if method != Method::GET && method != Method::HEAD {
        return Reject::MethodNotAllowed("GET or HEAD").into_response();
    }
    match path {
        "/metrics" => {
            let cache = gateway.cache();
            let (hits, misses) = cache.stats();
            let text = gateway.ops().metrics.render((hits, misses, cache.len()), gateway.config().paths.len());
            let mut res = Response::new(respond::full(text));
            res.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            res
        }
        "/healthz" => respond::json(StatusCode::OK, &serde_json::json!({ "status": "ok" })),
        "/readyz" => {
            let draining = gateway.ops().draining.load(std::sync::atomic::Ordering::Acquire);
            let store = gateway.cache().store().ping().await;
            let config = gateway.config();
            let status = match (draining, store) {
                (true, _) => "shutting down",
                (false, true) => "ok",
                (false, false) => "store unavailable",
            };
            let body = serde_json::json!({
                "status": status,
                "store": if store { "ok" } else { "unreachable" },
                "config": { "loaded": true, "paths": config.paths.len() },
            });
            let ready = store && !draining;
            respond::json(if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, &body)
        }
        _ => Reject::NotFound.into_response(),
    }
}
