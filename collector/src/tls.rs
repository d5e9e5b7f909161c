//! The server's rustls configuration: ring provider only, TLS 1.3 and 1.2, the server
//! certificate, and (with `client-ca-file`) client-certificate verification.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{Config, ConfigError, Require, check_permissions};

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file that could not be read or holds nothing usable.
    #[error("{}: {reason}", .path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A key file others may read.
    #[error(transparent)]
    Permissions(#[from] ConfigError),
    /// rustls refused the certificate, key or CA.
    #[error("{what}: {cause}")]
    Rustls {
        /// What was being set up.
        what: &'static str,
        /// rustls's message.
        cause: String,
    },
    /// `[tls] cert-file` or `key-file` is not set.
    #[error("[tls] cert-file and key-file are required")]
    Missing,
}

fn pem_err(path: &Path, reason: impl ToString) -> TlsError {
    TlsError::Pem {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// Every certificate in a PEM file (at least one).
pub(crate) fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_err(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(path, e))?;
    if certs.is_empty() {
        return Err(pem_err(path, "no CERTIFICATE in the file"));
    }
    Ok(certs)
}

/// The private key in a PEM file, refusing a file others may read.
pub(crate) fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let meta = std::fs::metadata(path).map_err(|e| pem_err(path, e))?;
    check_permissions(path, &meta, true)?;
    PrivateKeyDer::from_pem_file(path).map_err(|e| pem_err(path, e))
}

/// The rustls server configuration for `config`.
pub fn server_config(config: &Config) -> Result<rustls::ServerConfig, TlsError> {
    let (Some(cert_file), Some(key_file)) = (&config.tls.cert_file, &config.tls.key_file) else {
        return Err(TlsError::Missing);
    };
    let certs = load_certs(cert_file)?;
    let key = load_key(key_file)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Rustls {
            what: "protocol versions",
            cause: e.to_string(),
        })?;
    let builder = match &config.tls.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca_file) => {
            let mut roots = RootCertStore::empty();
            for cert in load_certs(ca_file)? {
                roots.add(cert).map_err(|e| pem_err(ca_file, e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            // A certificate is demanded in the handshake only when every request needs one;
            // otherwise one is verified if offered and token-only agents may connect.
            let verifier = match config.auth.require {
                Require::Mtls | Require::Both => verifier,
                Require::Token | Require::Either => verifier.allow_unauthenticated(),
            };
            let verifier = verifier.build().map_err(|e| TlsError::Rustls {
                what: "client CA",
                cause: e.to_string(),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut server = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Rustls {
            what: "server certificate and key",
            cause: e.to_string(),
        })?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(server)
}
