//! TLS: HTTPS and HTTP/2 to the gateway, certificate replacement while serving,
//! handshake timeouts, and `https://` upstreams with a private CA, an SNI
//! override and a client certificate.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Version};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::RootCertStore;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::support::ops::{eventually, scrape};
use crate::support::{TestGateway, CONFIG};
use tilegate::policy::Tier;
use tilegate::server::tls::write_dev_cert;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn cert_der(path: &Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(path).expect("a PEM certificate")
}

/// A client configuration of `version` that trusts exactly `trusted` and offers `alpn`;
/// it keeps the sessions it is given (rustls's in-memory resumption store).
fn client_config(
    trusted: &Path,
    version: &'static rustls::SupportedProtocolVersion,
    alpn: &[&[u8]],
) -> Arc<rustls::ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(cert_der(trusted)).expect("trust anchor");
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[version])
        .expect("version")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// A TLS 1.3-only client that trusts exactly `trusted` and offers `alpn`.
async fn connect(addr: SocketAddr, trusted: &Path, alpn: &[&[u8]]) -> std::io::Result<TlsStream<TcpStream>> {
    connect_with(addr, &client_config(trusted, &rustls::version::TLS13, alpn)).await
}

async fn connect_with(addr: SocketAddr, config: &Arc<rustls::ClientConfig>) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    TlsConnector::from(config.clone()).connect(ServerName::try_from("localhost").expect("name"), tcp).await
}

/// One HTTP/1.1 tile request over `tls`; the answer's status, its body read to the end
/// (which also reads the session tickets the server sent after the handshake).
async fn h1_tile(tls: TlsStream<TcpStream>, token: &str) -> StatusCode {
    let (mut h1, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.expect("h1");
    tokio::spawn(conn);
    let req = Request::get("/ogc/xyz/osm/2/1/1.png")
        .header("host", "localhost")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let res = h1.send_request(req).await.expect("response");
    let status = res.status();
    http_body_util::BodyExt::collect(res.into_body()).await.expect("body");
    status
}

fn resuming_client(trusted: &Path, version: &'static rustls::SupportedProtocolVersion) -> Arc<rustls::ClientConfig> {
    client_config(trusted, version, &[b"http/1.1"])
}

/// One HTTP/1.1 request over a new TLS connection made with `config`; returns how the
/// handshake went.
async fn tls_request(addr: SocketAddr, config: &Arc<rustls::ClientConfig>, token: &str) -> rustls::HandshakeKind {
    let tls = connect_with(addr, config).await.expect("handshake");
    let kind = tls.get_ref().1.handshake_kind().expect("handshake done");
    assert_eq!(h1_tile(tls, token).await, StatusCode::OK);
    kind
}

#[tokio::test]
async fn a_returning_client_resumes_its_session_after_many_other_clients_in_tls13_and_tls12() {
    let certs = tempfile::tempdir().expect("tempdir");
    write_dev_cert(certs.path()).expect("dev cert");
    let gw = TestGateway::with_config(&tls_config(certs.path(), "")).await;
    let token = gw.token(&[("osm", Tier::View)]).await;
    let trusted = certs.path().join("dev-cert.pem");
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let returning = resuming_client(&trusted, version);
        assert_eq!(tls_request(gw.addr, &returning, &token).await, rustls::HandshakeKind::Full);
        // More new clients than a server-side session cache of rustls's default size
        // (256) holds: a returning client still resumes, so its session lives in the
        // ticket it holds, not in the gateway's memory.
        for _ in 0..300 {
            let other = resuming_client(&trusted, version);
            assert_eq!(tls_request(gw.addr, &other, &token).await, rustls::HandshakeKind::Full);
        }
        assert_eq!(
            tls_request(gw.addr, &returning, &token).await,
            rustls::HandshakeKind::Resumed,
            "{version:?}: the returning client skips the full handshake"
        );
    }
}

