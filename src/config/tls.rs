//! TLS material named by the configuration, read and checked at load time.
//!
//! Certificates and keys are runtime values like compiled patterns: a config whose
//! certificate cannot be read, does not parse or does not match its key never
//! validates, so a reload with a broken certificate keeps the old one serving.
//! Nothing here logs key material.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore};

/// The one crypto provider tilegate uses (ring), for servers and clients alike.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())).clone()
}

/// Reads a PEM certificate chain (leaf first, as in `fullchain.pem`).
pub fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("`{}` is not a PEM certificate file: {e}", path.display()))?;
    if chain.is_empty() {
        return Err(format!("`{}` holds no `BEGIN CERTIFICATE` block", path.display()));
    }
    Ok(chain)
}

/// Reads a PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => format!("`{}` holds no PEM private key", path.display()),
        e => format!("`{}` is not a PEM private key file: {e}", path.display()),
    })
}

/// Loads a certificate chain and its key, checking that they belong together.
pub fn certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, String> {
    let chain = read_chain(cert)?;
    let key_der = read_key(key)?;
    let certified = CertifiedKey::from_der(chain, key_der, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => {
            format!("the key in `{}` does not belong to the certificate in `{}`", key.display(), cert.display())
        }
        e => format!("cannot use the key in `{}`: {e}", key.display()),
    })?;
    Ok(certified)
}

/// The roots an upstream is checked against when it names no `ca`: the Mozilla
/// roots (webpki-roots) plus the operating system's store. Read once.
pub fn default_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
            let native = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(native.certs);
            tracing::debug!(native = added, "loaded the system's trusted roots for upstream TLS");
            Arc::new(roots)
        })
        .clone()
}

/// A TLS client configuration for upstreams, with public and system roots.
pub fn default_client() -> Result<ClientConfig, String> {
    Ok(client_builder()?.with_root_certificates(default_roots()).with_no_client_auth())
}

fn client_builder() -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>, String> {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))
}

/// An upstream's TLS client: `ca` replaces the default roots, `client` adds a
/// certificate (mTLS).
pub fn upstream_client(ca: Option<&Path>, client: Option<(&Path, &Path)>) -> Result<ClientConfig, Vec<String>> {
    let mut errors = Vec::new();
    let roots = match ca {
        None => Some(default_roots()),
        Some(ca) => match read_chain(ca) {
            Ok(certs) => {
                let mut roots = RootCertStore::empty();
                let (_, bad) = roots.add_parsable_certificates(certs);
                if bad > 0 || roots.is_empty() {
                    errors
                        .push(format!("`{}` holds a certificate that cannot be used as a trust anchor", ca.display()));
                }
                Some(Arc::new(roots))
            }
            Err(e) => {
                errors.push(e);
                None
            }
        },
    };
    let identity = client.map(|(cert, key)| {
        read_chain(cert).and_then(|chain| read_key(key).map(|k| (chain, k))).map_err(|e| errors.push(e)).ok()
    });
    let builder = match client_builder() {
        Ok(b) => b,
        Err(e) => {
            errors.push(e);
            return Err(errors);
        }
    };
    let Some(roots) = roots.filter(|_| errors.is_empty()) else { return Err(errors) };
    let builder = builder.with_root_certificates(roots);
    match identity {
        Some(Some((chain, key))) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| vec![format!("the client key does not fit its certificate: {e}")]),
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// Checks an SNI / verification name override.
pub fn server_name(name: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(name.to_owned())
        .map_err(|_| format!("`{name}` is not a DNS name or IP address, such as `tiles.internal.example.org`"))
}
