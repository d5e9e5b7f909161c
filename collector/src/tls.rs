//! The server's rustls configuration: ring provider only, TLS 1.3 and 1.2, the server
//! certificate, and (with `client-ca-file`) client-certificate verification, checked against
//! the CRL of `crl-file` ([`CrlVerifier`]) when one is set.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::sync::Mutex;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, UnixTime};

use crate::config::{Config, ConfigError, Require, check_permissions};

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file that could not be read or holds nothing usable.
    #[error("{key} = {path:?}: {reason}")]
    Pem {
        /// The setting that names it (`[tls] cert-file`).
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A key file others may read.
    #[error(transparent)]
    Permissions(#[from] ConfigError),
    /// `[tls] cert-file` is not the certificate of `key-file`'s key.
    #[error(
        "[tls] cert-file = {cert:?} is not for this key, [tls] key-file = {key:?}: give the \
         certificate and key that were made together (`certs init` writes server.pem and \
         server-key.pem)"
    )]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
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

fn pem_err(key: &'static str, path: &Path, reason: impl ToString) -> TlsError {
    TlsError::Pem {
        key,
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// Every certificate in a PEM file (at least one).
/// `key` names the setting in errors.
pub(crate) fn load_certs(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_err(key, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(key, path, e))?;
    if certs.is_empty() {
        return Err(pem_err(key, path, "no CERTIFICATE in the file"));
    }
    Ok(certs)
}

/// The private key in a PEM file, refusing a file others may read. `key` names the setting in
/// errors.
pub(crate) fn load_key(key: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let meta = std::fs::metadata(path).map_err(|e| pem_err(key, path, e))?;
    check_permissions(path, &meta, true)?;
    PrivateKeyDer::from_pem_file(path).map_err(|e| pem_err(key, path, e))
}

/// The rustls server configuration for `config`.
pub fn server_config(config: &Config) -> Result<rustls::ServerConfig, TlsError> {
    let (Some(cert_file), Some(key_file)) = (&config.tls.cert_file, &config.tls.key_file) else {
        return Err(TlsError::Missing);
    };
    let certs = load_certs("[tls] cert-file", cert_file)?;
    let key = load_key("[tls] key-file", key_file)?;
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
            for cert in load_certs("[tls] client-ca-file", ca_file)? {
                roots
                    .add(cert)
                    .map_err(|e| pem_err("[tls] client-ca-file", ca_file, e))?;
            }
            // A certificate is demanded in the handshake only when every request needs one;
            // otherwise one is verified if offered and token-only agents may connect.
            let optional = matches!(config.auth.require, Require::Token | Require::Either);
            let make = Make {
                roots: Arc::new(roots),
                provider,
                optional,
            };
            let verifier: Arc<dyn ClientCertVerifier> = match &config.tls.crl_file {
                None => make
                    .verifier(Vec::new())
                    .map_err(|cause| TlsError::Rustls {
                        what: "client CA",
                        cause,
                    })?,
                Some(crl_file) => Arc::new(CrlVerifier::new(make, crl_file.clone())?),
            };
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut server = builder.with_single_cert(certs, key).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
            cert: cert_file.clone(),
            key: key_file.clone(),
        },
        e => TlsError::Rustls {
            what: "server certificate and key",
            cause: e.to_string(),
        },
    })?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(server)
}

/// Builds rustls's client-certificate verifier for one CA, with or without CRLs.
#[derive(Debug)]
struct Make {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
    /// A certificate is optional (verified when offered).
    optional: bool,
}

impl Make {
    fn verifier(
        &self,
        crls: Vec<CertificateRevocationListDer<'static>>,
    ) -> Result<Arc<dyn ClientCertVerifier>, String> {
        let mut b =
            WebPkiClientVerifier::builder_with_provider(self.roots.clone(), self.provider.clone());
        if !crls.is_empty() {
            // Only the agent's own certificate is looked up: the CA is the trust anchor.
            b = b.with_crls(crls).only_check_end_entity_revocation();
        }
        if self.optional {
            b = b.allow_unauthenticated();
        }
        b.build().map_err(|e| e.to_string())
    }
}

/// (inode, size, mtime seconds, mtime nanoseconds) of a file, `None` when it does not exist:
/// what tells that a file re-read on change has changed (one `stat`).
pub fn file_key(path: &Path) -> std::io::Result<Option<(u64, u64, i64, i64)>> {
    use std::os::unix::fs::MetadataExt as _;
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some((m.ino(), m.size(), m.mtime(), m.mtime_nsec()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Client-certificate verification against the CA and the CRL(s) in `[tls] crl-file`, which is
/// re-read when it changes (one `stat` per handshake), so a revocation applies to the next
/// connection without a restart. A missing file revokes nothing; a file that cannot be read
/// or holds a CRL rustls refuses fails every client certificate until it is fixed (closed,
/// not open), and says why in the log and the handshake error.
#[derive(Debug)]
pub struct CrlVerifier {
    make: Make,
    path: PathBuf,
    /// Verifies signatures and offers the CA's name; CRLs play no part in that.
    base: Arc<dyn ClientCertVerifier>,
    current: Mutex<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    /// The file as last read (`Err`: not readable).
    key: Result<Option<(u64, u64, i64, i64)>, String>,
    verifier: Result<Arc<dyn ClientCertVerifier>, String>,
}

impl CrlVerifier {
    /// Reads `path` once; refuses to start on a CRL that cannot be read or used.
    fn new(make: Make, path: PathBuf) -> Result<CrlVerifier, TlsError> {
        let base = make
            .verifier(Vec::new())
            .map_err(|cause| TlsError::Rustls {
                what: "client CA",
                cause,
            })?;
        let loaded = Self::load(&make, &path);
        if let Err(reason) = &loaded.verifier {
            return Err(pem_err("[tls] crl-file", &path, reason));
        }
        Ok(CrlVerifier {
            make,
            path,
            base,
            current: Mutex::new(loaded),
        })
    }

    fn load(make: &Make, path: &Path) -> Loaded {
        let key = file_key(path).map_err(|e| e.to_string());
        let verifier = match &key {
            Err(e) => Err(e.clone()),
            Ok(None) => make.verifier(Vec::new()),
            Ok(Some(_)) => CertificateRevocationListDer::pem_file_iter(path)
                .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                .map_err(|e| e.to_string())
                .and_then(|crls| {
                    if crls.is_empty() {
                        Err("no X509 CRL in the file".to_owned())
                    } else {
                        make.verifier(crls)
                    }
                }),
        };
        Loaded { key, verifier }
    }

    /// The verifier for the file as it is now, re-reading it when it has changed.
    fn now(&self) -> Result<Arc<dyn ClientCertVerifier>, rustls::Error> {
        let refuse = |reason: &str| {
            rustls::Error::General(format!(
                "{}: the CRL cannot be used, every client certificate is refused: {reason}",
                self.path.display()
            ))
        };
        let mut current = self.current.lock().map_err(|_| refuse("poisoned lock"))?;
        let key = file_key(&self.path).map_err(|e| e.to_string());
        if key != current.key {
            *current = Self::load(&self.make, &self.path);
            match &current.verifier {
                Ok(_) => tracing::info!("{}: CRL loaded", self.path.display()),
                Err(e) => tracing::error!("{}", refuse(e)),
            }
        }
        current.verifier.clone().map_err(|e| refuse(&e))
    }
}

impl ClientCertVerifier for CrlVerifier {
    fn offer_client_auth(&self) -> bool {
        self.base.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.base.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.base.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.now()?
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.base.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.base.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.base.supported_verify_schemes()
    }
}
