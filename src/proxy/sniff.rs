//! What an answer relayed unread really is, from its first bytes.
//!
//! **Images.** An answer to an image or tile request that says `image/*` must start
//! with a raster signature ([`relay_image`]): an error page, an exception document or
//! feature data labelled `image/png` is the upstream error it is, never relayed.
//!
//! **OGC exception reports answered as a success.**
//!
//! MapServer, GeoServer and QGIS Server answer many failed requests with `200 OK` and
//! an `ows:ExceptionReport` (or WMS's `ServiceExceptionReport`): it names files, data
//! sources, internal hosts in `schemaLocation`, and with GeoServer's verbose exceptions
//! a stack trace. The filters fail closed on one (it is not the document they read);
//! an answer relayed unread (an unrestricted token's GetFeature, DescribeFeatureType,
//! a coverage) is checked here first, whatever its label: the body is read up to the
//! start of its root element (at most [`PEEK_LIMIT`] bytes, inflated first when the
//! upstream compressed it in gzip or deflate; any other coding is refused) and an
//! exception root is the upstream error it is, answered by the gateway like a 4xx body.
//! Every other answer is relayed as it came, the bytes read to decide included.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header;
use http::Response;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;

use crate::proxy::UpstreamBody;
use crate::respond::{Body, BoxError};

/// How much of an XML answer is read to find its root element. A document whose root
/// starts later (a prolog of comments this long) is refused, not relayed unread.
pub const PEEK_LIMIT: usize = 16 << 10;

/// What the first bytes of an XML answer say.
#[derive(Debug, PartialEq, Eq)]
pub enum Root {
    /// An OGC exception report: not relayed.
    Exception,
    /// Any other root element: relayed.
    Document,
    /// No root element in the bytes read yet.
    NotYet,
    /// Not XML after all (text before the root): relayed; its type is the upstream's claim.
    NotXml,
}

/// Reads the root element's name from the start of an XML document: past a byte order
/// mark, whitespace, the declaration, processing instructions, comments and a DOCTYPE.
pub fn root(doc: &[u8]) -> Root {
    if let Some(ascii) = utf16_ascii(doc) {
        return root(&ascii);
    }
    let mut rest = doc.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(doc);
    loop {
        let start = rest.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(rest.len());
        rest = &rest[start..];
        if rest.is_empty() {
            return Root::NotYet;
        }
        if rest[0] != b'<' {
            return Root::NotXml;
        }
        let skip = |open: &[u8], close: &[u8], rest: &[u8]| -> Option<Option<usize>> {
            if !rest.starts_with(open) {
                return None;
            }
            Some(rest[open.len()..].windows(close.len()).position(|w| w == close).map(|i| open.len() + i + close.len()))
        };
        let skipped = skip(b"<?", b"?>", rest)
            .or_else(|| skip(b"<!--", b"-->", rest))
            .or_else(|| doctype(rest).filter(|_| rest.len() < 3 || rest[2] != b'-'));
        match skipped {
            Some(Some(n)) => rest = &rest[n..],
            Some(None) => return Root::NotYet,
            None if rest.len() < 4 && (b"<!--".starts_with(rest) || rest == b"<") => return Root::NotYet,
            None => break,
        }
    }
    let name_len = rest[1..].iter().position(|b| b.is_ascii_whitespace() || matches!(b, b'>' | b'/'));
    let Some(len) = name_len else { return Root::NotYet };
    let name = &rest[1..1 + len];
    let local = name.iter().rposition(|b| *b == b':').map_or(name, |i| &name[i + 1..]);
    if local.eq_ignore_ascii_case(b"ExceptionReport") || local.eq_ignore_ascii_case(b"ServiceExceptionReport") {
        Root::Exception
    } else {
        Root::Document
    }
}

/// `<!DOCTYPE …>` (or another `<!` declaration), an internal subset `[…]` included:
/// its length, `Some(None)` when it does not end in `rest`, `None` when `rest` is not one.
fn doctype(rest: &[u8]) -> Option<Option<usize>> {
    if !rest.starts_with(b"<!") {
        return None;
    }
    let close = rest.iter().position(|b| matches!(b, b'>' | b'['));
    Some(match close {
        Some(i) if rest[i] == b'>' => Some(i + 1),
        Some(i) => rest[i..]
            .windows(2)
            .position(|w| w[0] == b']')
            .and_then(|j| rest[i + j..].iter().position(|b| *b == b'>').map(|k| i + j + k + 1)),
        None => None,
    })
}

