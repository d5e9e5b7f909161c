//! TLS to the collector: rustls with the ring provider, TLS 1.2 and 1.3 only, and a ureq
//! connector of our own so that the agent controls what ureq's stock connector does not: the
//! SPKI pin, the verification name (`tls.server-name`), a client certificate that is re-read
//! when its files change, and error messages that name the problem.
//!
//! Trust: `tls.ca-file`, or the system store through `rustls-native-certs`. The system store
//! rather than `webpki-roots`: an agent runs on servers whose operators add their private CAs
//! to the distribution's store and get CA removals through security updates; a root list
//! compiled into the binary would ignore both until the agent is rebuilt.
//!
//! **Architecture Invariant:** there is no plaintext path. The connector refuses to hand back a
//! transport for an `https` URL without completing a verified handshake, and the agent only ever
//! asks for `https` URLs (HTTP is used only to a CONNECT proxy, inside which TLS runs end to end).

use std::fmt;
use std::fs;
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine as _;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore,
    SignatureScheme, StreamOwned,
};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, Transport,
    TransportAdapter,
};

use super::config::CollectorTlsConfig;

/// A SHA-256 digest of a SubjectPublicKeyInfo.
pub(crate) type Pin = [u8; 32];

/// Decodes one `tls.pin-sha256` entry: base64 (standard alphabet, padded) of 32 bytes.
pub(crate) fn decode_pin(text: &str) -> Result<Pin, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| format!("{text:?} is not base64 ({e})"))?;
    <Pin>::try_from(bytes.as_slice()).map_err(|_| {
        format!(
            "{text:?} decodes to {} bytes, not the 32 of a SHA-256 digest; compute it with \
             `openssl x509 -in cert.pem -pubkey -noout | openssl pkey -pubin -outform der | \
             openssl dgst -sha256 -binary | base64`",
            bytes.len()
        )
    })
}

/// Base64 of the SHA-256 of a certificate's SubjectPublicKeyInfo: what `tls.pin-sha256` holds.
pub fn spki_pin(cert_der: &[u8]) -> Result<String, String> {
    let spki = spki_sha256(cert_der)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(spki))
}

fn spki_sha256(cert_der: &[u8]) -> Result<Pin, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| format!("cannot parse the certificate: {e}"))?;
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.tbs_certificate.subject_pki.raw);
    let mut pin = [0u8; 32];
    pin.copy_from_slice(digest.as_ref());
    Ok(pin)
}

/// Why a TLS setup could not be built from the configured files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM.
    #[error("[sink] tls.{key} = {}: {reason}", .path.display())]
    File {
        /// `ca-file`, `cert-file`, `key-file`.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No CA file was configured and the system store had no certificates.
    #[error(
        "no CA certificates in the system trust store ({0}); install the distribution's \
         ca-certificates package or set [sink] tls.ca-file"
    )]
    NoSystemRoots(String),
    /// rustls refused the pieces (a key that does not match the certificate...).
    #[error("TLS setup: {0}")]
    Rustls(String),
}

/// Identity of a file for change detection: (mtime ns, size, inode). Cheap to take on every
/// request; a renamed-in replacement changes the inode even within one mtime tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStamp(i64, i64, u64, u64);

impl FileStamp {
    /// The stamp of `path`, or `None` when it cannot be stat'ed.
    pub(crate) fn of(path: &Path) -> Option<FileStamp> {
        let m = fs::metadata(path).ok()?;
        Some(FileStamp(m.mtime(), m.mtime_nsec(), m.size(), m.ino()))
    }
}

/// The TLS settings, with the files they name, and what is needed to tell when those files
/// change.
#[derive(Debug, Clone)]
pub(crate) struct TlsSettings {
    config: CollectorTlsConfig,
    pins: Vec<Pin>,
    asked: Arc<AtomicBool>,
}

