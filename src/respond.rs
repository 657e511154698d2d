//! The one place that chooses status codes and error bodies.
//!
//! Every refusal and failure becomes a [`Reject`], and [`Reject::into_response`]
//! maps it to a status and a JSON body `{"detail": "…", "reason": "snake_case"}`.
//! Client faults are 4xx, upstream faults 502/504, our own 500. Bodies never carry
//! a token or upstream details.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};

use crate::ogc::OgcError;
use crate::policy::Denial;

/// Errors carried by streamed bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body type of every response the gateway writes.
pub type Body = BoxBody<Bytes, BoxError>;

/// A whole body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

/// A JSON response with the given status.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut res = Response::new(full(value.to_string()));
    *res.status_mut() = status;
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

/// Why an upstream exchange failed. The detail is logged, never sent to the client.
/// `Connect` and `Protocol` keep the client's error as their `source()`; their
/// `Display` is the context only, so [`ErrorChain`] prints each message once.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot connect to the upstream")]
    Connect(#[source] BoxError),
    #[error("the upstream did not answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("the upstream exchange failed")]
    Protocol(#[source] BoxError),
    #[error("the upstream sent a document the gateway cannot read: {0}")]
    BadDocument(String),
}

/// Everything that can end a request without an upstream response.
#[derive(Debug, thiserror::Error)]
pub enum Reject {
    #[error("{}", .0.reason())]
    Denied(Denial),
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 400 `unsupported_request`: well-formed OGC that the gateway does not pass
    /// (WCS 1.x, stored queries, DescribeLayer, KVP Transaction…).
    #[error("unsupported request: {0}")]
    Unsupported(String),
    #[error("not found")]
    NotFound,
    /// 404 with a specific detail (the token API's "no such token").
    #[error("not found: {0}")]
    NotFoundDetail(String),
    #[error("method not allowed")]
    MethodNotAllowed(&'static str),
    #[error("request body too large")]
    PayloadTooLarge(usize),
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    /// 406: the answer would be in a format the gateway cannot check (HTML pages).
    #[error("not acceptable: {0}")]
    NotAcceptable(String),
    /// 422 with a list of `{loc, msg, type}` problems (the token API).
    #[error("validation failed")]
    Unprocessable(serde_json::Value),
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// 429: a per-token or per-IP rate limit; retry after the duration.
    #[error("rate limited")]
    RateLimited(std::time::Duration),
    /// 429: this client sent too many bad tokens and is refused for the duration.
    #[error("too many failed authentications")]
    TooManyFailedAuthentications(std::time::Duration),
    #[error("{0}")]
    Upstream(#[from] UpstreamError),
    /// The upstream answered with this status (any 5xx; a 3xx or 4xx to a request
    /// whose answer the gateway filters or rewrites); its body is not relayed.
    #[error("the upstream answered {0}")]
    UpstreamStatus(StatusCode),
    #[error("internal error: {0}")]
    Internal(InternalError),
    /// 503: the token store cannot be reached (or the cache is older than
    /// `store.max_stale`); nothing was written.
    #[error("token store unavailable: {0}")]
    StoreUnavailable(InternalError),
}

/// A failure of the gateway itself: what it was doing, and the error that made it
/// fail when there is one (its `source()`). Logged whole, never sent to a client.
#[derive(Debug, thiserror::Error)]
#[error("{context}")]
pub struct InternalError {
    context: String,
    #[source]
    source: Option<BoxError>,
}

impl Reject {
    /// A 500 caused by `source` while doing `context` (`token lookup failed`).
    pub fn internal(context: impl Into<String>, source: impl Into<BoxError>) -> Reject {
        Reject::Internal(InternalError { context: context.into(), source: Some(source.into()) })
    }

    /// A store failure while doing `context`: 503 `store_unavailable` when the store
    /// is at fault and a retry may succeed (unreachable, timed out, locked, full,
    /// read-only, stale cache), else 500.
    pub fn store(context: impl Into<String>, e: crate::store::StoreError) -> Reject {
        if matches!(e, crate::store::StoreError::CreatorRevoked) {
            return Reject::Denied(Denial::Revoked);
        }
        if e.is_unavailable() {
            Reject::StoreUnavailable(InternalError { context: context.into(), source: Some(e.into()) })
        } else {
            Reject::internal(context, e)
        }
    }

    /// A 500 with no underlying error (a broken invariant, such as a bad template).
    pub fn internal_bug(context: impl Into<String>) -> Reject {
        Reject::Internal(InternalError { context: context.into(), source: None })
    }
}

/// Displays an error and every `source()` under it, joined with `: `, for logs:
/// `tracing::warn!(error = %ErrorChain(&e), …)`.
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cur = self.0.source();
        while let Some(e) = cur {
            write!(f, ": {e}")?;
            cur = e.source();
        }
        Ok(())
    }
}

impl From<Denial> for Reject {
    fn from(d: Denial) -> Self {
        Reject::Denied(d)
    }
}

/// The classifier's errors, mapped here and nowhere else.
impl From<OgcError> for Reject {
    fn from(e: OgcError) -> Self {
        match e {
            OgcError::BadRequest(m) => Reject::BadRequest(m),
            OgcError::NotSupported(m) => Reject::Unsupported(m),
            OgcError::MethodNotAllowed { allowed, .. } => Reject::MethodNotAllowed(allowed),
            OgcError::UnsupportedMediaType(m) => Reject::UnsupportedMediaType(m),
            // Same reason as a fenced property, so a token cannot tell the two apart.
            OgcError::UnknownProperty(p) => Reject::Denied(Denial::PropertyFenced(p)),
        }
    }
}

impl Reject {
    pub fn status(&self) -> StatusCode {
        match self {
            Reject::Denied(d) => denial_status(d),
            Reject::BadRequest(_) | Reject::Unsupported(_) => StatusCode::BAD_REQUEST,
            Reject::NotFound | Reject::NotFoundDetail(_) => StatusCode::NOT_FOUND,
            Reject::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Reject::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Reject::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Reject::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            Reject::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Reject::Forbidden(_) => StatusCode::FORBIDDEN,
            Reject::RateLimited(_) | Reject::TooManyFailedAuthentications(_) => StatusCode::TOO_MANY_REQUESTS,
            Reject::Upstream(UpstreamError::Timeout(_)) => StatusCode::GATEWAY_TIMEOUT,
            Reject::UpstreamStatus(status) => *status,
            Reject::Upstream(_) => StatusCode::BAD_GATEWAY,
            Reject::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Reject::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The snake_case reason for bodies, logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Reject::Denied(d) => d.reason(),
            Reject::BadRequest(_) => "bad_request",
            Reject::Unsupported(_) => "unsupported_request",
            Reject::NotFound | Reject::NotFoundDetail(_) => "not_found",
            Reject::MethodNotAllowed(_) => "method_not_allowed",
            Reject::PayloadTooLarge(_) => "payload_too_large",
            Reject::UnsupportedMediaType(_) => "unsupported_media_type",
            Reject::NotAcceptable(_) => "not_acceptable",
            Reject::Unprocessable(_) => "validation_failed",
            Reject::Forbidden(_) => "forbidden",
            Reject::RateLimited(_) => "rate_limited",
            Reject::TooManyFailedAuthentications(_) => "too_many_failed_authentications",
            Reject::Upstream(UpstreamError::Timeout(_)) => "upstream_timeout",
            Reject::UpstreamStatus(_) => "upstream_error",
            Reject::Upstream(UpstreamError::BadDocument(_)) => "upstream_bad_document",
            Reject::Upstream(_) => "upstream_unavailable",
            Reject::Internal(_) => "internal_error",
            Reject::StoreUnavailable(_) => "store_unavailable",
        }
    }

    /// The human detail for the body: what is wrong and how to fix it.
    pub fn detail(&self) -> String {
        match self {
            Reject::Denied(d) => denial_detail(d),
            Reject::BadRequest(m) | Reject::Forbidden(m) | Reject::NotFoundDetail(m) => m.clone(),
            Reject::Unsupported(m) => format!("{m} (not supported through the gateway)"),
            Reject::NotFound => {
                "nothing is served at this path; see /openapi.json and the README for the URL scheme".into()
            }
            Reject::MethodNotAllowed(allowed) => format!("this endpoint accepts {allowed}"),
            Reject::PayloadTooLarge(limit) => format!("the request body is larger than the {limit}-byte limit"),
            Reject::UnsupportedMediaType(m) | Reject::NotAcceptable(m) => m.clone(),
            Reject::Unprocessable(_) => "the request body is not valid".into(),
            Reject::RateLimited(_) => "too many requests; slow down and retry after the `Retry-After` seconds".into(),
            Reject::TooManyFailedAuthentications(_) => {
                "too many requests with invalid access tokens from this address; retry after the `Retry-After` seconds with a valid token".into()
            }
            Reject::UpstreamStatus(status) => {
                format!(
                    "the upstream server answered HTTP {}; its answer is not passed on (the operator can find the cause in its log)",
                    status.as_u16()
                )
            }
            Reject::Upstream(UpstreamError::Timeout(_)) => "the upstream server did not answer in time".into(),
            Reject::Upstream(UpstreamError::BadDocument(_)) => {
                "the upstream server sent a document the gateway cannot check".into()
            }
            Reject::Upstream(_) => "the upstream server is not reachable".into(),
            Reject::Internal(_) => "the gateway failed; the operator can find the cause in its log".into(),
            Reject::StoreUnavailable(_) => {
                "the token store cannot be reached, so the token cannot be checked or changed now; retry shortly".into()
            }
        }
    }

    /// `{"detail", "reason"}`, with anything token-shaped in the detail redacted: details
    /// echo user input (a token pasted into `LAYERS=` or a tile address).
    fn body(&self) -> Bytes {
        let detail = self.detail();
        let detail = crate::token::redact(&detail);
        Bytes::from(serde_json::json!({ "detail": detail, "reason": self.reason() }).to_string())
    }

    /// The operator-facing cause of a failure that is ours or the upstream's, with
    /// its whole source chain, for the log (never for the body); `None` for client
    /// faults.
    pub fn cause(&self) -> Option<String> {
        match self {
            Reject::Upstream(e) => Some(ErrorChain(e).to_string()),
            Reject::Internal(e) | Reject::StoreUnavailable(e) => Some(ErrorChain(e).to_string()),
            _ => None,
        }
    }

    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        let body = match &self {
            Reject::Denied(d) => cached_denial_body(d).unwrap_or_else(|| self.body()),
            // The validation messages echo the body's values: redacted like every detail.
            Reject::Unprocessable(detail) => {
                let text = serde_json::json!({ "detail": detail }).to_string();
                Bytes::from(crate::token::redact(&text).into_owned())
            }
            _ => self.body(),
        };
        let mut res = Response::new(full(body));
        *res.status_mut() = status;
        res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if status == StatusCode::UNAUTHORIZED {
            // Both schemes the gateway accepts, so clients that only send a password
            // after a Basic challenge (GDAL_HTTP_AUTH=ANY, ArcGIS Pro, browsers) do.
            let h = res.headers_mut();
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"tilegate\""));
            h.append(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"tilegate\", charset=\"UTF-8\""));
        }
        if let Reject::RateLimited(wait) | Reject::TooManyFailedAuthentications(wait) = &self {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs(*wait)));
        }
        if let Reject::MethodNotAllowed(allowed) = &self {
            if let Ok(v) = HeaderValue::from_str(&allowed.replace(" or ", ", ")) {
                res.headers_mut().insert(header::ALLOW, v);
            }
        }
        res
    }
}