fn peer_leaf(stream: &TlsStream<TcpStream>) -> Vec<u8> {
    stream.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.as_ref().to_vec()).expect("a peer cert")
}

fn tls_config(certs: &Path, extra: &str) -> String {
    format!(
        "{CONFIG}\n[server.tls]\ncert = \"{}\"\nkey = \"{}\"\nhandshake_timeout = \"10s\"\n[ops]\nlisten = \"127.0.0.1:0\"\n{extra}",
        certs.join("dev-cert.pem").display(),
        certs.join("dev-key.pem").display()
    )
}

#[tokio::test]
async fn https_over_tls13_and_http2_reaches_the_upstream_as_https_and_a_replaced_certificate_is_served_next() {
    let certs = tempfile::tempdir().expect("tempdir");
    write_dev_cert(certs.path()).expect("dev cert");
    let gw = TestGateway::with_config(&tls_config(certs.path(), "")).await;
    let token = gw.token(&[("osm", Tier::View)]).await;
    let first_cert = cert_der(&certs.path().join("dev-cert.pem")).as_ref().to_vec();

    let tls = connect(gw.addr, &certs.path().join("dev-cert.pem"), &[b"h2", b"http/1.1"]).await.expect("handshake");
    assert_eq!(tls.get_ref().1.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    assert_eq!(peer_leaf(&tls), first_cert);
    let (mut h2, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await.expect("h2");
    tokio::spawn(conn);
    let request = || {
        Request::get("https://localhost/ogc/xyz/osm/2/1/1.png")
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::new()))
            .expect("request")
    };
    let res = h2.send_request(request()).await.expect("response");
    assert_eq!(res.version(), Version::HTTP_2);
    assert_eq!(res.status(), StatusCode::OK);
    let seen = gw.upstream.last();
    assert_eq!(seen.uri, "/tiles/2/1/1.png");
    assert_eq!(seen.headers["x-forwarded-proto"], "https", "the upstream learns the client used TLS");

    // Renewal: new files on disk; the next handshake presents the new certificate.
    write_dev_cert(certs.path()).expect("renewed dev cert");
    let renewed = cert_der(&certs.path().join("dev-cert.pem")).as_ref().to_vec();
    assert_ne!(renewed, first_cert);
    let trusted = certs.path().join("dev-cert.pem");
    eventually(Duration::from_secs(15), "a handshake presenting the renewed certificate", || async {
        let s = connect(gw.addr, &trusted, &[b"h2"]).await.ok()?;
        (peer_leaf(&s) == renewed).then_some(())
    })
    .await;
    // The connection made before the renewal keeps working.
    let res = h2.send_request(request()).await.expect("the old connection still answers");
    assert_eq!(res.status(), StatusCode::OK);

    // HTTP/1.1 over TLS works too.
    let tls = connect(gw.addr, &trusted, &[b"http/1.1"]).await.expect("handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(h1_tile(tls, &token).await, StatusCode::OK);

    let metrics = scrape(gw.running.as_ref().expect("running").ops_addr.expect("ops")).await;
    assert!(metrics.get("tilegate_tls_handshakes_total{result=\"ok\"}") >= 3.0);
    assert!(metrics.get("tilegate_config_reloads_total{result=\"ok\"}") >= 1.0, "the renewal was a reload");
}

#[tokio::test]
async fn a_client_that_never_finishes_the_handshake_is_closed_and_counted() {
    let certs = tempfile::tempdir().expect("tempdir");
    write_dev_cert(certs.path()).expect("dev cert");
    // A short handshake timeout here only: under load a busy worker finishes real
    // handshakes late, and the other tests must not depend on how late.
    let config = tls_config(certs.path(), "").replace("handshake_timeout = \"10s\"", "handshake_timeout = \"300ms\"");
    let gw = TestGateway::with_config(&config).await;
    let mut silent = TcpStream::connect(gw.addr).await.expect("connect");
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), silent.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "the gateway closes a silent TLS client: {read:?}");

    // A client that does not trust the certificate fails its handshake; counted too.
    let other = tempfile::tempdir().expect("tempdir");
    write_dev_cert(other.path()).expect("another cert");
    assert!(connect(gw.addr, &other.path().join("dev-cert.pem"), &[b"h2"]).await.is_err());

    let ops = gw.running.as_ref().expect("running").ops_addr.expect("ops");
    eventually(Duration::from_secs(5), "both handshake outcomes in /metrics", || async {
        let m = scrape(ops).await;
        (m.get("tilegate_tls_handshakes_total{result=\"timeout\"}") >= 1.0
            && m.get("tilegate_tls_handshakes_total{result=\"failed\"}") >= 1.0)
            .then_some(())
    })
    .await;
}

