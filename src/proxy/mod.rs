//! The forward stage: send a permitted request upstream and bring the answer back.
//!
//! Forwarding needs a [`Permit`], so nothing reaches an upstream undecided. The
//! request and response bodies stream in both directions; nothing is buffered
//! whole. Header hygiene lives in [`headers`].

pub mod filter;
pub mod headers;

use std::net::SocketAddr;
use std::time::Duration;

use http::{Request, Response, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::Config;
use crate::policy::Permit;
use crate::respond::{Body, BoxError, UpstreamError};

/// The pooled HTTP client to upstreams (keep-alive).
#[derive(Clone)]
pub struct Upstream {
    client: Client<HttpConnector, Body>,
}

impl Upstream {
    pub fn new(connect_timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        connector.enforce_http(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Upstream { client }
    }

    /// Sends `req` (whose headers are already sanitized) to `target`, waiting at most
    /// `response_timeout` for the response head. The body then streams.
    pub async fn send(
        &self,
        mut req: Request<Body>,
        response_timeout: Duration,
    ) -> Result<Response<Incoming>, UpstreamError> {
        *req.version_mut() = Version::HTTP_11;
        match tokio::time::timeout(response_timeout, self.client.request(req)).await {
            Err(_) => Err(UpstreamError::Timeout(response_timeout)),
            Ok(Err(e)) if e.is_connect() => Err(UpstreamError::Connect(error_chain(&e))),
            Ok(Err(e)) => Err(UpstreamError::Protocol(error_chain(&e))),
            Ok(Ok(res)) => Ok(res),
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

/// Per-request facts the forwarded headers are built from.
pub struct ForwardContext<'a> {
    pub peer: SocketAddr,
    pub tls: bool,
    pub config: &'a Config,
}

/// Builds the upstream request: target URI, sanitized headers, the gateway's own
/// identity headers, and the streamed body.
pub fn prepare(
    mut parts: http::request::Parts,
    body: Body,
    target: Uri,
    permit: &Permit,
    ctx: &ForwardContext<'_>,
) -> Request<Body> {
    headers::sanitize_request(&mut parts.headers);
    headers::set_forwarded(&mut parts.headers, ctx);
    headers::set_identity(&mut parts.headers, permit);
    parts.uri = target;
    Request::from_parts(parts, body)
}

/// A client body, boxed for forwarding as it streams.
pub fn stream(body: Incoming) -> Body {
    body.map_err(|e| Box::new(e) as BoxError).boxed()
}

/// Cleans the upstream response's headers and boxes its body for the client.
pub fn relay(res: Response<Incoming>) -> Response<Body> {
    let (mut parts, body) = res.into_parts();
    headers::sanitize_response(&mut parts.headers);
    Response::from_parts(parts, body.map_err(|e| Box::new(e) as BoxError).boxed())
}