impl TlsSettings {
    /// From the config (already validated; a bad pin is an error here too).
    pub(crate) fn new(config: &CollectorTlsConfig) -> Result<TlsSettings, TlsError> {
        let pins = config
            .pin_sha256
            .iter()
            .map(|p| decode_pin(p).map_err(TlsError::Rustls))
            .collect::<Result<_, _>>()?;
        Ok(TlsSettings {
            config: config.clone(),
            pins,
            asked: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Stamps of the CA, certificate and key files, in that order (`None` for unset or
    /// unreadable ones). When they differ from those of the last build, rebuild.
    pub(crate) fn stamps(&self) -> [Option<FileStamp>; 3] {
        let c = &self.config;
        [&c.ca_file, &c.cert_file, &c.key_file].map(|p| p.as_deref().and_then(FileStamp::of))
    }

    /// The verification name: `server-name`, else the URL's host.
    pub(crate) fn server_name(&self, url_host: &str) -> Result<ServerName<'static>, TlsError> {
        let name = self.config.server_name.as_deref().unwrap_or(url_host);
        let name = name.trim_start_matches('[').trim_end_matches(']');
        ServerName::try_from(name.to_owned())
            .map_err(|e| TlsError::Rustls(format!("{name:?} cannot be a TLS server name: {e}")))
    }

    /// Reads the files and builds a rustls client config: ring, TLS 1.2 and 1.3, the
    /// configured trust, pins and client certificate.
    pub(crate) fn client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let provider: Arc<CryptoProvider> = Arc::new(rustls::crypto::ring::default_provider());
        let roots = Arc::new(self.roots()?);
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| TlsError::Rustls(e.to_string()))?;
        let verifier = Arc::new(PinningVerifier {
            inner: webpki,
            pins: self.pins.clone(),
        });
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Rustls(e.to_string()))?
            .dangerous()
            // Not dangerous: PinningVerifier runs the standard WebPKI verification first.
            .with_custom_certificate_verifier(verifier);
        let certified = self.client_identity()?;
        let resolver = Arc::new(ClientCertResolver {
            key: certified,
            asked: self.asked.clone(),
        });
        Ok(Arc::new(builder.with_client_cert_resolver(resolver)))
    }

    /// The client certificate and its key, read and checked to go together; `None` when none is
    /// configured.
    fn client_identity(&self) -> Result<Option<Arc<CertifiedKey>>, TlsError> {
        let certified = match (&self.config.cert_file, &self.config.key_file) {
            (Some(cert), Some(key)) => {
                let chain = read_certs("cert-file", cert)?;
                let key_err = |reason: String| TlsError::File {
                    key: "key-file",
                    path: key.clone(),
                    reason,
                };
                let key_der = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| key_err(format!("no usable PEM private key ({e})")))?;
                let signing = rustls::crypto::ring::default_provider()
                    .key_provider
                    .load_private_key(key_der)
                    .map_err(|e| key_err(format!("unusable private key ({e})")))?;
                let certified = CertifiedKey::new(chain, signing);
                certified.keys_match().map_err(|e| {
                    key_err(format!(
                        "does not go with tls.cert-file {}: {e}",
                        cert.display()
                    ))
                })?;
                Some(Arc::new(certified))
            }
            _ => None,
        };
        Ok(certified)
    }

    /// Set once a collector asked this agent for a client certificate (for error messages).
    pub(crate) fn client_cert_asked(&self) -> Arc<AtomicBool> {
        self.asked.clone()
    }

    /// True when a client certificate is configured.
    pub(crate) fn has_client_cert(&self) -> bool {
        self.config.cert_file.is_some()
    }

    fn roots(&self) -> Result<RootCertStore, TlsError> {
        let mut store = RootCertStore::empty();
        if let Some(ca) = &self.config.ca_file {
            for cert in read_certs("ca-file", ca)? {
                store.add(cert).map_err(|e| TlsError::File {
                    key: "ca-file",
                    path: ca.clone(),
                    reason: format!("not a usable CA certificate: {e}"),
                })?;
            }
            return Ok(store);
        }
        let found = rustls_native_certs::load_native_certs();
        let (added, _ignored) = store.add_parsable_certificates(found.certs);
        if added == 0 {
            let why = found
                .errors
                .first()
                .map_or_else(|| "none found".to_owned(), ToString::to_string);
            return Err(TlsError::NoSystemRoots(why));
        }
        Ok(store)
    }
}