/// An HTTPS upstream with its own certificate; with `client_ca`, it demands a
/// client certificate issued by that file.
async fn https_upstream(certs: &Path, client_ca: Option<&Path>) -> SocketAddr {
    let key = tilegate::config::tls::certified_key(&certs.join("dev-cert.pem"), &certs.join("dev-key.pem"))
        .expect("upstream cert");
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions");
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            roots.add(cert_der(ca)).expect("client ca");
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .expect("verifier");
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(
            key.cert.clone(),
            rustls::pki_types::PrivateKeyDer::from_pem_file(certs.join("dev-key.pem")).expect("key"),
        )
        .expect("config");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { continue };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service = service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let body = format!("secure upstream saw {}", req.uri().path());
                    Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(body))))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn https_upstreams_are_checked_against_their_ca_with_sni_and_a_client_certificate() {
    let upstream_certs = tempfile::tempdir().expect("tempdir");
    write_dev_cert(upstream_certs.path()).expect("upstream cert");
    let client_certs = tempfile::tempdir().expect("tempdir");
    write_dev_cert(client_certs.path()).expect("gateway client cert");
    let plain = https_upstream(upstream_certs.path(), None).await;
    let mutual = https_upstream(upstream_certs.path(), Some(&client_certs.path().join("dev-cert.pem"))).await;
    let ca = upstream_certs.path().join("dev-cert.pem");
    let (cc, ck) = (client_certs.path().join("dev-cert.pem"), client_certs.path().join("dev-key.pem"));
    let config = format!(
        r#"{CONFIG}
[[path]]
id = "private"
kind = "raster"
[path.upstream]
base = "https://127.0.0.1:{plain_port}/data/"
[path.upstream.tls]
ca = "{ca}"
server_name = "localhost"
[[path]]
id = "public-roots"
kind = "raster"
[path.upstream]
base = "https://localhost:{plain_port}/data/"
[[path]]
id = "mutual"
kind = "raster"
[path.upstream]
base = "https://localhost:{mutual_port}/data/"
[path.upstream.tls]
ca = "{ca}"
client_cert = "{cc}"
client_key = "{ck}"
[[path]]
id = "mutual-without-cert"
kind = "raster"
[path.upstream]
base = "https://localhost:{mutual_port}/data/"
[path.upstream.tls]
ca = "{ca}"
"#,
        plain_port = plain.port(),
        mutual_port = mutual.port(),
        ca = ca.display(),
        cc = cc.display(),
        ck = ck.display(),
    );
    let gw = TestGateway::with_config(&config).await;
    let token = gw
        .token(&[
            ("private", Tier::ViewPlus),
            ("public-roots", Tier::ViewPlus),
            ("mutual", Tier::ViewPlus),
            ("mutual-without-cert", Tier::ViewPlus),
        ])
        .await;

    let r = gw.get("/path/private/a.json", &token).await;
    assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "secure upstream saw /data/a.json"));
    let r = gw.get("/path/public-roots/a.json", &token).await;
    assert_eq!(
        (r.status, r.reason().as_str()),
        (StatusCode::BAD_GATEWAY, "upstream_unavailable"),
        "a private certificate is not trusted by the public roots"
    );
    let r = gw.get("/path/mutual/b.json", &token).await;
    assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "secure upstream saw /data/b.json"));
    let r = gw.get("/path/mutual-without-cert/b.json", &token).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "the upstream refuses a gateway without a client certificate");
}