/// The ASCII characters at the start of a UTF-16 document (with a byte order mark, or
/// without one when it starts with `<`), up to the first character outside ASCII: enough
/// to read its root element's name. `None` for anything else.
fn utf16_ascii(doc: &[u8]) -> Option<Vec<u8>> {
    let (body, little) = match doc {
        [0xFF, 0xFE, rest @ ..] => (rest, true),
        [0xFE, 0xFF, rest @ ..] => (rest, false),
        [b'<', 0, ..] => (doc, true),
        [0, b'<', ..] => (doc, false),
        _ => return None,
    };
    let ascii = body
        .chunks_exact(2)
        .map(|pair| if little { (pair[0], pair[1]) } else { (pair[1], pair[0]) })
        .take_while(|(low, high)| *high == 0 && low.is_ascii())
        .map(|(low, _)| low)
        .collect();
    Some(ascii)
}

/// Relays a successful answer the gateway does not filter, unless it is an OGC
/// exception report (then the gateway's own `upstream_error`, 502). Every answer is
/// looked at, whatever its label: an exception report sent as `text/plain`, JSON, a
/// binary type or none is still one (attacker round 5).
pub async fn relay_checked(res: Response<UpstreamBody>) -> Response<Body> {
    if !res.status().is_success() {
        return super::relay(res);
    }
    // A coding the gateway never asked for (it asks only for gzip and deflate, or identity):
    // refused whatever the label (attacker round 7: brotli as `image/tiff`).
    let Some(inflate) = Inflate::for_coding(&res) else {
        return refused(&res, "an answer in a content coding the gateway did not ask for");
    };
    peek(res, inflate, |head, ended| match root(head) {
        Root::Exception => Peeked::Refuse("the upstream answered with an OGC exception report and a success status"),
        Root::Document | Root::NotXml => Peeked::Relay,
        Root::NotYet if ended && head.iter().all(u8::is_ascii_whitespace) => Peeked::Relay,
        Root::NotYet if ended || head.len() >= PEEK_LIMIT => {
            Peeked::Refuse("an XML answer whose root element the gateway could not find")
        }
        Root::NotYet => Peeked::More,
    })
    .await
}

/// The signatures of the raster formats map servers answer with: PNG, JPEG, GIF, WebP,
/// TIFF, BMP, JPEG 2000, AVIF. An answer to an image or tile request whose media type
/// says `image/*` must start with one; an empty body passes (there is nothing in it).
/// `None`: fewer than 12 bytes that start no signature (read more, if there is more).
pub fn is_raster(head: &[u8]) -> Option<bool> {
    const MAGIC: [&[u8]; 8] = [
        b"\x89PNG\r\n\x1a\n",
        b"\xFF\xD8\xFF",
        b"GIF87a",
        b"GIF89a",
        b"II*\0",
        b"MM\0*",
        b"BM",
        b"\0\0\0\x0cjP  \r\n\x87\n",
    ];
    let webp = head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP";
    let avif = head.len() >= 12 && &head[4..8] == b"ftyp" && matches!(&head[8..12], b"avif" | b"avis");
    if webp || avif || MAGIC.iter().any(|m| head.starts_with(m)) {
        Some(true)
    } else if head.len() < 12 {
        None // too short to tell yet
    } else {
        Some(false)
    }
}

/// Relays an image the gateway does not decode, once its first bytes are a raster
/// signature ([`is_raster`]): an upstream that labels an error page, an exception or
/// data `image/png` is not relayed as one. An image in gzip or deflate is inflated to
/// look; one in another coding is refused.
pub async fn relay_image(res: Response<UpstreamBody>) -> Response<Body> {
    if !res.status().is_success() || res.status() == http::StatusCode::NO_CONTENT {
        return super::relay(res);
    }
    // A coded image is inflated to look (the client would inflate it too; an exception
    // document inside was relayed as the tile: attacker round 5).
    let Some(inflate) = Inflate::for_coding(&res) else {
        return refused(&res, "an image in a content coding the gateway cannot read");
    };
    peek(res, inflate, |head, ended| match is_raster(head) {
        Some(true) => Peeked::Relay,
        None if ended && head.is_empty() => Peeked::Relay,
        None if !ended => Peeked::More,
        Some(false) | None => Peeked::Refuse("the upstream answered an image request with a body that is no image"),
    })
    .await
}

