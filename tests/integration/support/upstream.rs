//! An in-process upstream that records what reaches it.
//!
//! Paths: `/slow` answers after 3 s; `/big/{bytes}` streams that many bytes in
//! 64 KiB chunks and holds the last chunk until [`TestUpstream::release`] is
//! called (so a test can prove the gateway streams); `/gml/{fixture}` serves a
//! captured MapServer answer; anything else answers 200 with the path in the body.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: http::Method,
    pub uri: String,
    pub headers: HeaderMap,
    /// The request body as received (up to where it ended or broke).
    pub body: Vec<u8>,
    /// The body arrived whole (its framing ended); false when the connection broke.
    pub complete: bool,
    /// Request trailers, if any arrived.
    pub trailers: Option<HeaderMap>,
}

#[derive(Clone)]
pub struct TestUpstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    release: Arc<Notify>,
}

type Body = BoxBody<Bytes, Infallible>;

impl TestUpstream {
    pub async fn start() -> TestUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind upstream");
        let addr = listener.local_addr().expect("addr");
        let up = TestUpstream { addr, seen: Arc::default(), release: Arc::new(Notify::new()) };
        let server = up.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let server = server.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let server = server.clone();
                        async move { Ok::<_, Infallible>(server.answer(req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        up
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    /// The most recent request.
    pub fn last(&self) -> Seen {
        self.seen().last().cloned().expect("the upstream saw a request")
    }

    /// Lets a held `/big/…` response send its last chunk.
    pub fn release(&self) {
        self.release.notify_one();
    }

    async fn answer(&self, req: Request<Incoming>) -> Response<Body> {
        let (parts, mut body) = req.into_parts();
        let (mut received, mut trailers) = (Vec::new(), None);
        let complete = loop {
            match body.frame().await {
                None => break true,
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => received.extend_from_slice(&data),
                    Err(frame) => trailers = frame.into_trailers().ok(),
                },
                Some(Err(_)) => break false,
            }
        };
        self.seen.lock().expect("lock").push(Seen {
            method: parts.method.clone(),
            uri: parts.uri.to_string(),
            headers: parts.headers.clone(),
            body: received,
            complete,
            trailers,
        });
        let path = parts.uri.path().to_owned();
        if path.ends_with("/slow") {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        if let Some(n) = path.rsplit_once("/big/").and_then(|(_, n)| n.parse::<usize>().ok()) {
            return self.big(n);
        }
        let query = parts.uri.query().unwrap_or("").to_owned();
        if path.ends_with("/wms") && query.to_ascii_uppercase().contains("REQUEST=GETCAPABILITIES") {
            return typed("text/xml", self.wms_capabilities());
        }
        if path.ends_with("/exception400") {
            // MapServer/GeoServer style: an exception naming the upstream and a file path.
            let up = self.addr;
            let body = format!(
                r#"<?xml version="1.0"?><ServiceExceptionReport version="1.3.0" xmlns="http://www.opengis.net/ogc" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="http://www.opengis.net/ogc http://{up}/schemas/exceptions_1_3_0.xsd"><ServiceException>msDrawMap(): Unable to access file. (/srv/secret/roads.shp)</ServiceException></ServiceExceptionReport>"#
            );
            let mut res = typed("text/xml", body.into_bytes());
            *res.status_mut() = http::StatusCode::BAD_REQUEST;
            return res;
        }
        if path.ends_with("/exception200") {
            // MapServer answers a failed WMS 1.1.1 GetMap 200 `application/vnd.ogc.se_xml`.
            let body = format!(
                r#"<?xml version="1.0"?><ServiceExceptionReport version="1.1.1"><ServiceException>msDrawMap(): Image handling error. Failed to draw layer named 'secret_roads'. (/srv/secret/roads.map) http://{}/x</ServiceException></ServiceExceptionReport>"#,
                self.addr
            );
            return typed("application/vnd.ogc.se_xml", body.into_bytes());
        }
        if path.ends_with("/mislabelled.png") {
            // An error page labelled as the image that was asked for (a CDN or a broken
            // tile source does this), naming internal hosts.
            return typed("image/png", b"<html><body>502 from tiles-3.internal:8080</body></html>".to_vec());
        }
        if path.ends_with("/coded-xml") {
            // GeoServer's gzip filter compresses every XML answer, exceptions included.
            use std::io::Write as _;
            let doc = format!(
                r#"<?xml version="1.0"?><ows:ExceptionReport xmlns:ows="http://www.opengis.net/ows/1.1"><ows:Exception exceptionCode="NoApplicableCode"><ows:ExceptionText>java.io.IOException: http://{}/geoserver/data/secret</ows:ExceptionText></ows:Exception></ows:ExceptionReport>"#,
                self.addr
            );
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(doc.as_bytes()).expect("gzip");
            let mut res = typed("application/xml", e.finish().expect("gzip"));
            res.headers_mut().insert("content-encoding", http::HeaderValue::from_static("gzip"));
            return res;
        }
        if path.ends_with("/coded-image.png")
            || path.ends_with("/untyped-exception")
            || path.ends_with("/plain-exception")
        {
            // An exception report dressed as something else: a gzip-coded `image/png`,
            // no type at all, `text/plain` (attacker round 5).
            use std::io::Write as _;
            let doc = format!(
                r#"<?xml version="1.0"?><ServiceExceptionReport><ServiceException>/srv/secret/roads.map at http://{}/x</ServiceException></ServiceExceptionReport>"#,
                self.addr
            );
            if path.ends_with("/coded-image.png") {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(doc.as_bytes()).expect("gzip");
                let mut res = typed("image/png", e.finish().expect("gzip"));
                res.headers_mut().insert("content-encoding", http::HeaderValue::from_static("gzip"));
                return res;
            }
            if path.ends_with("/plain-exception") {
                return typed("text/plain", doc.into_bytes());
            }
            return Response::new(Full::new(Bytes::from(doc)).map_err(|e| match e {}).boxed());
        }
        if path.ends_with("/exception200-wfs") {
            // MapServer answers a failed WFS request 200 `text/xml` with an exception
            // report naming the map file and the upstream.
            let body = format!(
                r#"<?xml version="1.0" encoding="UTF-8"?>
<ows:ExceptionReport xmlns:ows="http://www.opengis.net/ows/1.1" version="2.0.0" xsi:schemaLocation="http://www.opengis.net/ows/1.1 http://{}/schemas/owsExceptionReport.xsd" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><ows:Exception exceptionCode="InvalidParameterValue"><ows:ExceptionText>msWFSGetFeature(): /srv/secret/roads.map</ows:ExceptionText></ows:Exception></ows:ExceptionReport>"#,
                self.addr
            );
            return typed("text/xml; subtype=gml/3.2.1", body.into_bytes());
        }
        if path.ends_with("/worker.js") || path.ends_with("/page.html") {
            // An upstream page that would run as the gateway's origin: a service worker
            // claiming the whole origin, a wipe of its storage, a loose policy of its own.
            let (ct, body): (&str, &[u8]) = if path.ends_with(".js") {
                ("text/javascript", b"self.addEventListener('fetch', e => {});")
            } else {
                ("text/html", b"<script>navigator.serviceWorker.register('worker.js', {scope: '/'})</script>")
            };
            let mut res = typed(ct, body.to_vec());
            let h = res.headers_mut();
            h.insert("service-worker-allowed", http::HeaderValue::from_static("/"));
            h.insert("clear-site-data", http::HeaderValue::from_static("\"storage\""));
            h.insert("content-security-policy", http::HeaderValue::from_static("script-src *"));
            h.insert("report-to", http::HeaderValue::from_static("{\"url\":\"http://10.0.0.5/r\"}"));
            return res;
        }
        if path.ends_with("/session") {
            // Upstream state and identity: a session cookie, its own challenge, its software.
            let mut res = typed("image/png", b"\x89PNG\r\n\x1a\n(a tile)".to_vec());
            let h = res.headers_mut();
            h.append("set-cookie", http::HeaderValue::from_static("JSESSIONID=secret-session; Path=/geoserver"));
            h.append("set-cookie", http::HeaderValue::from_static("AWSALB=sticky; Path=/"));
            h.insert("set-cookie2", http::HeaderValue::from_static("old=1; Version=1"));
            h.insert("www-authenticate", http::HeaderValue::from_static("Basic realm=\"GeoServer Realm\""));
            h.insert("alt-svc", http::HeaderValue::from_static("h2=\"10.0.0.5:8443\""));
            h.insert("x-backend-server", http::HeaderValue::from_static("geo-3.internal"));
            return res;
        }
        if path.ends_with("/auth401") {
            let mut res = typed("text/html", b"<h1>HTTP ERROR 401 GeoServer Realm</h1>".to_vec());
            *res.status_mut() = http::StatusCode::UNAUTHORIZED;
            res.headers_mut()
                .insert("www-authenticate", http::HeaderValue::from_static("Basic realm=\"GeoServer Realm\""));
            return res;
        }
        if path.ends_with("/fail500") {
            let mut res = typed("text/html", b"<pre>java.lang.NullPointerException\n\tat org.geoserver.Dispatcher (http://10.0.0.5:8080/geoserver/ows)</pre>".to_vec());
            *res.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
            return res;
        }
        if path.ends_with("/redirect") {
            let mut res = typed("text/plain", b"moved".to_vec());
            *res.status_mut() = http::StatusCode::FOUND;
            let up = self.addr;
            let h = res.headers_mut();
            // `http:/\host`: browsers read it as absolute.
            h.insert("location", http::HeaderValue::from_str(&format!("http:/\\{up}/secret/")).expect("value"));
            h.insert("server", http::HeaderValue::from_static("GeoServer/2.24 Jetty"));
            h.insert("x-powered-by", http::HeaderValue::from_static("pygeoapi 0.21.0"));
            h.insert("link", http::HeaderValue::from_str(&format!("<//{up}/next>; rel=next")).expect("value"));
            h.insert("content-location", http::HeaderValue::from_static("/osm/here"));
            return res;
        }
        if let Some(name) = path.strip_prefix("/gml/") {
            return self.gml_fixture(name);
        }
        if let Some(coding) = path.strip_prefix("/coded/").and_then(|r| r.split('/').next()) {
            return coded(coding);
        }
        if path.ends_with("/page-rels") {
            return typed("application/geo+json", page_rels(self.addr).into_bytes());
        }
        if path.ends_with("/foreign-members") {
            return typed("application/geo+json", FOREIGN_MEMBERS.as_bytes().to_vec());
        }
        if path.contains("/collections/") && path.ends_with("/items") {
            let limit =
                query.split('&').find_map(|p| p.strip_prefix("limit=")).and_then(|n| n.parse().ok()).unwrap_or(10);
            return self.features(limit);
        }
        if let Some(zxy) = path.strip_prefix("/mvt/") {
            let _ = zxy;
            return typed("application/vnd.mapbox-vector-tile", sample_mvt());
        }
        let mut res = Response::new(
            Full::new(Bytes::from(format!("upstream saw {}", parts.uri))).map_err(|e| match e {}).boxed(),
        );
        res.headers_mut().insert("keep-alive", http::HeaderValue::from_static("timeout=5"));
        res.headers_mut().insert("x-upstream", http::HeaderValue::from_static("yes"));
        res
    }

    fn wms_capabilities(&self) -> Vec<u8> {
        let up = self.addr;
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<WMS_Capabilities version="1.3.0" xmlns="http://www.opengis.net/wms" xmlns:xlink="http://www.w3.org/1999/xlink">
<Service><Name>WMS</Name><Title>test</Title><OnlineResource xlink:href="http://{up}/wms?"/></Service>
<Capability>
<Request><GetCapabilities><Format>text/xml</Format><DCPType><HTTP><Get><OnlineResource xlink:href="http://{up}/wms?"/></Get></HTTP></DCPType></GetCapabilities>
<GetMap><Format>image/png</Format><DCPType><HTTP><Get><OnlineResource xlink:href="http://{up}/wms?"/></Get></HTTP></DCPType></GetMap></Request>
<Exception><Format>XML</Format></Exception>
<Layer><Title>root</Title><CRS>EPSG:3857</CRS>
<Layer queryable="1"><Name>osm</Name><Title>OSM</Title></Layer>
<Layer queryable="1"><Name>secret</Name><Title>Secret</Title></Layer>
</Layer>
</Capability>
</WMS_Capabilities>"#
        )
        .into_bytes()
    }

    /// A FeatureCollection of `n` points, generated as it streams (any size, little memory).
    fn features(&self, n: usize) -> Response<Body> {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
        let up = self.addr;
        tokio::spawn(async move {
            let head = format!(
                r#"{{"type":"FeatureCollection","links":[{{"href":"http://{up}/api/collections/places/items?offset=10","rel":"next"}}],"features":["#
            );
            if tx.send(Ok(Frame::data(Bytes::from(head)))).await.is_err() {
                return;
            }
            let mut chunk = String::with_capacity(64 * 1024);
            for i in 0..n {
                if i > 0 {
                    chunk.push(',');
                }
                let lon = -170.0 + (i % 340) as f64;
                let lat = -60.0 + (i % 120) as f64;
                chunk.push_str(&format!(
                    r#"{{"type":"Feature","id":{i},"geometry":{{"type":"Point","coordinates":[{lon},{lat}]}},"properties":{{"name":"place {i}","secret_note":"hidden {i}","population":{i}}}}}"#
                ));
                if chunk.len() > 60 * 1024
                    && tx.send(Ok(Frame::data(Bytes::from(std::mem::take(&mut chunk))))).await.is_err()
                {
                    return;
                }
            }
            chunk.push_str("]}");
            let _ = tx.send(Ok(Frame::data(Bytes::from(chunk)))).await;
        });
        let mut res = Response::new(BodyExt::boxed(ChannelBody(rx)));
        res.headers_mut().insert("content-type", http::HeaderValue::from_static("application/geo+json"));
        res
    }

    /// `/gml/{name}`: the captured MapServer answer `tests/fixtures/gml/{name}`, its
    /// `http://127.0.0.1:9/cgi-bin/mapserv` online resource replaced by this upstream's
    /// `/gml/{name}`, sent in 1 KiB frames.
    fn gml_fixture(&self, name: &str) -> Response<Body> {
        let path = format!("{}/tests/fixtures/gml/{name}", env!("CARGO_MANIFEST_DIR"));
        let Ok(doc) = std::fs::read_to_string(&path) else {
            let mut res = typed("text/plain", b"no such fixture".to_vec());
            *res.status_mut() = http::StatusCode::NOT_FOUND;
            return res;
        };
        let doc = doc.replace("127.0.0.1:9/cgi-bin/mapserv", &format!("{}/gml/{name}", self.addr));
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
        tokio::spawn(async move {
            for chunk in doc.into_bytes().chunks(1024) {
                if tx.send(Ok(Frame::data(Bytes::copy_from_slice(chunk)))).await.is_err() {
                    return;
                }
            }
        });
        let mut res = Response::new(BodyExt::boxed(ChannelBody(rx)));
        let kind = if name.ends_with(".xsd") { "text/xml; subtype=gml/3.2" } else { "text/xml; subtype=gml/3.1.1" };
        res.headers_mut().insert("content-type", http::HeaderValue::from_static(kind));
        res
    }

    fn big(&self, total: usize) -> Response<Body> {
        const CHUNK: usize = 64 * 1024;
        let release = self.release.clone();
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
        tokio::spawn(async move {
            let chunk = Bytes::from(vec![b'x'; CHUNK]);
            let mut sent = 0;
            while sent + CHUNK < total {
                if tx.send(Ok(Frame::data(chunk.clone()))).await.is_err() {
                    return;
                }
                sent += CHUNK;
            }
            // Hold the tail until the test has seen data arrive through the gateway.
            release.notified().await;
            let _ = tx.send(Ok(Frame::data(Bytes::from(vec![b'x'; total - sent])))).await;
        });
        Response::new(BodyExt::boxed(ChannelBody(rx)))
    }
}

/// Under `/coded/{gzip|deflate|br}/…`: a GeoJSON FeatureCollection of 2,000 points (two
/// properties each, one of them `secret_note`) sent with that content coding whatever
/// the request's `Accept-Encoding` (as upstreams serving pre-compressed files do). `br`
/// is not really compressed: the gateway must refuse it, not read it.
fn coded(coding: &str) -> Response<Body> {
    use std::io::Write as _;
    let features: Vec<String> = (0..2000)
        .map(|i| {
            format!(
                r#"{{"type":"Feature","id":{i},"geometry":{{"type":"Point","coordinates":[{},{}]}},"properties":{{"name":"place {i}","secret_note":"hidden {i}"}}}}"#,
                (i % 90) as f64 + 0.5,
                (i % 60) as f64 + 0.5
            )
        })
        .collect();
    let plain = format!(r#"{{"type":"FeatureCollection","features":[{}]}}"#, features.join(","));
    let body = match coding {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(plain.as_bytes()).expect("gzip");
            e.finish().expect("gzip")
        }
        "deflate" => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(plain.as_bytes()).expect("deflate");
            e.finish().expect("deflate")
        }
        _ => plain.into_bytes(),
    };
    if coding == "partial" {
        // What a Range-honouring upstream or cache answers: a slice of the collection.
        let mut res = typed("application/geo+json", br#"{"name":"place 1","secret_note":"hidden 1"}"#.to_vec());
        *res.status_mut() = http::StatusCode::PARTIAL_CONTENT;
        res.headers_mut().insert("content-range", http::HeaderValue::from_static("bytes 294-334/489"));
        return res;
    }
    if coding == "empty" {
        // MapServer's answer to `RESULTTYPE=hits` in GeoJSON: nothing at all.
        return typed("application/geo+json", Vec::new());
    }
    if coding == "err404" {
        let mut res = typed("application/geo+json", br#"{"type":"FeatureCollection","features":[{"type":"Feature","geometry":null,"properties":{"name":"x","secret_note":"hidden 1"}}]}"#.to_vec());
        *res.status_mut() = http::StatusCode::NOT_FOUND;
        return res;
    }
    if coding == "jsonld" {
        let mut res =
            typed("application/ld+json", br#"{"@context":{},"name":"place 1","secret_note":"hidden 1"}"#.to_vec());
        *res.status_mut() = http::StatusCode::OK;
        return res;
    }
    let mut res = typed("application/geo+json", body);
    if let Ok(v) = http::HeaderValue::from_str(coding) {
        res.headers_mut().insert("content-encoding", v);
    }
    res
}

/// `/foreign-members`: a GeoServer-shaped page (one place at 10°E 10°N) whose feature
/// carries attribute values and a geometry beside `properties` (a vendor member holding
/// `secret_note`, GeoServer's `geometry_name`, JSON-FG's `place`, a nested collection),
/// and whose root carries a vendor member too.
pub const FOREIGN_MEMBERS: &str = r#"{"type":"FeatureCollection","features":[{"type":"Feature","id":"places.1","geometry":{"type":"Point","coordinates":[10,10]},"geometry_name":"the_geom","properties":{"name":"inside","secret_note":"hidden 1"},"attributes":{"secret_note":"hidden 2"},"place":{"type":"Point","coordinates":[120,-40]},"features":[{"type":"Feature","geometry":{"type":"Point","coordinates":[10,10]},"properties":{"secret_note":"hidden 3"}}]}],"totalFeatures":1,"vendor":{"secret_note":"hidden 4"}}"#;

/// `/page-rels`: a GeoJSON page (one place at 10°E 10°N) whose `links` spell page
/// relations every way a `rel` can be written, each link's `href` ending in `#page-N`;
/// `#keep-N` links are not page links.
fn page_rels(up: SocketAddr) -> String {
    let rels = [
        r#""next""#,
        r#"["next"]"#,
        r#""next nofollow""#,
        r#""NEXT""#,
        r#""Prev""#,
        r#"["self", "last"]"#,
        r#""http://www.iana.org/assignments/relation/next""#,
        r#""https://www.iana.org/assignments/relation/previous""#,
        r#""http://www.opengis.net/def/rel/iana/1.0/first""#,
        r#""http://www.opengis.net/def/rel/ogc/1.0/next""#,
        r#""urn:ietf:params:rel:next""#,
        r#""[next]""#,
        r#"7"#,
        r#"null"#,
        r#"{"next": true}"#,
        r#"["alternate", 1]"#,
    ];
    let mut links: Vec<String> = rels
        .iter()
        .enumerate()
        .map(|(i, rel)| format!(r#"{{"rel":{rel},"href":"http://{up}/page-rels?p={i}#page-{i}"}}"#))
        .collect();
    links.push(format!(r#"{{"rel":"self","href":"http://{up}/page-rels#keep-1"}}"#));
    links.push(format!(r#"{{"rel":"alternate","type":"application/geo+json","href":"http://{up}/page-rels#keep-2"}}"#));
    format!(
        r#"{{"type":"FeatureCollection","links":[{}],"features":[{{"type":"Feature","id":1,"geometry":{{"type":"Point","coordinates":[10,10]}},"properties":{{"name":"inside"}}}}]}}"#,
        links.join(",")
    )
}

fn typed(content_type: &'static str, body: Vec<u8>) -> Response<Body> {
    let mut res = Response::new(Full::new(Bytes::from(body)).map_err(|e| match e {}).boxed());
    res.headers_mut().insert("content-type", http::HeaderValue::from_static(content_type));
    res
}

/// A vector tile with one layer `places` and properties `name`, `secret_note`, `population`.
pub fn sample_mvt() -> Vec<u8> {
    use prost::Message as _;
    use tilegate::filter::mvt::{Feature, Layer, Tile, Value};
    let s = |v: &str| Value { string_value: Some(v.into()), ..Value::default() };
    let layer = Layer {
        version: 2,
        name: "places".into(),
        keys: vec!["name".into(), "secret_note".into(), "population".into()],
        values: vec![s("Paris"), s("hidden"), Value { int_value: Some(2_102_650), ..Value::default() }],
        features: vec![Feature {
            id: Some(1),
            tags: vec![0, 0, 1, 1, 2, 2],
            r#type: Some(1),
            geometry: vec![9, 50, 34],
        }],
        extent: Some(4096),
    };
    Tile { layers: vec![layer] }.encode_to_vec()
}

/// A body fed by a channel: frames arrive as the producer sends them.
struct ChannelBody(tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, Infallible>>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx)
    }
}