#[tokio::test]
async fn a_missing_or_mismatched_certificate_is_a_config_error_naming_the_key() {
    let certs = tempfile::tempdir().expect("tempdir");
    let text = "[server.tls]\ncert = \"missing.pem\"\nkey = \"missing-key.pem\"\n";
    let e = tilegate::config::parse(text, certs.path()).expect_err("invalid").to_string();
    assert!(e.contains("server.tls.cert: cannot read"), "{e}");
    assert!(e.contains("tilegate certs dev"), "the error says how to get a certificate: {e}");

    let other = tempfile::tempdir().expect("tempdir");
    write_dev_cert(certs.path()).expect("a");
    write_dev_cert(other.path()).expect("b");
    let text =
        format!("[server.tls]\ncert = \"dev-cert.pem\"\nkey = \"{}\"\n", other.path().join("dev-key.pem").display());
    let e = tilegate::config::parse(&text, certs.path()).expect_err("invalid").to_string();
    assert!(e.contains("server.tls.key:") && e.contains("does not belong"), "{e}");
    let ok = tilegate::config::parse("[server.tls]\ncert = \"dev-cert.pem\"\nkey = \"dev-key.pem\"\n", certs.path());
    assert!(ok.is_ok(), "relative names are taken from the config's folder: {:?}", ok.err());
}

#[test]
fn certs_dev_writes_a_pair_the_config_accepts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tilegate"))
        .args(["certs", "dev", "--out"])
        .arg(dir.path().join("certs"))
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[server.tls]"), "{text}");
    let config = "[server.tls]\ncert = \"certs/dev-cert.pem\"\nkey = \"certs/dev-key.pem\"\n";
    assert!(tilegate::config::parse(config, dir.path()).is_ok());
}

#[tokio::test]
async fn per_core_workers_each_serve_https_and_http2_on_their_own_listener() {
    let certs = tempfile::tempdir().expect("tempdir");
    write_dev_cert(certs.path()).expect("dev cert");
    let config =
        tls_config(certs.path(), "").replacen("[server]\n", "[server]\nruntime = \"per-core\"\nworkers = 2\n", 1);
    let gw = TestGateway::with_config(&config).await;
    let token = gw.token(&[("osm", Tier::View)]).await;
    let trusted = certs.path().join("dev-cert.pem");
    let before = gw.running.as_ref().expect("running").accepted_per_worker();
    // 48 TLS connections at once, each with one HTTP/2 request (the kernel's hash puts all
    // of them on one of the two listeners once in 2^47).
    let tasks: Vec<_> = (0..48)
        .map(|_| {
            let (addr, trusted, token) = (gw.addr, trusted.clone(), token.clone());
            tokio::spawn(async move {
                let tls = connect(addr, &trusted, &[b"h2"]).await.expect("handshake");
                let (mut h2, conn) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await.expect("h2");
                tokio::spawn(conn);
                let req = Request::get("https://localhost/ogc/xyz/osm/2/1/1.png")
                    .header("authorization", format!("Bearer {token}"))
                    .body(Full::new(Bytes::new()))
                    .expect("request");
                let res = h2.send_request(req).await.expect("response");
                (res.version(), res.status())
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.expect("task"), (Version::HTTP_2, StatusCode::OK));
    }
    let after = gw.running.as_ref().expect("running").accepted_per_worker();
    let served: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    assert_eq!(served.iter().sum::<u64>(), 48, "{served:?}");
    assert!(served.iter().all(|&n| n > 0), "both workers completed TLS handshakes and HTTP/2 requests: {served:?}");
}