enum Peeked {
    Relay,
    Refuse(&'static str),
    More,
}

/// Reads frames until `decide` (given what was read, inflated, and whether the body
/// ended) relays or refuses; then relays every frame read and the rest, or answers
/// with the gateway's own error.
async fn peek(
    res: Response<UpstreamBody>,
    mut inflate: Inflate,
    decide: impl Fn(&[u8], bool) -> Peeked,
) -> Response<Body> {
    let (parts, mut body) = res.into_parts();
    // The frames read to decide: nearly always one (no allocation for it).
    let mut read = Read { first: None, more: std::collections::VecDeque::new() };
    let mut ended = false;
    let refusal = loop {
        match decide(inflate.output(), ended) {
            Peeked::Relay => break None,
            Peeked::Refuse(why) => break Some(why),
            Peeked::More if ended => break Some("the answer ended before the gateway could check it"),
            Peeked::More => {}
        }
        match body.frame().await {
            None => ended = true,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "the upstream's answer broke off while its first bytes were read");
                return super::replaced_as(&Response::from_parts(parts, ()), http::StatusCode::BAD_GATEWAY);
            }
            Some(Ok(frame)) => {
                let broken = match frame.data_ref() {
                    Some(data) => inflate.write(data).is_err(),
                    None => {
                        ended = true;
                        false
                    }
                };
                read.push(frame);
                if broken {
                    break Some("an answer whose compressed body does not inflate");
                }
            }
        }
    };
    let res = Response::from_parts(parts, ());
    if let Some(why) = refusal {
        tracing::warn!(upstream.content_type = ?res.headers().get(header::CONTENT_TYPE), "{why}; not relayed");
        return own_error(&res);
    }
    let (mut parts, ()) = res.into_parts();
    super::headers::sanitize_response(&mut parts.headers);
    Response::from_parts(parts, Prefixed { read, rest: body }.boxed())
}

/// Frames read ahead, in order.
struct Read {
    first: Option<Frame<Bytes>>,
    more: std::collections::VecDeque<Frame<Bytes>>,
}

impl Read {
    fn push(&mut self, frame: Frame<Bytes>) {
        if self.first.is_none() && self.more.is_empty() {
            self.first = Some(frame);
        } else {
            self.more.push_back(frame);
        }
    }

    fn next(&mut self) -> Option<Frame<Bytes>> {
        self.first.take().or_else(|| self.more.pop_front())
    }

    fn is_empty(&self) -> bool {
        self.first.is_none() && self.more.is_empty()
    }

    fn held_bytes(&self) -> u64 {
        self.first.iter().chain(&self.more).filter_map(|f| f.data_ref()).map(|d| d.len() as u64).sum()
    }
}

fn own_error<B>(res: &Response<B>) -> Response<Body> {
    super::replaced_as(res, http::StatusCode::BAD_GATEWAY)
}

fn refused(res: &Response<UpstreamBody>, why: &str) -> Response<Body> {
    tracing::warn!(upstream.content_encoding = ?res.headers().get(header::CONTENT_ENCODING), "{why}; not relayed");
    own_error(res)
}

enum Inflate {
    /// The first frame's bytes as they came (shared, not copied: a tile's one frame
    /// costs no allocation), joined into `joined` only when a second frame is needed.
    Identity {
        first: Option<Bytes>,
        joined: Vec<u8>,
    },
    Gzip(Box<flate2::write::GzDecoder<Vec<u8>>>),
    Deflate(Box<flate2::write::ZlibDecoder<Vec<u8>>>),
}

impl Inflate {
    fn identity() -> Inflate {
        Inflate::Identity { first: None, joined: Vec::new() }
    }

    /// The reader for the answer's `Content-Encoding`: none or `identity`, `gzip`
    /// (`x-gzip`), `deflate`; `None` for any other coding.
    fn for_coding(res: &Response<UpstreamBody>) -> Option<Inflate> {
        let Some(value) = res.headers().get(header::CONTENT_ENCODING) else { return Some(Inflate::identity()) };
        let coding = value.to_str().ok()?.trim();
        let is = |name: &str| coding.eq_ignore_ascii_case(name);
        if is("identity") {
            Some(Inflate::identity())
        } else if is("gzip") || is("x-gzip") {
            Some(Inflate::Gzip(Box::new(flate2::write::GzDecoder::new(Vec::new()))))
        } else if is("deflate") {
            Some(Inflate::Deflate(Box::new(flate2::write::ZlibDecoder::new(Vec::new()))))
        } else {
            None
        }
    }

    /// Adds input; the output it gives stays bounded by what [`root`] needs: the
    /// caller stops at [`PEEK_LIMIT`] of either.
    fn write(&mut self, data: &Bytes) -> std::io::Result<()> {
        match self {
            Inflate::Identity { first, joined } => {
                match first.take() {
                    None if joined.is_empty() => *first = Some(data.clone()),
                    held => {
                        if let Some(held) = held {
                            joined.extend_from_slice(&held[..held.len().min(PEEK_LIMIT)]);
                        }
                        let room = PEEK_LIMIT.saturating_sub(joined.len());
                        joined.extend_from_slice(&data[..data.len().min(room)]);
                    }
                }
                Ok(())
            }
            // At most one step of input at a time, so a bomb stops at the limit.
            Inflate::Gzip(d) => write_bounded(d.as_mut(), data, |d| d.get_ref().len()),
            Inflate::Deflate(d) => write_bounded(d.as_mut(), data, |d| d.get_ref().len()),
        }
    }

