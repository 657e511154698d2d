//! TLS termination: the rustls server configuration, a certificate that can be
//! replaced while serving, and development certificates.
//!
//! The server config is built once; its certificate comes from a [`CertStore`]
//! (an `ArcSwap<CertifiedKey>`), so a reload makes the *next* handshake present
//! the new certificate while established connections keep theirs. TLS 1.2 and
//! 1.3, ALPN `h2` and `http/1.1`, stateless session tickets. Never logs key material.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::config::tls::provider;

/// The certificate the next handshake presents.
pub struct CertStore {
    current: ArcSwap<CertifiedKey>,
}

impl CertStore {
    pub fn new(key: Arc<CertifiedKey>) -> Arc<Self> {
        Arc::new(CertStore { current: ArcSwap::new(key) })
    }

    /// Presents `key` from the next handshake on. Returns true when it differs
    /// from the current certificate.
    pub fn replace(&self, key: Arc<CertifiedKey>) -> bool {
        let changed = self.current.load().cert != key.cert;
        if changed {
            self.current.store(key);
        }
        changed
    }

    /// The leaf certificate presented now (DER).
    pub fn leaf(&self) -> Option<Vec<u8>> {
        self.current.load().cert.first().map(|c| c.as_ref().to_vec())
    }
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertStore").field("chain_len", &self.current.load().cert.len()).finish_non_exhaustive()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The acceptor for `[server.tls]`: TLS 1.2 and 1.3, ALPN h2 then http/1.1.
pub fn acceptor(certs: Arc<CertStore>) -> Result<TlsAcceptor, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // Stateless resumption (RFC 5077 / RFC 8446 §4.6.1): a returning client presents a
    // ticket sealed under a key held only in memory and rotated every 6 hours, and skips
    // the certificate signature. Without a ticketer rustls resumes only the last 256
    // sessions it keeps itself; desktop GIS clients reconnect far more than that.
    config.ticketer = rustls::crypto::ring::Ticketer::new()?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Why development certificates could not be written.
#[derive(Debug, thiserror::Error)]
pub enum DevCertError {
    #[error("cannot generate the certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot write `{path}`: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// Writes a self-signed certificate for `localhost`, `127.0.0.1` and `::1`
/// (`dev-cert.pem`) and its key (`dev-key.pem`, mode 0600) into `dir`.
/// Returns (certificate path, key path).
pub fn write_dev_cert(dir: &Path) -> Result<(PathBuf, PathBuf), DevCertError> {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    let rcgen::CertifiedKey { cert, signing_key } = rcgen::generate_simple_self_signed(names)?;
    std::fs::create_dir_all(dir).map_err(|source| DevCertError::Write { path: dir.to_path_buf(), source })?;
    let cert_path = dir.join("dev-cert.pem");
    let key_path = dir.join("dev-key.pem");
    write_private(&key_path, signing_key.serialize_pem().as_bytes())?;
    std::fs::write(&cert_path, cert.pem()).map_err(|source| DevCertError::Write { path: cert_path.clone(), source })?;
    Ok((cert_path, key_path))
}

/// Writes a file readable only by its owner (replacing it atomically).
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), DevCertError> {
    use std::io::Write;
    let err = |source| DevCertError::Write { path: path.to_path_buf(), source };
    let tmp = path.with_extension("pem.tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(err)?;
    file.write_all(bytes).map_err(err)?;
    file.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dev_certificate_loads_and_its_key_is_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = write_dev_cert(dir.path()).expect("written");
        let loaded = crate::config::tls::certified_key(&cert, &key).expect("the pair loads and matches");
        assert_eq!(loaded.cert.len(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    #[test]
    fn a_key_from_another_pair_is_refused() {
        let a = tempfile::tempdir().expect("tempdir");
        let b = tempfile::tempdir().expect("tempdir");
        let (cert, _) = write_dev_cert(a.path()).expect("a");
        let (_, key) = write_dev_cert(b.path()).expect("b");
        let e = crate::config::tls::certified_key(&cert, &key).expect_err("mismatch");
        assert!(e.contains("does not belong"), "{e}");
    }

    #[test]
    fn replacing_the_certificate_changes_what_the_next_handshake_gets() {
        let a = tempfile::tempdir().expect("tempdir");
        let (c1, k1) = write_dev_cert(a.path()).expect("1");
        let first = Arc::new(crate::config::tls::certified_key(&c1, &k1).expect("1"));
        let store = CertStore::new(first.clone());
        assert!(!store.replace(first.clone()), "the same certificate is no change");
        let (c2, k2) = write_dev_cert(a.path()).expect("2");
        let second = Arc::new(crate::config::tls::certified_key(&c2, &k2).expect("2"));
        assert!(store.replace(second.clone()));
        assert_eq!(store.leaf().as_deref(), Some(second.cert[0].as_ref()));
    }
}
