//! The one place that chooses status codes and error bodies.
//!
//! Every refusal and failure becomes a [`Reject`], and [`Reject::into_response`]
//! maps it to a status and a JSON body `{"detail": "…", "reason": "snake_case"}`.
//! Client faults are 4xx, upstream faults 502/504, our own 500. Bodies never carry
//! a token or upstream details.
//!
//! The body is written in the format the client that asked can read
//! ([`ErrorFormat::of`] the request's URI, [`Reject::into_response_as`]); the status,
//! the `reason` and the headers are the same in every format:
//!
//! | endpoint | body |
//! |---|---|
//! | token API, `/path/…`, XYZ, MVT | `{"detail", "reason"}` (`application/json`) |
//! | OGC API (`/ogc/api/…`) | RFC 9457 problem: `type` (`about:blank`), `title`, `status`, `detail`, `reason` (`application/problem+json`) |
//! | WMS 1.1.1 (and 1.0/1.1.0) | `ServiceExceptionReport` 1.1.1 (`application/vnd.ogc.se_xml`) |
//! | WMS 1.3.0 (and no `VERSION`) | `ServiceExceptionReport` 1.3.0, `ogc` namespace (`text/xml`) |
//! | WMS `GetMap` with `EXCEPTIONS=INIMAGE` / `BLANK` (either version's spelling) | a PNG of `WIDTH`×`HEIGHT` with the message / empty (`image/png`) |
//! | WFS 1.0.0 | `ServiceExceptionReport` 1.2.0, `ogc` namespace (`text/xml`) |
//! | WFS 1.1.0 | OWS 1.0 `ExceptionReport` (`application/xml`) |
//! | WFS 2.0 (and no `VERSION`), WMTS 1.0.0 (KVP and REST) | OWS 1.1 `ExceptionReport` (`application/xml`) |
//! | WCS 2.0 | OWS 2.0 `ExceptionReport` (`application/xml`) |
//!
//! In the OGC documents the `reason` is the exception's `code` (`exceptionCode`), and
//! the text is the human detail followed by `(reason: …)`, since some clients show
//! only the text. The `locator` is not used: it names a request parameter, and the
//! gateway's reasons are not about one parameter.

use std::io::Write as _;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode, Uri};
use http_body_util::{combinators::BoxBody, BodyExt, Full};

use crate::config::ExceptionStatus;
use crate::ogc::{OgcError, Protocol};
use crate::policy::Denial;
use crate::route::{self, Route};

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
    /// 408 `request_body_timeout`: the body arrived slower than
    /// `server.body_read_timeout` / `server.body_min_rate` allow (the detail says which).
    #[error("request body too slow: {0}")]
    BodyTimeout(String),
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
    /// 400 `token_in_request`: a copy of the request's token is somewhere the gateway
    /// would forward (a path segment, another parameter, the body).
    #[error("the request carries a copy of its token")]
    TokenCopied,
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
            OgcError::DatasetNotCovered(u) => Reject::Denied(Denial::DatasetNotCovered(u)),
        }
    }
}