/// What `run` would refuse in the TLS files: each of `ca-file`, `cert-file` and `key-file` that
/// is set must be readable and parse (PEM certificates; a private key that goes with the
/// certificate). One entry per file, so `validate` reports them all.
pub(crate) fn file_problems(config: &CollectorTlsConfig) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    let mut note = |e: TlsError| {
        if let TlsError::File { key, path, reason } = e {
            let key = match key {
                "ca-file" => "tls.ca-file",
                "cert-file" => "tls.cert-file",
                _ => "tls.key-file",
            };
            problems.push((key, format!("{}: {reason}", path.display())));
        }
    };
    let absolute = |p: &Option<PathBuf>| p.clone().filter(|p| p.is_absolute());
    if let Some(ca) = absolute(&config.ca_file)
        && let Err(e) = read_certs("ca-file", &ca)
    {
        note(e);
    }
    let cert = absolute(&config.cert_file);
    if let Some(c) = &cert
        && let Err(e) = read_certs("cert-file", c)
    {
        note(e);
    }
    if let Some(key) = absolute(&config.key_file) {
        // The whole client identity when both files read; else the key on its own.
        let only = CollectorTlsConfig {
            ca_file: None,
            server_name: None,
            pin_sha256: Vec::new(),
            cert_file: cert.clone(),
            key_file: Some(key.clone()),
        };
        match PrivateKeyDer::from_pem_file(&key) {
            Err(e) => note(TlsError::File {
                key: "key-file",
                path: key,
                reason: format!("no usable PEM private key ({e})"),
            }),
            Ok(_)
                if cert
                    .as_deref()
                    .is_some_and(|c| read_certs("cert-file", c).is_ok()) =>
            {
                if let Err(
                    e @ TlsError::File {
                        key: "key-file", ..
                    },
                ) = TlsSettings::new(&only).and_then(|s| s.client_identity().map(|_| ()))
                {
                    note(e);
                }
            }
            Ok(_) => {}
        }
    }
    problems
}

fn read_certs(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |reason: String| TlsError::File {
        key,
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(format!("cannot read it ({e})")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(format!("bad PEM ({e})")))?;
    if certs.is_empty() {
        return Err(err("holds no PEM CERTIFICATE block".to_owned()));
    }
    Ok(certs)
}

/// Hands rustls the configured client certificate, and notes that the server asked for one
/// (rustls does not say so when the server then closes the connection).
#[derive(Debug)]
struct ClientCertResolver {
    key: Option<Arc<CertifiedKey>>,
    asked: Arc<AtomicBool>,
}

impl ResolvesClientCert for ClientCertResolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.asked.store(true, Ordering::Relaxed);
        self.key.clone()
    }

    fn has_certs(&self) -> bool {
        self.key.is_some()
    }
}

/// The leaf's SPKI does not match any configured pin.
#[derive(Debug)]
struct PinMismatch {
    got: String,
}

impl fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "its public key (sha256 {}) matches no tls.pin-sha256 entry",
            self.got
        )
    }
}

impl std::error::Error for PinMismatch {}

