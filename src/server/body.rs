//! The request body every handler reads or forwards: the client's body with a
//! read timeout.
//!
//! hyper bounds how long a request head may take (`server.header_read_timeout`)
//! but not a body: a client trickling one byte a second holds its connection
//! (and a `server.max_connections` place) for as long as it likes. [`RequestBody`]
//! wraps every request body the server hands to the gateway, so whatever reads it
//! — the token API, an OGC POST judged whole, a body streamed upstream — is cut
//! the same way. The rule ([`BodyRate`]) has two parts:
//!
//! - no gap between two reads may exceed `server.body_read_timeout` (nginx's
//!   `client_body_timeout`): a client that stops sending is cut;
//! - after a first `server.body_read_timeout`, the body must average at least
//!   `server.body_min_rate` bytes per second (Apache `mod_reqtimeout`'s
//!   `MinRate`, Kestrel's `MinRequestBodyDataRate`): a client sending just
//!   enough to beat the gap timer is cut too. A gap timer alone cannot stop a
//!   trickle of one byte every few seconds; a minimum rate alone would let a
//!   client that sent fast at first stall for long.
//!
//! Time counts only while the reader waits for the client (a body whose reader
//! is busy, e.g. connecting upstream, is not charged for it). A body that breaks
//! the rule ends with [`BodyTimeout`], counted in
//! `tilegate_request_body_timeouts_total`; the reader answers or aborts as it
//! does for any broken body, and the server then closes an HTTP/1.1 connection
//! (an HTTP/2 stream is reset, its connection lives on).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

/// The body read rule (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyRate {
    /// The longest gap between reads, and the allowance before the minimum rate applies.
    pub timeout: Duration,
    /// Bytes per second the body must average after the first `timeout`.
    pub min_rate: u64,
}

impl BodyRate {
    /// Whether a body that has `received` bytes, after the reader waited `waited`
    /// in all and `gap` since the last bytes, is too slow.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tilegate::server::body::BodyRate;
    /// let rule = BodyRate { timeout: Duration::from_secs(10), min_rate: 500 };
    /// let s = Duration::from_secs;
    /// assert!(!rule.too_slow(0, s(9), s(9)), "the allowance");
    /// assert!(rule.too_slow(0, s(10), s(10)), "nothing for the whole gap");
    /// assert!(rule.too_slow(12, s(12), s(1)), "one byte a second");
    /// assert!(!rule.too_slow(5000, s(19), s(1)), "500 bytes a second after the allowance");
    /// ```
    pub fn too_slow(&self, received: u64, waited: Duration, gap: Duration) -> bool {
        gap >= self.timeout || waited > self.allowed(received)
    }

    /// How long the reader may have waited in all for `received` bytes.
    fn allowed(&self, received: u64) -> Duration {
        let earned = if self.min_rate == 0 {
            Duration::MAX
        } else {
            Duration::from_secs_f64(received as f64 / self.min_rate as f64)
        };
        self.timeout.saturating_add(earned)
    }
}

/// A request body that arrived slower than the server's body rule allows.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error(
    "the request body arrived too slowly (server.body_read_timeout = {timeout:?}, server.body_min_rate = {min_rate} bytes/s)"
)]
pub struct BodyTimeout {
    pub timeout: Duration,
    pub min_rate: u64,
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error(transparent)]
    Read(#[from] hyper::Error),
    #[error(transparent)]
    Timeout(#[from] BodyTimeout),
}

/// The [`BodyTimeout`] somewhere in `error`'s source chain, if the error came
/// from a body cut for being too slow (as the token API, the OGC body reader and
/// the upstream client report it, each wrapping it in its own error).
pub fn timed_out<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a BodyTimeout> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(BodyError::Timeout(t)) = e.downcast_ref::<BodyError>() {
            return Some(t);
        }
        if let Some(t) = e.downcast_ref::<BodyTimeout>() {
            return Some(t);
        }
        next = e.source();
    }
    None
}

/// 408 `request_body_timeout` when `error` came from a body cut for being too slow.
pub fn too_slow(error: &(dyn std::error::Error + 'static)) -> Option<crate::respond::Reject> {
    timed_out(error).map(|t| crate::respond::Reject::BodyTimeout(t.to_string()))
}

/// Told when a body timed out (the connection closes an HTTP/1.1 connection, counts it).
pub trait OnTimeout: Send + Sync {
    fn timed_out(&self);
}

/// The client's request body, read under [`BodyRate`].
pub struct RequestBody {
    inner: Incoming,
    rule: BodyRate,
    received: u64,
    /// Time the reader waited for the client, up to `waiting_since`.
    waited: Duration,
    waiting_since: Option<Instant>,
    sleep: Option<Pin<Box<Sleep>>>,
    on_timeout: Option<Arc<dyn OnTimeout>>,
    done: bool,
}

impl RequestBody {
    pub fn new(inner: Incoming, rule: BodyRate, on_timeout: Option<Arc<dyn OnTimeout>>) -> Self {
        RequestBody {
            inner,
            rule,
            received: 0,
            waited: Duration::ZERO,
            waiting_since: None,
            sleep: None,
            on_timeout,
            done: false,
        }
    }

    /// Checks the rule while waiting; `Ready(err)` when broken, else arms the timer.
    fn check(&mut self, cx: &mut Context<'_>) -> Poll<BodyTimeout> {
        let now = Instant::now();
        let since = *self.waiting_since.get_or_insert(now);
        // The gap is this wait: the reader asked and nothing came.
        let gap = now.saturating_duration_since(since);
        let waited = self.waited + gap;
        if self.rule.too_slow(self.received, waited, gap) {
            self.done = true;
            if let Some(t) = self.on_timeout.take() {
                t.timed_out();
            }
            return Poll::Ready(BodyTimeout { timeout: self.rule.timeout, min_rate: self.rule.min_rate });
        }
        let left = (self.rule.timeout - gap).min(self.rule.allowed(self.received).saturating_sub(waited));
        let at = now + left + Duration::from_millis(1);
        match self.sleep.as_mut() {
            Some(s) => s.as_mut().reset(at),
            None => self.sleep = Some(Box::pin(tokio::time::sleep_until(at))),
        }
        if let Some(s) = self.sleep.as_mut() {
            if s.as_mut().poll(cx).is_ready() {
                // The deadline passed between the check and now: check again next poll.
                cx.waker().wake_by_ref();
            }
        }
        Poll::Pending
    }
}

use std::future::Future as _;

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let now = Instant::now();
                if let Some(since) = this.waiting_since.take() {
                    this.waited += now.saturating_duration_since(since);
                }
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.check(cx) {
                Poll::Ready(e) => Poll::Ready(Some(Err(e.into()))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that holds its request's [`InFlight`] mark until it ends or
/// is dropped, so admission never sheds a connection whose answer is still
/// being written, and draining waits for it.
pub struct InFlightBody<B> {
    inner: B,
    _in_flight: super::admission::InFlight,
}

impl<B> InFlightBody<B> {
    pub fn new(inner: B, in_flight: super::admission::InFlight) -> Self {
        InFlightBody { inner, _in_flight: in_flight }
    }
}

impl<B: Body + Unpin> Body for InFlightBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