    fn output(&self) -> &[u8] {
        match self {
            Inflate::Identity { first: Some(first), .. } => &first[..first.len().min(PEEK_LIMIT)],
            Inflate::Identity { joined, .. } => joined,
            Inflate::Gzip(d) => d.get_ref(),
            Inflate::Deflate(d) => d.get_ref(),
        }
    }
}

fn write_bounded<W: std::io::Write>(w: &mut W, data: &[u8], len: impl Fn(&W) -> usize) -> std::io::Result<()> {
    for step in data.chunks(1024) {
        if len(w) >= PEEK_LIMIT {
            break;
        }
        w.write_all(step)?;
        w.flush()?;
    }
    Ok(())
}

/// The frames read to decide, then the rest of the upstream's body.
struct Prefixed {
    read: Read,
    rest: UpstreamBody,
}

impl http_body::Body for Prefixed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(frame) = self.read.next() {
            return Poll::Ready(Some(Ok(frame)));
        }
        Pin::new(&mut self.rest).poll_frame(cx).map_err(|e| Box::new(e) as BoxError)
    }

    fn is_end_stream(&self) -> bool {
        self.read.is_empty() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let held = self.read.held_bytes();
        let rest = self.rest.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + held);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + held);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    #[test]
    fn finds_the_root_past_the_prolog() {
        let cases: &[(&str, Root)] = &[
            (r#"<?xml version="1.0"?><ows:ExceptionReport version="2.0.0">"#, Root::Exception),
            ("\u{feff}<?xml version='1.0'?>\n<!-- MapServer -->\n<ServiceExceptionReport>", Root::Exception),
            (
                r#"<!DOCTYPE ServiceExceptionReport SYSTEM "x.dtd"><ServiceExceptionReport version="1.1.1">"#,
                Root::Exception,
            ),
            ("<ows:exceptionreport/>", Root::Exception),
            (r#"<?xml version="1.0"?><wfs:FeatureCollection xmlns:wfs="…">"#, Root::Document),
            ("<ExceptionReportX/>", Root::Document),
            ("<!-- ExceptionReport --><Capabilities>", Root::Document),
            ("<?xml version=\"1.0\"?><!-- not closed", Root::NotYet),
            ("<?xml version=\"1.0\"?><ows:Exception", Root::NotYet),
            ("<!-", Root::NotYet),
            ("  ", Root::NotYet),
            ("GIF89a", Root::NotXml),
        ];
        for (doc, want) in cases {
            assert_eq!(&root(doc.as_bytes()), want, "{doc}");
        }
    }

    #[test]
    fn utf16_and_internal_subsets_do_not_hide_the_root() {
        let utf16le: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain(
                "<?xml version=\"1.0\" encoding=\"UTF-16\"?><ows:ExceptionReport>"
                    .encode_utf16()
                    .flat_map(u16::to_le_bytes),
            )
            .collect();
        assert_eq!(root(&utf16le), Root::Exception);
        let utf16be: Vec<u8> = "<ServiceExceptionReport/>".encode_utf16().flat_map(u16::to_be_bytes).collect();
        assert_eq!(root(&utf16be), Root::Exception);
        let subset = r#"<!DOCTYPE r [<!ENTITY x "y"> <!ELEMENT r ANY>]><ServiceExceptionReport>"#;
        assert_eq!(root(subset.as_bytes()), Root::Exception);
        assert_eq!(root(b"<!DOCTYPE r [<!ENTITY x"), Root::NotYet);
    }

    #[test]
    fn raster_signatures() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        assert_eq!(is_raster(png), Some(true));
        assert_eq!(is_raster(b"\xFF\xD8\xFF\xE0\0\x10JFIF\0\x01\x01"), Some(true));
        assert_eq!(is_raster(b"RIFF\x24\0\0\0WEBPVP8 "), Some(true));
        assert_eq!(is_raster(b"GIF89a\x01\0\x01\0\x80\0"), Some(true));
        assert_eq!(is_raster(b"\x89PN"), None, "too short to tell");
        assert_eq!(is_raster(b"<?xml version=\"1.0\"?><ServiceExceptionReport>"), Some(false));
        assert_eq!(is_raster(b"<html><body>Internal error"), Some(false));
        assert_eq!(is_raster(b"{\"type\":\"FeatureCollection\"}"), Some(false));
    }

    #[test]
    fn a_compressed_bomb_stops_at_the_limit() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(b"<?xml version=\"1.0\"?><!--").unwrap();
        gz.write_all(&vec![b' '; 50 << 20]).unwrap();
        let packed = gz.finish().unwrap();
        let mut inflate = Inflate::Gzip(Box::new(flate2::write::GzDecoder::new(Vec::new())));
        inflate.write(&Bytes::from(packed)).unwrap();
        assert!(inflate.output().len() < PEEK_LIMIT + 1024 * 1100, "{}", inflate.output().len());
        assert_eq!(root(inflate.output()), Root::NotYet);
    }
}