/// Standard WebPKI verification, then (when pins are configured) the SPKI pin check.
#[derive(Debug)]
struct PinningVerifier {
    inner: Arc<WebPkiServerVerifier>,
    pins: Vec<Pin>,
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        if self.pins.is_empty() {
            return Ok(verified);
        }
        let spki = spki_sha256(end_entity).map_err(|e| rustls::Error::General(e.to_string()))?;
        if self.pins.contains(&spki) {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                rustls::OtherError(Arc::new(PinMismatch {
                    got: base64::engine::general_purpose::STANDARD.encode(spki),
                })),
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Says in plain words why a TLS session with the collector failed, and what to check.
pub(crate) fn explain(err: &rustls::Error, name: &str) -> String {
    use rustls::AlertDescription as A;
    let what = match err {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => format!(
                "the collector's certificate is not signed by a trusted CA (check [sink] \
                 tls.ca-file) [{c}]"
            ),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                format!("the collector's certificate has expired [{c}]")
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                format!("the collector's certificate is not valid yet (check the clock) [{c}]")
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "the collector's certificate is not valid for the host name {name:?} (fix \
                     the URL, or set [sink] tls.server-name to a name it is issued for) [{c}]"
                )
            }
            CertificateError::Revoked => "the collector's certificate is revoked".to_owned(),
            CertificateError::Other(other) => match other.0.downcast_ref::<PinMismatch>() {
                Some(p) => format!("the collector's key is not pinned: {p}"),
                None => format!("the collector's certificate was refused: {other}"),
            },
            other => format!("the collector's certificate was refused: {other}"),
        },
        rustls::Error::AlertReceived(A::CertificateRequired | A::BadCertificate)
        | rustls::Error::AlertReceived(A::UnknownCA | A::AccessDenied) => format!(
            "the collector refused this agent's client certificate (or none is configured: \
             [sink] tls.cert-file/key-file) [{err}]"
        ),
        rustls::Error::AlertReceived(A::CertificateExpired) => {
            "the collector says this agent's client certificate has expired".to_owned()
        }
        rustls::Error::AlertReceived(A::ProtocolVersion | A::HandshakeFailure) => format!(
            "no common TLS version or cipher with the collector (the agent speaks TLS 1.2 and \
             1.3 only) [{err}]"
        ),
        other => format!("{other}"),
    };
    format!("TLS with {name}: {what}")
}

/// Rewrites an I/O error that carries a rustls error into one that says what went wrong.
fn explain_io(e: io::Error, name: &str) -> io::Error {
    let explained = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .map(|r| explain(r, name));
    match explained {
        Some(text) => io::Error::new(e.kind(), text),
        None => e,
    }
}

/// The ureq connector that wraps the TCP (or proxy tunnel) transport in our TLS session.
#[derive(Debug)]
pub(crate) struct TlsConnector {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    asked: Arc<AtomicBool>,
    has_cert: bool,
}

impl TlsConnector {
    /// A connector verifying the collector as `server_name` with the settings' client config.
    pub(crate) fn new(
        settings: &TlsSettings,
        server_name: ServerName<'static>,
    ) -> Result<Self, TlsError> {
        Ok(TlsConnector {
            config: settings.client_config()?,
            server_name,
            asked: settings.client_cert_asked(),
            has_cert: settings.has_client_cert(),
        })
    }
}

impl<In: Transport> Connector<In> for TlsConnector {
    type Out = Either<In, TlsTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails<'_>,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Err(ureq::Error::Io(io::Error::other(
                "no transport to run TLS on (TCP connect produced none)",
            )));
        };
        // Plain HTTP only to a CONNECT proxy; https_only on the agent refuses it otherwise.
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let name = self.server_name.to_str().into_owned();
        let mut conn = ClientConnection::new(self.config.clone(), self.server_name.clone())
            .map_err(|e| ureq::Error::Io(io::Error::other(explain(&e, &name))))?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        sock.set_timeout(details.timeout);
        conn.complete_io(&mut sock)
            .map_err(|e| ureq::Error::Io(explain_io(e, &name)))?;
        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        Ok(Some(Either::B(TlsTransport {
            buffers,
            stream: StreamOwned { conn, sock },
            name,
            asked: self.asked.clone(),
            has_cert: self.has_cert,
            answered: false,
        })))
    }
}