impl Reject {
    pub fn status(&self) -> StatusCode {
        match self {
            Reject::Denied(d) => denial_status(d),
            Reject::BadRequest(_) | Reject::Unsupported(_) | Reject::TokenCopied => StatusCode::BAD_REQUEST,
            Reject::NotFound | Reject::NotFoundDetail(_) => StatusCode::NOT_FOUND,
            Reject::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Reject::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Reject::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
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
            Reject::BodyTimeout(_) => "request_body_timeout",
            Reject::UnsupportedMediaType(_) => "unsupported_media_type",
            Reject::NotAcceptable(_) => "not_acceptable",
            Reject::Unprocessable(_) => "validation_failed",
            Reject::Forbidden(_) => "forbidden",
            Reject::TokenCopied => "token_in_request",
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
            Reject::BodyTimeout(m) => m.clone(),
            Reject::UnsupportedMediaType(m) | Reject::NotAcceptable(m) => m.clone(),
            Reject::Unprocessable(_) => "the request body is not valid".into(),
            Reject::TokenCopied => "the request carries its access token where the gateway would pass it on (a path segment, another parameter or the body); the token is never forwarded: send it only as the credential (header, basic auth or `token=`)".into(),
            Reject::RateLimited(_) => "too many requests; slow down and retry after the `Retry-After` seconds".into(),
            Reject::TooManyFailedAuthentications(_) => {
                "too many requests with invalid access tokens from this address; retry after the `Retry-After` seconds with a valid token".into()
            }
            Reject::UpstreamStatus(status) => {
                format!(
                    "the upstream server could not answer this request (HTTP {}); its answer is not passed on (the operator can find the cause in its log)",
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

    /// The answer in the gateway's own JSON (`{"detail", "reason"}`).
    pub fn into_response(self) -> Response<Body> {
        self.into_response_as(&ErrorFormat::Json)
    }

    /// The answer in the format the client that asked reads: the same status,
    /// reason and headers in every format (see the module docs).
    pub fn into_response_as(self, format: &ErrorFormat) -> Response<Body> {
        let status = self.status();
        let (body, content_type) = match (format, &self) {
            (ErrorFormat::Json, Reject::Denied(d)) => (cached_denial_body(d).unwrap_or_else(|| self.body()), JSON),
            // The validation messages echo the body's values: redacted like every detail.
            (ErrorFormat::Json, Reject::Unprocessable(detail)) => {
                let text = serde_json::json!({ "detail": detail }).to_string();
                (Bytes::from(crate::token::redact(&text).into_owned()), JSON)
            }
            (ErrorFormat::Json, _) => (self.body(), JSON),
            (ErrorFormat::Problem, _) => {
                let detail = self.detail();
                let problem = serde_json::json!({
                    "type": "about:blank",
                    "title": status.canonical_reason().unwrap_or("Error"),
                    "status": status.as_u16(),
                    "detail": crate::token::redact(&detail),
                    "reason": self.reason(),
                });
                (Bytes::from(problem.to_string()), "application/problem+json")
            }
            (ErrorFormat::Ogc(exception), _) => {
                let detail = self.detail();
                let text = format!("{} (reason: {})", crate::token::redact(&detail), self.reason());
                match exception.image {
                    Some(image) => (Bytes::from(image.render(&text)), "image/png"),
                    None => (Bytes::from(exception.report.render(self.reason(), &text)), exception.report.media_type()),
                }
            }
        };
        let mut res = Response::new(full(body));
        *res.status_mut() = format.status(status);
        let answered = res.status();
        if answered != StatusCode::OK {
            // HTTP/1.1 status line `403 Forbidden (tier_too_low)`: clients that show only
            // Qt's or curl's "server replied: <reason phrase>" (QGIS's OAPIF provider)
            // show the reason too. A snake_case code: always a valid phrase.
            let phrase = format!("{} ({})", answered.canonical_reason().unwrap_or("Error"), self.reason());
            if let Ok(phrase) = hyper::ext::ReasonPhrase::try_from(phrase) {
                res.extensions_mut().insert(phrase);
            }
        }
        res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        // A refusal depends on the token that was (or was not) sent, and one dressed as a
        // 200 (`ogc.exception_status = "ok"`) must never be cached in place of the answer.
        res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Reject::UpstreamStatus(status) = &self {
            // Lets `localize` write an upstream status the proxy replaced (`proxy::replaced`)
            // in the request's format too.
            res.extensions_mut().insert(ReplacedStatus(*status));
        }
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

const JSON: &str = "application/json";

/// Marks a response built for [`Reject::UpstreamStatus`], so that [`localize`] can
/// write it again in the request's format.
#[derive(Clone, Copy, Debug)]
struct ReplacedStatus(StatusCode);

/// A response the gateway answers in place of an upstream error
/// ([`Reject::UpstreamStatus`], built where the request is no longer known) written
/// again in the request's format; any other response as it is.
pub fn localize(res: Response<Body>, uri: &Uri, exception_status: ExceptionStatus) -> Response<Body> {
    let Some(&ReplacedStatus(status)) = res.extensions().get::<ReplacedStatus>() else { return res };
    let format = ErrorFormat::of(uri).with_status(exception_status);
    if format == ErrorFormat::Json {
        return res;
    }
    let mut own = Reject::UpstreamStatus(status).into_response_as(&format);
    if let Some(v) = res.headers().get(header::RETRY_AFTER) {
        own.headers_mut().insert(header::RETRY_AFTER, v.clone());
    }
    own
}

/// How a refusal is written for the client that asked (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorFormat {
    /// `{"detail", "reason"}`: the token API, `/path/…`, XYZ and MVT tiles.
    Json,
    /// RFC 9457 problem details: OGC API.
    Problem,
    /// An OGC exception document, or image: the KVP and WMTS REST endpoints.
    Ogc(Exception),
}

/// An OGC exception: the document, or (WMS `GetMap` with `EXCEPTIONS=INIMAGE` or
/// `BLANK`) the image that replaces it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exception {
    pub report: Report,
    pub image: Option<ImageException>,
    /// `ogc.exception_status = "ok"`: answered 200 (except 401 and 429).
    pub ok: bool,
}

/// The exception document each protocol version defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    /// WMS 1.1.1 `ServiceExceptionReport` (`application/vnd.ogc.se_xml`).
    Wms111,
    /// WMS 1.3.0 `ServiceExceptionReport` in `http://www.opengis.net/ogc` (`text/xml`).
    Wms130,
    /// WFS 1.0.0 `ServiceExceptionReport` 1.2.0 in `http://www.opengis.net/ogc`.
    Wfs100,
    /// OWS Common 1.0 `ExceptionReport` (WFS 1.1.0), with the service version.
    Ows10(&'static str),
    /// OWS Common 1.1 `ExceptionReport` (WMTS 1.0.0, WFS 2.0).
    Ows11(&'static str),
    /// OWS Common 2.0 `ExceptionReport` (WCS 2.0).
    Ows20(&'static str),
}

/// WMS image exceptions: the size asked for, and whether the message is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageException {
    pub width: u32,
    pub height: u32,
    /// `BLANK`: no message, only the background.
    pub blank: bool,
    /// `TRANSPARENT=TRUE`: a transparent background.
    pub transparent: bool,
    /// `BGCOLOR` (default white).
    pub background: [u8; 3],
}

/// The largest image exception drawn, per side; a larger `WIDTH`/`HEIGHT` gets the
/// XML document instead (a refusal must not cost more than a small tile).
pub const MAX_EXCEPTION_IMAGE: u32 = 2048;

impl ErrorFormat {
    /// The format for a request to `uri`: by the endpoint (the route), then for the
    /// KVP endpoints by `SERVICE` version and `EXCEPTIONS`. A path that does not
    /// normalise or route answers JSON. Read leniently: this runs for requests that
    /// may be malformed, and must not fail.
    pub fn of(uri: &Uri) -> ErrorFormat {
        let Ok(path) = route::normalize(uri.path()) else { return ErrorFormat::Json };
        let Ok(Route::Ogc { family, .. }) = route::route(&path) else { return ErrorFormat::Json };
        let query = Query::parse(uri.query().unwrap_or(""));
        let report = match family {
            Protocol::Api => return ErrorFormat::Problem,
            Protocol::Mvt | Protocol::Xyz | Protocol::Martin | Protocol::Titiler => return ErrorFormat::Json,
            Protocol::Wms => match query.get("VERSION").or_else(|| query.get("WMTVER")) {
                Some(v) if v.starts_with("1.0") || v.starts_with("1.1") => Report::Wms111,
                _ => Report::Wms130,
            },
            Protocol::Wmts => Report::Ows11("1.0.0"),
            Protocol::Wfs => match query.get("VERSION") {
                Some("1.0.0") => Report::Wfs100,
                Some("1.1.0") => Report::Ows10("1.1.0"),
                _ => Report::Ows11("2.0.0"),
            },
            Protocol::Wcs => Report::Ows20("2.0.1"),
        };
        let image = match family {
            Protocol::Wms => ImageException::from_query(&query),
            _ => None,
        };
        ErrorFormat::Ogc(Exception { report, image, ok: false })
    }

    /// With `ogc.exception_status`: OGC exceptions answered 200 when it is `ok`.
    pub fn with_status(self, status: ExceptionStatus) -> ErrorFormat {
        match self {
            ErrorFormat::Ogc(e) => ErrorFormat::Ogc(Exception { ok: status == ExceptionStatus::Ok, ..e }),
            other => other,
        }
    }

    /// The status sent for a refusal with `status`.
    fn status(&self, status: StatusCode) -> StatusCode {
        match self {
            ErrorFormat::Ogc(Exception { ok: true, .. })
                if status != StatusCode::UNAUTHORIZED && status != StatusCode::TOO_MANY_REQUESTS =>
            {
                StatusCode::OK
            }
            _ => status,
        }
    }
}

/// The first value of each query parameter, names folded to upper case.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: &str) -> Query {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let k = k.to_ascii_uppercase();
            if !pairs.iter().any(|(n, _)| *n == k) {
                pairs.push((k, v.trim().to_owned()));
            }
        }
        Query(pairs)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

impl ImageException {
    /// For a WMS `GetMap` asking for image exceptions with a size that can be drawn.
    fn from_query(query: &Query) -> Option<ImageException> {
        if !query.get("REQUEST").is_some_and(|r| r.eq_ignore_ascii_case("GetMap") || r.eq_ignore_ascii_case("map")) {
            return None;
        }
        let blank = match query.get("EXCEPTIONS")?.to_ascii_lowercase().as_str() {
            "inimage" | "application/vnd.ogc.se_inimage" => false,
            "blank" | "application/vnd.ogc.se_blank" => true,
            _ => return None,
        };
        let side = |name| query.get(name)?.parse::<u32>().ok().filter(|n| (1..=MAX_EXCEPTION_IMAGE).contains(n));
        let background = query
            .get("BGCOLOR")
            .and_then(|c| c.strip_prefix("0x").or_else(|| c.strip_prefix("0X")))
            .filter(|hex| hex.len() == 6)
            .and_then(|hex| u32::from_str_radix(hex, 16).ok())
            .map_or([255, 255, 255], |rgb| [(rgb >> 16) as u8, (rgb >> 8) as u8, rgb as u8]);
        Some(ImageException {
            width: side("WIDTH")?,
            height: side("HEIGHT")?,
            blank,
            transparent: query.get("TRANSPARENT").is_some_and(|t| t.eq_ignore_ascii_case("true")),
            background,
        })
    }

    /// A PNG (1-bit palette: background, black text) with `text` drawn from the top
    /// left, wrapped at the image's width, upper-cased in a 5×7 bitmap font.
    pub fn render(&self, text: &str) -> Vec<u8> {
        let (w, h) = (self.width as usize, self.height as usize);
        let stride = w.div_ceil(8);
        let mut bits = vec![0u8; stride * h];
        if !self.blank {
            let columns = (w.saturating_sub(2 * MARGIN) / CELL_W).max(1);
            for (line, row) in wrap(text, columns).iter().zip(0..) {
                let top = MARGIN + row * CELL_H;
                if top + GLYPH_H > h {
                    break;
                }
                for (ch, col) in line.chars().zip(0..) {
                    let left = MARGIN + col * CELL_W;
                    for (dy, pattern) in glyph(ch).iter().enumerate() {
                        for (dx, cell) in pattern.bytes().enumerate() {
                            let (x, y) = (left + dx, top + dy);
                            if cell == b'#' && x < w && y < h {
                                bits[y * stride + x / 8] |= 0x80 >> (x % 8);
                            }
                        }
                    }
                }
            }
        }
        png(self, &bits, stride)
    }
}

const MARGIN: usize = 4;
const GLYPH_H: usize = 7;
const CELL_W: usize = 6;
const CELL_H: usize = 10;

/// `text` in lines of at most `columns` characters, broken at spaces where it can be.
fn wrap(text: &str, columns: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        while word.len() > columns {
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            lines.push(word.drain(..columns).collect());
        }
        let word: String = word.into_iter().collect();
        let len = line.chars().count();
        if len > 0 && len + 1 + word.chars().count() > columns {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// A 1-bit palette PNG: index 0 the background (transparent when asked), 1 black.
fn png(image: &ImageException, bits: &[u8], stride: usize) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        // INVARIANT: chunks are at most a few MiB (MAX_EXCEPTION_IMAGE), far below u32::MAX.
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(&crc.finalize().to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = Vec::with_capacity(13);
    header.extend_from_slice(&image.width.to_be_bytes());
    header.extend_from_slice(&image.height.to_be_bytes());
    header.extend_from_slice(&[1, 3, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &header);
    let [r, g, b] = image.background;
    chunk(&mut out, b"PLTE", &[r, g, b, 0, 0, 0]);
    if image.transparent {
        chunk(&mut out, b"tRNS", &[0]);
    }
    let mut raw = Vec::with_capacity((stride + 1) * image.height as usize);
    for row in bits.chunks(stride) {
        raw.push(0);
        raw.extend_from_slice(row);
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing to a Vec cannot fail.
    let data = z.write_all(&raw).and_then(|()| z.finish()).unwrap_or_default();
    chunk(&mut out, b"IDAT", &data);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// The 5×7 pattern of a character (upper-cased); `?` for what the font lacks.
fn glyph(ch: char) -> &'static [&'static str; 7] {
    let ch = ch.to_ascii_uppercase();
    FONT.iter()
        .find(|(c, _)| *c == ch)
        .or_else(|| FONT.iter().find(|(c, _)| *c == '?'))
        .map_or(&BLANK_GLYPH, |(_, g)| g)
}

const BLANK_GLYPH: [&str; 7] = ["....."; 7];

#[rustfmt::skip]
const FONT: &[(char, [&str; 7])] = &[
    (' ', BLANK_GLYPH),
    ('A', [".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"]),
    ('B', ["####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."]),
    ('C', [".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."]),
    ('D', ["####.", "#...#", "#...#", "#...#", "#...#", "#...#", "####."]),
    ('E', ["#####", "#....", "#....", "####.", "#....", "#....", "#####"]),
    ('F', ["#####", "#....", "#....", "####.", "#....", "#....", "#...."]),
    ('G', [".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"]),
    ('H', ["#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"]),
    ('I', [".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."]),
    ('J', ["..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."]),
    ('K', ["#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"]),
    ('L', ["#....", "#....", "#....", "#....", "#....", "#....", "#####"]),
    ('M', ["#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"]),
    ('N', ["#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"]),
    ('O', [".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."]),
    ('P', ["####.", "#...#", "#...#", "####.", "#....", "#....", "#...."]),
    ('Q', [".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"]),
    ('R', ["####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"]),
    ('S', [".####", "#....", "#....", ".###.", "....#", "....#", "####."]),
    ('T', ["#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."]),
    ('U', ["#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."]),
    ('V', ["#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."]),
    ('W', ["#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."]),
    ('X', ["#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"]),
    ('Y', ["#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."]),
    ('Z', ["#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"]),
    ('0', [".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."]),
    ('1', ["..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."]),
    ('2', [".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"]),
    ('3', ["#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."]),
    ('4', ["...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."]),
    ('5', ["#####", "#....", "####.", "....#", "....#", "#...#", ".###."]),
    ('6', ["..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."]),
    ('7', ["#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."]),
    ('8', [".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."]),
    ('9', [".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."]),
    ('.', [".....", ".....", ".....", ".....", ".....", ".##..", ".##.."]),
    (',', [".....", ".....", ".....", ".....", ".##..", "..#..", ".#..."]),
    (':', [".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."]),
    (';', [".....", ".##..", ".##..", ".....", ".##..", "..#..", ".#..."]),
    ('-', [".....", ".....", ".....", "#####", ".....", ".....", "....."]),
    ('_', [".....", ".....", ".....", ".....", ".....", ".....", "#####"]),
    ('/', [".....", "....#", "...#.", "..#..", ".#...", "#....", "....."]),
    ('(', ["...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."]),
    (')', [".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."]),
    ('\'', ["..#..", "..#..", ".#...", ".....", ".....", ".....", "....."]),
    ('`', ["..#..", "..#..", "...#.", ".....", ".....", ".....", "....."]),
    ('"', [".#.#.", ".#.#.", ".....", ".....", ".....", ".....", "....."]),
    ('=', [".....", ".....", "#####", ".....", "#####", ".....", "....."]),
    ('+', [".....", "..#..", "..#..", "#####", "..#..", "..#..", "....."]),
    ('!', ["..#..", "..#..", "..#..", "..#..", "..#..", ".....", "..#.."]),
    ('?', [".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#.."]),
    ('<', ["...#.", "..#..", ".#...", "#....", ".#...", "..#..", "...#."]),
    ('>', [".#...", "..#..", "...#.", "....#", "...#.", "..#..", ".#..."]),
    ('{', ["..##.", ".#...", ".#...", "#....", ".#...", ".#...", "..##."]),
    ('}', [".##..", "...#.", "...#.", "....#", "...#.", "...#.", ".##.."]),
];

impl Report {
    /// The media type the protocol version gives its exception reports.
    pub fn media_type(self) -> &'static str {
        match self {
            Report::Wms111 => "application/vnd.ogc.se_xml",
            Report::Wms130 | Report::Wfs100 => "text/xml",
            Report::Ows10(_) | Report::Ows11(_) | Report::Ows20(_) => "application/xml",
        }
    }

    /// The exception document: `code` (`exceptionCode`) is the reason, the text the message.
    pub fn render(self, code: &str, text: &str) -> String {
        let (code, text) = (xml_escape(code), xml_escape(text));
        let decl = r#"<?xml version="1.0" encoding="UTF-8"?>"#;
        match self {
            Report::Wms111 => format!(
                "{decl}\n<!DOCTYPE ServiceExceptionReport SYSTEM \"http://schemas.opengis.net/wms/1.1.1/exception_1_1_1.dtd\">\n<ServiceExceptionReport version=\"1.1.1\"><ServiceException code=\"{code}\">{text}</ServiceException></ServiceExceptionReport>\n"
            ),
            Report::Wms130 | Report::Wfs100 => {
                let version = if self == Report::Wms130 { "1.3.0" } else { "1.2.0" };
                format!(
                    "{decl}\n<ServiceExceptionReport version=\"{version}\" xmlns=\"http://www.opengis.net/ogc\"><ServiceException code=\"{code}\">{text}</ServiceException></ServiceExceptionReport>\n"
                )
            }
            Report::Ows10(version) | Report::Ows11(version) | Report::Ows20(version) => {
                let ns = match self {
                    Report::Ows10(_) => "http://www.opengis.net/ows",
                    Report::Ows11(_) => "http://www.opengis.net/ows/1.1",
                    _ => "http://www.opengis.net/ows/2.0",
                };
                format!(
                    "{decl}\n<ows:ExceptionReport xmlns:ows=\"{ns}\" version=\"{version}\" xml:lang=\"en\"><ows:Exception exceptionCode=\"{code}\"><ows:ExceptionText>{text}</ows:ExceptionText></ows:Exception></ows:ExceptionReport>\n"
                )
            }
        }
    }
}

/// `text` escaped for XML character data and attribute values; characters XML 1.0
/// cannot hold (most control characters) become U+FFFD.
fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(ch),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
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
        | Denial::PropertyFenced(_)
        | Denial::PropertiesReplaced
        | Denial::DatasetNotCovered(_)
        | Denial::OriginNotAllowed => StatusCode::FORBIDDEN,
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
        Denial::UnsupportedCrs => "the token has a geofence and the request's CRS, or the coordinates its features would be written in, cannot be checked against it; use EPSG:3857 or CRS:84 (EPSG:4326 for maps and tiles; for features only in WMS 1.1.1 GetFeatureInfo, WFS 1.0 and OGC API `crs`)".into(),
        Denial::UnboundedFeatureRequest => "the token has a geofence; feature requests must carry a bounding box inside it".into(),
        Denial::FenceUnverifiable => "the token has a geofence and this endpoint cannot be checked against it; use the /ogc/… endpoints".into(),
        Denial::PropertyFenced(p) => format!("property `{p}` is not visible to this token"),
        Denial::PropertiesReplaced => "this token sees only some properties, and the request replaces or clears all of a feature's properties (PUT, `\"properties\": null`, WFS-T Replace), which would erase the others; change properties one by one (PATCH, WFS-T Update)".into(),
        Denial::DatasetNotCovered(u) => format!("dataset `{u}` is not served on this path; `url` must name one of the path's datasets"),
        Denial::OriginNotAllowed => "this token may only be used from the web pages its allowedOrigins list; the request's Origin (or Referer) is not one of them, or it sent neither".into(),
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
            (Denial::DatasetNotCovered("x".into()), 403),
            (Denial::ZoomAboveMax, 403),
            (Denial::OutsideGeofence, 403),
            (Denial::UnsupportedCrs, 403),
            (Denial::UnboundedFeatureRequest, 403),
            (Denial::FenceUnverifiable, 403),
            (Denial::PropertyFenced("p".into()), 403),
            (Denial::OriginNotAllowed, 403),
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
            (Reject::BodyTimeout("x".into()), 408),
            (Reject::UnsupportedMediaType("x".into()), 415),
            (Reject::NotAcceptable("x".into()), 406),
            (Reject::Unprocessable(serde_json::json!([])), 422),
            (Reject::Forbidden("x".into()), 403),
            (Reject::TokenCopied, 400),
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
            Denial::DatasetNotCovered("file:///x".into()),
            Denial::PropertyFenced("p".into()),
        ]);
        let others = [
            Reject::BadRequest("x".into()),
            Reject::Unsupported("x".into()),
            Reject::NotFound,
            Reject::MethodNotAllowed("GET"),
            Reject::PayloadTooLarge(1),
            Reject::BodyTimeout("x".into()),
            Reject::UnsupportedMediaType("x".into()),
            Reject::NotAcceptable("x".into()),
            Reject::Unprocessable(serde_json::json!([])),
            Reject::Forbidden("x".into()),
            Reject::TokenCopied,
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

    fn exception_format(uri: &str) -> ErrorFormat {
        ErrorFormat::of(&uri.parse().expect("uri"))
    }

    fn report(uri: &str) -> Report {
        match exception_format(uri) {
            ErrorFormat::Ogc(e) => e.report,
            other => panic!("{uri}: {other:?}"),
        }
    }

    #[test]
    fn each_endpoint_answers_errors_in_its_own_format() {
        assert_eq!(exception_format("/tokens"), ErrorFormat::Json);
        assert_eq!(exception_format("/path/osm/a/b?x=1"), ErrorFormat::Json);
        assert_eq!(exception_format("/ogc/xyz/osm/1/0/0.png"), ErrorFormat::Json);
        assert_eq!(exception_format("/ogc/mvt/osm/1/0/0"), ErrorFormat::Json);
        assert_eq!(exception_format("/ogc/../x"), ErrorFormat::Json);
        assert_eq!(exception_format("/ogc/api/obs/collections/a/items?bbox=1"), ErrorFormat::Problem);
        let table = [
            ("/ogc/wms/osm?SERVICE=WMS&REQUEST=GetMap&VERSION=1.1.1", Report::Wms111),
            ("/ogc/wms/osm?service=wms&request=GetCapabilities&wmtver=1.0.0", Report::Wms111),
            ("/ogc/wms/osm?version=1.3.0&request=GetMap", Report::Wms130),
            ("/ogc/wms/osm?request=GetCapabilities", Report::Wms130),
            ("/ogc/wms/osm?VERSION=%zz&&=&x", Report::Wms130),
            ("/ogc/wmts/osm?SERVICE=WMTS&REQUEST=GetTile", Report::Ows11("1.0.0")),
            ("/ogc/wmts/osm/1.0.0/layer/default/g/3/1/2.png", Report::Ows11("1.0.0")),
            ("/ogc/wfs/lakes?SERVICE=WFS&VERSION=1.0.0&REQUEST=GetFeature", Report::Wfs100),
            ("/ogc/wfs/lakes?SERVICE=WFS&VERSION=1.1.0&REQUEST=GetFeature", Report::Ows10("1.1.0")),
            ("/ogc/wfs/lakes?SERVICE=WFS&VERSION=2.0.0&REQUEST=GetFeature", Report::Ows11("2.0.0")),
            ("/ogc/wfs/lakes", Report::Ows11("2.0.0")),
            ("/ogc/wcs/dem?SERVICE=WCS&VERSION=2.0.1&REQUEST=GetCoverage", Report::Ows20("2.0.1")),
        ];
        for (uri, want) in table {
            assert_eq!(report(uri), want, "{uri}");
        }
    }

    #[test]
    fn wms_image_exceptions_follow_exceptions_width_height_and_transparent() {
        let image = |uri: &str| match exception_format(uri) {
            ErrorFormat::Ogc(e) => e.image,
            other => panic!("{uri}: {other:?}"),
        };
        let base = "/ogc/wms/osm?SERVICE=WMS&REQUEST=GetMap&VERSION=1.3.0&WIDTH=256&HEIGHT=128";
        let got = image(&format!("{base}&EXCEPTIONS=INIMAGE")).expect("an image");
        assert_eq!((got.width, got.height, got.blank, got.transparent), (256, 128, false, false));
        assert_eq!(got.background, [255, 255, 255]);
        let got = image(&format!("{base}&exceptions=application/vnd.ogc.se_blank&TRANSPARENT=TRUE&BGCOLOR=0x102030"))
            .expect("an image");
        assert!(got.blank && got.transparent && got.background == [0x10, 0x20, 0x30]);
        assert!(image(&format!("{base}&EXCEPTIONS=XML")).is_none());
        assert!(image(base).is_none());
        // Not a map, or a size the gateway will not draw: the XML document instead.
        assert!(image("/ogc/wms/osm?REQUEST=GetFeatureInfo&WIDTH=256&HEIGHT=256&EXCEPTIONS=INIMAGE").is_none());
        assert!(image("/ogc/wms/osm?REQUEST=GetMap&WIDTH=99999&HEIGHT=256&EXCEPTIONS=INIMAGE").is_none());
        assert!(image("/ogc/wms/osm?REQUEST=GetMap&WIDTH=0&HEIGHT=256&EXCEPTIONS=INIMAGE").is_none());
    }

    fn response_text(res: Response<Body>) -> (StatusCode, String, String) {
        use http_body_util::BodyExt;
        let status = res.status();
        let content_type = res.headers()[header::CONTENT_TYPE].to_str().expect("ascii").to_owned();
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let bytes = rt.block_on(res.into_body().collect()).expect("body").to_bytes();
        (status, content_type, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Regression (#13.8): GDAL printed `HTTP status code: 403, error: (null)` and QGIS
    /// "Forbidden", since they only show OGC exception documents.
    #[test]
    fn ogc_exception_documents_carry_the_status_the_reason_and_the_message() {
        let cases = [
            ("/ogc/wms/osm?VERSION=1.1.1&REQUEST=GetMap", "application/vnd.ogc.se_xml", "ServiceExceptionReport"),
            ("/ogc/wms/osm?VERSION=1.3.0&REQUEST=GetMap", "text/xml", "ServiceExceptionReport"),
            ("/ogc/wfs/l?VERSION=1.0.0&REQUEST=GetFeature", "text/xml", "ServiceExceptionReport"),
            ("/ogc/wfs/l?VERSION=1.1.0&REQUEST=GetFeature", "application/xml", "ExceptionReport"),
            ("/ogc/wfs/l?VERSION=2.0.0&REQUEST=GetFeature", "application/xml", "ExceptionReport"),
            ("/ogc/wmts/osm?REQUEST=GetTile", "application/xml", "ExceptionReport"),
            ("/ogc/wcs/dem?REQUEST=GetCoverage", "application/xml", "ExceptionReport"),
        ];
        for (uri, media, root) in cases {
            let format = exception_format(uri);
            let (status, content_type, body) =
                response_text(Reject::Denied(Denial::OutsideGeofence).into_response_as(&format));
            assert_eq!((status, content_type.as_str()), (StatusCode::FORBIDDEN, media), "{uri}");
            let doc = roxmltree_like_root(&body);
            assert_eq!(doc, root, "{uri}: {body}");
            assert!(body.contains(r#"ode="outside_geofence""#), "{uri}: {body}");
            assert!(body.contains("not wholly inside the token&apos;s geofence (reason: outside_geofence)"), "{body}");
            // A 401 keeps its challenges in every format.
            let res = Reject::Denied(Denial::MissingToken).into_response_as(&format);
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
            assert_eq!(res.headers().get_all(header::WWW_AUTHENTICATE).iter().count(), 2, "{uri}");
        }
        // What the detail echoes is escaped, and a token in it redacted.
        let token = "tg_0123456789abcdefghijABCDEFGHIJ0123456789abcdef";
        let format = exception_format("/ogc/wms/osm?VERSION=1.3.0");
        let (_, _, body) = response_text(
            Reject::BadRequest(format!("LAYERS: `<x a=\"&\">{token}` \u{1} is unknown")).into_response_as(&format),
        );
        assert!(body.contains("`&lt;x a=&quot;&amp;&quot;&gt;&lt;redacted&gt;` \u{FFFD} is unknown"), "{body}");
        assert!(!body.contains(token));
        roxmltree_like_root(&body);
    }

    /// The root element's local name, after checking the document is well-formed XML.
    fn roxmltree_like_root(xml: &str) -> String {
        let mut reader = quick_xml::Reader::from_str(xml);
        let mut root = None;
        let mut depth = 0usize;
        loop {
            match reader.read_event().unwrap_or_else(|e| panic!("{e}: {xml}")) {
                quick_xml::events::Event::Start(e) => {
                    if depth == 0 {
                        root = Some(String::from_utf8_lossy(e.local_name().as_ref()).into_owned());
                    }
                    depth += 1;
                }
                quick_xml::events::Event::End(_) => depth -= 1,
                quick_xml::events::Event::Eof => break,
                _ => {}
            }
        }
        assert_eq!(depth, 0, "{xml}");
        root.expect("a root element")
    }

    #[test]
    fn ogc_api_errors_are_problem_details() {
        let (status, content_type, body) = response_text(
            Reject::Denied(Denial::PropertyFenced("owner".into())).into_response_as(&ErrorFormat::Problem),
        );
        assert_eq!((status, content_type.as_str()), (StatusCode::FORBIDDEN, "application/problem+json"));
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["type"], "about:blank");
        assert_eq!(v["title"], "Forbidden");
        assert_eq!(v["status"], 403);
        assert_eq!(v["reason"], "property_fenced");
        assert_eq!(v["detail"], "property `owner` is not visible to this token");
    }

    #[test]
    fn image_exceptions_are_pngs_of_the_requested_size() {
        use std::io::Read as _;
        let decode = |png: &[u8]| -> (u32, u32, Vec<u8>) {
            assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
            let width = u32::from_be_bytes(png[16..20].try_into().expect("4"));
            let height = u32::from_be_bytes(png[20..24].try_into().expect("4"));
            let mut at = 8;
            let mut data = Vec::new();
            while at < png.len() {
                let len = u32::from_be_bytes(png[at..at + 4].try_into().expect("4")) as usize;
                let kind = &png[at + 4..at + 8];
                let mut crc = crc32fast::Hasher::new();
                crc.update(&png[at + 4..at + 8 + len]);
                assert_eq!(crc.finalize().to_be_bytes(), png[at + 8 + len..at + 12 + len], "crc");
                if kind == b"IDAT" {
                    data.extend_from_slice(&png[at + 8..at + 8 + len]);
                }
                at += 12 + len;
            }
            let mut raw = Vec::new();
            flate2::read::ZlibDecoder::new(&data[..]).read_to_end(&mut raw).expect("zlib");
            (width, height, raw)
        };
        let image = ImageException { width: 100, height: 30, blank: false, transparent: true, background: [1, 2, 3] };
        let (w, h, raw) = decode(&image.render("outside the fence (reason: outside_geofence)"));
        assert_eq!((w, h), (100, 30));
        assert_eq!(raw.len(), (100usize.div_ceil(8) + 1) * 30);
        assert!(raw.iter().any(|b| *b != 0), "the message is drawn");
        let blank = ImageException { blank: true, ..image };
        let (_, _, raw) = decode(&blank.render("anything"));
        assert!(raw.iter().all(|b| *b == 0), "nothing is drawn");
        let res = Reject::Denied(Denial::ZoomAboveMax).into_response_as(&ErrorFormat::Ogc(Exception {
            report: Report::Wms130,
            image: Some(image),
            ok: false,
        }));
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "image/png");
    }

    #[test]
    fn exception_status_ok_answers_200_but_keeps_challenges_and_back_off() {
        let wms = exception_format("/ogc/wms/osm?VERSION=1.3.0");
        let ok = wms.with_status(ExceptionStatus::Ok);
        let res = Reject::Denied(Denial::OutsideGeofence).into_response_as(&ok);
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(Reject::Denied(Denial::OutsideGeofence).into_response_as(&wms).status(), StatusCode::FORBIDDEN);
        assert_eq!(Reject::UpstreamStatus(StatusCode::BAD_GATEWAY).into_response_as(&ok).status(), StatusCode::OK);
        assert_eq!(Reject::Denied(Denial::Revoked).into_response_as(&ok).status(), StatusCode::UNAUTHORIZED);
        let limited = Reject::RateLimited(std::time::Duration::from_secs(2)).into_response_as(&ok);
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        // Only OGC exceptions: OGC API and the token API keep their statuses.
        let api = exception_format("/ogc/api/x/").with_status(ExceptionStatus::Ok);
        assert_eq!(Reject::NotFound.into_response_as(&api).status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn text_wraps_at_spaces_and_splits_long_words() {
        assert_eq!(wrap("ab cd ef", 5), vec!["ab cd", "ef"]);
        assert_eq!(wrap("abcdefgh i", 3), vec!["abc", "def", "gh", "i"]);
        assert_eq!(wrap("abcdefg hi", 4), vec!["abcd", "efg", "hi"]);
        assert_eq!(wrap("  ", 3), Vec::<String>::new());
    }

    #[test]
    fn an_upstream_status_the_proxy_replaced_is_written_in_the_request_format() {
        let mut replaced = Reject::UpstreamStatus(StatusCode::SERVICE_UNAVAILABLE).into_response();
        replaced.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("7"));
        let res = localize(replaced, &"/ogc/wms/osm?VERSION=1.1.1".parse().expect("uri"), ExceptionStatus::Refusal);
        assert_eq!(res.headers()[header::RETRY_AFTER], "7");
        let (status, content_type, body) = response_text(res);
        assert_eq!((status, content_type.as_str()), (StatusCode::SERVICE_UNAVAILABLE, "application/vnd.ogc.se_xml"));
        assert!(body.contains(r#"code="upstream_error""#), "{body}");
        // Any other answer is left alone.
        let res = localize(
            Response::new(full("tile")),
            &"/ogc/wms/osm?VERSION=1.1.1".parse().expect("uri"),
            ExceptionStatus::Refusal,
        );
        assert!(!res.headers().contains_key(header::CONTENT_TYPE));
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