/// Whole seconds for `Retry-After`: rounded up, at least 1 (a client that waits
/// the whole seconds is never early).
pub fn retry_after_secs(d: std::time::Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

/// The JSON body of a denial listed in [`Denial::FIXED`], serialized once per process
/// (building a `serde_json::Value` per refusal was a fifth of the cost of a 401);
/// `None` for the others, which are built per refusal.
fn cached_denial_body(d: &Denial) -> Option<Bytes> {
    static BODIES: std::sync::OnceLock<Vec<(&'static str, Bytes)>> = std::sync::OnceLock::new();
    let bodies = BODIES.get_or_init(|| {
        Denial::FIXED
            .iter()
            .map(|d| {
                (
                    d.reason(),
                    Bytes::from(serde_json::json!({ "detail": denial_detail(d), "reason": d.reason() }).to_string()),
                )
            })
            .collect()
    });
    bodies.iter().find(|(reason, _)| *reason == d.reason()).map(|(_, body)| body.clone())
}

fn denial_status(d: &Denial) -> StatusCode {
    match d {
        Denial::MissingToken | Denial::MalformedToken | Denial::UnknownToken | Denial::Revoked | Denial::Expired => {
            StatusCode::UNAUTHORIZED
        }
        Denial::ConflictingTokens | Denial::QueryTokenDisabled => StatusCode::BAD_REQUEST,
        Denial::PathNotFound => StatusCode::NOT_FOUND,
        Denial::ScopeOgcOnly
        | Denial::TierTooLow { .. }
        | Denial::LayerNotCovered(_)
        | Denial::ZoomAboveMax
        | Denial::OutsideGeofence
        | Denial::UnsupportedCrs
        | Denial::UnboundedFeatureRequest
        | Denial::FenceUnverifiable
        | Denial::PropertyFenced(_) => StatusCode::FORBIDDEN,
    }
}

fn denial_detail(d: &Denial) -> String {
    match d {
        Denial::MissingToken => "no access token; send `Authorization: Bearer <token>`, `x-access-token`, basic auth with the token as password, or `?token=`".into(),
        Denial::MalformedToken => "the access token is malformed (wrong format or checksum); check that it was copied whole".into(),
        Denial::ConflictingTokens => "the request carries two different access tokens; send exactly one".into(),
        Denial::QueryTokenDisabled => "tokens in the query are disabled on this gateway; send the token in the `Authorization` header".into(),
        Denial::UnknownToken => "the access token is not known; it may have been mistyped or deleted".into(),
        Denial::Revoked => "the access token has been revoked".into(),
        Denial::Expired => "the access token has expired; ask for a new one".into(),
        Denial::PathNotFound => "no such path, or the token has no access to it".into(),
        Denial::ScopeOgcOnly => "the token's scope is `ogc`; it only works on /ogc/… endpoints".into(),
        Denial::TierTooLow { needed, held } => format!("this request needs access tier `{needed}` on the path; the token has `{held}`"),
        Denial::LayerNotCovered(l) => format!("layer `{l}` is not part of this path"),
        Denial::ZoomAboveMax => "the requested zoom is above the token's maxZoom for this path".into(),
        Denial::OutsideGeofence => "the requested area is not wholly inside the token's geofence".into(),
        Denial::UnsupportedCrs => "the token has a geofence and the request's CRS cannot be checked against it; use EPSG:3857, EPSG:4326 or CRS:84".into(),
        Denial::UnboundedFeatureRequest => "the token has a geofence; feature requests must carry a bounding box inside it".into(),
        Denial::FenceUnverifiable => "the token has a geofence and this endpoint cannot be checked against it; use the /ogc/… endpoints".into(),
        Denial::PropertyFenced(p) => format!("property `{p}` is not visible to this token"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Tier;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        use std::time::Duration;
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1000)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }

    #[test]
    fn every_denial_maps_to_its_status() {
        let table: &[(Denial, u16)] = &[
            (Denial::MissingToken, 401),
            (Denial::MalformedToken, 401),
            (Denial::UnknownToken, 401),
            (Denial::Revoked, 401),
            (Denial::Expired, 401),
            (Denial::ConflictingTokens, 400),
            (Denial::QueryTokenDisabled, 400),
            (Denial::PathNotFound, 404),
            (Denial::ScopeOgcOnly, 403),
            (Denial::TierTooLow { needed: Tier::Edit, held: Tier::View }, 403),
            (Denial::LayerNotCovered("x".into()), 403),
            (Denial::ZoomAboveMax, 403),
            (Denial::OutsideGeofence, 403),
            (Denial::UnsupportedCrs, 403),
            (Denial::UnboundedFeatureRequest, 403),
            (Denial::FenceUnverifiable, 403),
            (Denial::PropertyFenced("p".into()), 403),
        ];
        for (d, status) in table {
            let res = Reject::Denied(d.clone()).into_response();
            assert_eq!(res.status().as_u16(), *status, "{d:?}");
            assert_eq!(res.headers().contains_key(header::WWW_AUTHENTICATE), *status == 401, "{d:?}");
            if *status == 401 {
                let schemes: Vec<&str> =
                    res.headers().get_all(header::WWW_AUTHENTICATE).iter().filter_map(|v| v.to_str().ok()).collect();
                assert!(schemes[0].starts_with("Bearer ") && schemes[1].starts_with("Basic "), "{schemes:?}");
            }
        }
    }

    #[test]
    fn every_other_reject_maps_to_its_status() {
        let table: Vec<(Reject, u16)> = vec![
            (Reject::BadRequest("x".into()), 400),
            (Reject::Unsupported("x".into()), 400),
            (Reject::NotFound, 404),
            (Reject::NotFoundDetail("x".into()), 404),
            (Reject::MethodNotAllowed("GET"), 405),
            (Reject::PayloadTooLarge(10), 413),
            (Reject::UnsupportedMediaType("x".into()), 415),
            (Reject::NotAcceptable("x".into()), 406),
            (Reject::Unprocessable(serde_json::json!([])), 422),
            (Reject::Forbidden("x".into()), 403),
            (Reject::RateLimited(std::time::Duration::from_millis(1500)), 429),
            (Reject::TooManyFailedAuthentications(std::time::Duration::from_secs(300)), 429),
            (Reject::Upstream(UpstreamError::Connect("refused".into())), 502),
            (Reject::Upstream(UpstreamError::Protocol("reset".into())), 502),
            (Reject::Upstream(UpstreamError::BadDocument("xml".into())), 502),
            (Reject::Upstream(UpstreamError::Timeout(std::time::Duration::from_secs(1))), 504),
            (Reject::internal_bug("boom"), 500),
        ];
        for (r, status) in table {
            let reason = r.reason();
            assert_eq!(r.into_response().status().as_u16(), status, "{reason}");
        }
    }

    /// Every reason a client can receive is listed in README's "Decisions and errors"
    /// table, so operators can look up what they see.
    #[test]
    fn every_reason_is_documented_in_the_readme() {
        const README: &str = include_str!("../README.md");
        let table = README.split("## Decisions and errors").nth(1).and_then(|s| s.split("\n## ").next()).unwrap_or("");
        let denials = Denial::FIXED.into_iter().chain([
            Denial::TierTooLow { needed: Tier::Edit, held: Tier::View },
            Denial::LayerNotCovered("x".into()),
            Denial::PropertyFenced("p".into()),
        ]);
        let others = [
            Reject::BadRequest("x".into()),
            Reject::Unsupported("x".into()),
            Reject::NotFound,
            Reject::MethodNotAllowed("GET"),
            Reject::PayloadTooLarge(1),
            Reject::UnsupportedMediaType("x".into()),
            Reject::NotAcceptable("x".into()),
            Reject::Unprocessable(serde_json::json!([])),
            Reject::Forbidden("x".into()),
            Reject::RateLimited(std::time::Duration::from_secs(1)),
            Reject::TooManyFailedAuthentications(std::time::Duration::from_secs(1)),
            Reject::Upstream(UpstreamError::Timeout(std::time::Duration::from_secs(1))),
            Reject::Upstream(UpstreamError::BadDocument("x".into())),
            Reject::UpstreamStatus(StatusCode::SERVICE_UNAVAILABLE),
            Reject::Upstream(UpstreamError::Connect("x".into())),
            Reject::internal_bug("x"),
        ];
        for reason in denials.map(|d| d.reason()).chain(others.iter().map(Reject::reason)) {
            assert!(table.contains(&format!("`{reason}`")), "README's reason table lacks `{reason}`");
        }
    }

    #[test]
    fn refusals_for_too_many_requests_say_when_to_retry() {
        let res = Reject::RateLimited(std::time::Duration::from_millis(1500)).into_response();
        assert_eq!(res.headers()[header::RETRY_AFTER], "2");
        let res = Reject::TooManyFailedAuthentications(std::time::Duration::from_secs(300)).into_response();
        assert_eq!(res.headers()[header::RETRY_AFTER], "300");
        assert!(!Reject::NotFound.into_response().headers().contains_key(header::RETRY_AFTER));
    }

    #[test]
    fn cached_denial_bodies_equal_freshly_built_ones() {
        use http_body_util::BodyExt;
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let varying = [Denial::PropertyFenced("p".into()), Denial::TierTooLow { needed: Tier::Edit, held: Tier::View }];
        for d in Denial::FIXED.into_iter().chain(varying) {
            let want = serde_json::json!({ "detail": denial_detail(&d), "reason": d.reason() }).to_string();
            let got =
                rt.block_on(Reject::Denied(d.clone()).into_response().into_body().collect()).expect("body").to_bytes();
            assert_eq!(got, want.as_bytes(), "{d:?}");
        }
        assert!(
            cached_denial_body(&Denial::PropertyFenced("p".into())).is_none(),
            "messages that vary are built per refusal"
        );
    }

    /// Regression: a token pasted where a name belongs (`LAYERS=<token>`, a tile
    /// address, a bbox) came back in the error body.
    #[test]
    fn a_misplaced_token_is_redacted_from_error_bodies() {
        use http_body_util::BodyExt;
        let token = "tg_0123456789abcdefghijABCDEFGHIJ0123456789abcdef";
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        for r in [
            Reject::BadRequest(format!("BBOX: `{token}` is not a number")),
            Reject::Denied(Denial::LayerNotCovered(token.into())),
            Reject::Denied(Denial::PropertyFenced(token.into())),
            Reject::NotFoundDetail(format!("no {token}")),
        ] {
            let body = rt.block_on(r.into_response().into_body().collect()).expect("body").to_bytes();
            let text = String::from_utf8_lossy(&body);
            assert!(!text.contains(token) && text.contains("<redacted>"), "{text}");
        }
    }

    fn body_text(r: Reject) -> String {
        use http_body_util::BodyExt;
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let bytes = rt.block_on(r.into_response().into_body().collect()).expect("body").to_bytes();
        String::from_utf8(bytes.to_vec()).expect("utf8")
    }

    #[test]
    fn upstream_details_stay_out_of_the_body() {
        let r = Reject::Upstream(UpstreamError::Connect("10.1.2.3:9000 refused".into()));
        assert_eq!(r.cause().as_deref(), Some("cannot connect to the upstream: 10.1.2.3:9000 refused"));
        assert!(!body_text(r).contains("10.1.2.3"));
    }

    #[test]
    fn an_internal_error_from_sqlite_logs_the_whole_chain_and_tells_the_client_neither() {
        let conn = rusqlite::Connection::open_in_memory().expect("sqlite");
        let sqlite = conn.execute("DELETE FROM tokens", []).expect_err("no such table");
        let r = Reject::internal("token lookup failed", crate::store::StoreError::from(sqlite));
        let cause = r.cause().expect("a cause");
        assert!(cause.starts_with("token lookup failed: token store query failed: no such table: tokens"), "{cause}");
        let body = body_text(r);
        assert!(!body.contains("token store") && !body.contains("no such table"), "{body}");
        assert!(body.contains("internal_error"), "{body}");
    }
}