/// An HTTP/1.1 transport over our TLS session.
pub(crate) struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
    name: String,
    asked: Arc<AtomicBool>,
    has_cert: bool,
    /// Something was read on this connection after the handshake.
    answered: bool,
}

impl fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsTransport")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl TlsTransport {
    /// A TLS error (an alert) that the peer sent before the connection broke, if any is
    /// waiting in the receive buffer.
    /// Explains an I/O error on this connection. A server that refuses the client certificate
    /// (or its absence) after a TLS 1.3 handshake just closes the connection; when that
    /// happens before any answer and the server had asked for a certificate, say so.
    fn explain(&mut self, e: io::Error) -> io::Error {
        if let Some(alert) = self.pending_alert() {
            return io::Error::new(e.kind(), explain(&alert, &self.name));
        }
        let e = explain_io(e, &self.name);
        let closed = matches!(
            e.kind(),
            io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::UnexpectedEof
        );
        if !closed || self.answered || !self.asked.load(Ordering::Relaxed) {
            return e;
        }
        let why = if self.has_cert {
            "the collector closed the connection right after the TLS handshake: it probably \
             refused this agent's client certificate (check that [sink] tls.cert-file is \
             signed by the CA the collector trusts and has not expired)"
        } else {
            "the collector asks for a client certificate and none is configured ([sink] \
             tls.cert-file and tls.key-file); it closed the connection"
        };
        io::Error::new(e.kind(), format!("TLS with {}: {why} ({e})", self.name))
    }

    fn pending_alert(&mut self) -> Option<rustls::Error> {
        let StreamOwned { conn, sock } = &mut self.stream;
        for _ in 0..4 {
            match conn.read_tls(sock) {
                Ok(0) | Err(_) => return None,
                Ok(_) => {
                    if let Err(e) = conn.process_new_packets() {
                        return Some(e);
                    }
                }
            }
        }
        None
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        match self.stream.write_all(output) {
            Ok(()) => Ok(()),
            Err(e) => Err(ureq::Error::Io(self.explain(e))),
        }
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = match self.stream.read(input) {
            Ok(n) => n,
            Err(e) => return Err(ureq::Error::Io(self.explain(e))),
        };
        self.answered |= amount > 0;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_decode_or_say_why() {
        let ok = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert_eq!(decode_pin(&ok).unwrap(), [7u8; 32]);
        assert!(
            decode_pin("not base64!")
                .unwrap_err()
                .contains("not base64")
        );
        let short = base64::engine::general_purpose::STANDARD.encode([7u8; 20]);
        assert!(decode_pin(&short).unwrap_err().contains("20 bytes"));
    }

    #[test]
    fn explanations_name_the_problem() {
        let e = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        assert!(explain(&e, "c.example").contains("not signed by a trusted CA"));
        let e = rustls::Error::InvalidCertificate(CertificateError::Expired);
        assert!(explain(&e, "c.example").contains("expired"));
        let e = rustls::Error::InvalidCertificate(CertificateError::NotValidForName);
        assert!(explain(&e, "c.example").contains("not valid for the host name \"c.example\""));
    }

    #[test]
    fn certificate_errors_are_explained_without_debug_text() {
        let wrong_name =
            rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                expected: ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
                presented: vec!["DNS name \"collector.example\"".to_owned()],
            });
        let text = explain(&wrong_name, "127.0.0.1");
        assert!(text.contains("not valid for the host name"), "{text}");
        assert!(text.contains("collector.example"), "{text}");
        assert!(!text.contains('{') && !text.contains("Context"), "{text}");
        let expired = rustls::Error::InvalidCertificate(CertificateError::Expired);
        assert!(
            !explain(&expired, "c").contains("Expired ["),
            "Debug name leaked"
        );
    }
}
