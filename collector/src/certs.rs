//! A small CA for a fleet: `certs init` makes the CA and the collector's server certificate,
//! `certs issue-agent` a client certificate per agent (subject CN = the agent id).
//!
//! Keys are ECDSA P-256 (rcgen's default), written mode 0600. Files in the directory:
//! `ca.pem`, `ca-key.pem`, `server.pem`, `server-key.pem`, `agent-<ID>.pem`,
//! `agent-<ID>-key.pem`. Existing files are never overwritten.

use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData as _,
};
use uuid::Uuid;

/// CA file name.
pub(crate) const CA_CERT: &str = "ca.pem";
/// CA key file name.
pub(crate) const CA_KEY: &str = "ca-key.pem";
/// Server certificate file name.
pub(crate) const SERVER_CERT: &str = "server.pem";
/// Server key file name.
pub(crate) const SERVER_KEY: &str = "server-key.pem";

/// Default subject alternative names of the server certificate.
pub const DEFAULT_SANS: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// Validity of the CA, days.
pub(crate) const CA_DAYS: i64 = 3650;

/// Longest validity of a server or agent certificate, days: no longer than the CA's.
pub(crate) const MAX_DAYS: i64 = CA_DAYS;

/// `days` if it is a sane validity: notAfter then comes after notBefore, and within the CA's.
fn check_days(days: i64) -> Result<i64, CertsError> {
    if (1..=MAX_DAYS).contains(&days) {
        Ok(days)
    } else {
        Err(CertsError::Days { days })
    }
}

/// Why certificates could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertsError {
    /// A file could not be read or written.
    #[error("{}: {cause}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        cause: io::Error,
    },
    /// rcgen refused (a bad SAN, an unreadable key).
    #[error("{what}: {cause}")]
    Rcgen {
        /// What was being done.
        what: String,
        /// rcgen's error.
        #[source]
        cause: rcgen::Error,
    },
    /// A validity that is not a whole number of days from 1 to [`MAX_DAYS`].
    #[error("--days {days}: must be from 1 to {MAX_DAYS}")]
    Days {
        /// What was asked.
        days: i64,
    },
    /// A certificate that does not parse.
    #[error("{}: not a PEM X.509 certificate", .path.display())]
    BadCert {
        /// The file.
        path: PathBuf,
    },
}

fn rcgen_err(what: impl Into<String>) -> impl FnOnce(rcgen::Error) -> CertsError {
    let what = what.into();
    move |cause| CertsError::Rcgen { what, cause }
}

/// What `init` wrote.
#[derive(Debug, Clone)]
pub struct InitReport {
    /// `ca.pem`.
    pub ca_cert: PathBuf,
    /// `ca-key.pem`.
    pub ca_key: PathBuf,
    /// `server.pem`.
    pub server_cert: PathBuf,
    /// `server-key.pem`.
    pub server_key: PathBuf,
    /// The server key's SPKI SHA-256 pin, base64.
    pub server_pin: String,
}

/// What `issue-agent` wrote.
#[derive(Debug, Clone)]
pub struct AgentReport {
    /// The agent id (the certificate's CN).
    pub agent_id: Uuid,
    /// `agent-<ID>.pem`.
    pub cert: PathBuf,
    /// `agent-<ID>-key.pem`.
    pub key: PathBuf,
}

/// Writes `bytes` to a new file with `mode`, fsync'd; refuses to overwrite.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CertsError> {
    let io_err = |cause| CertsError::Io {
        path: path.to_owned(),
        cause,
    };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io_err)?;
    file.write_all(bytes).map_err(io_err)?;
    file.sync_all().map_err(io_err)
}

/// Valid from yesterday (clock skew) to `days` from today, in whole UTC days.
fn set_validity(params: &mut CertificateParams, days: i64) {
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    let at = |offset: i64| {
        let d = today
            .checked_add(jiff::Span::new().days(offset))
            .unwrap_or(today);
        rcgen::date_time_ymd(i32::from(d.year()), d.month() as u8, d.day() as u8)
    };
    params.not_before = at(-1);
    params.not_after = at(days);
}

/// The SHA-256 of a SubjectPublicKeyInfo (DER), base64 (standard alphabet, padded): the form
/// HTTP public-key pinning used, and what the agent's pin option takes.
pub(crate) fn spki_pin(spki_der: &[u8]) -> String {
    let hash = ring::digest::digest(&ring::digest::SHA256, spki_der);
    base64::engine::general_purpose::STANDARD.encode(hash.as_ref())
}

/// The SPKI pin of the first certificate in a PEM file.
pub fn pin_of_cert_file(path: &Path) -> Result<String, CertsError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    let bad = || CertsError::BadCert {
        path: path.to_owned(),
    };
    let der = CertificateDer::from_pem_file(path).map_err(|_| bad())?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|_| bad())?;
    Ok(spki_pin(cert.public_key().raw))
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "authtrail fleet CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params, CA_DAYS);
    params
}

/// Makes a CA and a server certificate for `sans` (host names or IP addresses) in `dir`
/// (created mode 0700 if missing), valid for `days`. Refuses to overwrite existing files.
pub fn init(dir: &Path, sans: &[String], days: i64) -> Result<InitReport, CertsError> {
    let days = check_days(days)?;
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |cause| CertsError::Io { path, cause }
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err(dir))?;
    let report = InitReport {
        ca_cert: dir.join(CA_CERT),
        ca_key: dir.join(CA_KEY),
        server_cert: dir.join(SERVER_CERT),
        server_key: dir.join(SERVER_KEY),
        server_pin: String::new(),
    };
    for p in [
        &report.ca_cert,
        &report.ca_key,
        &report.server_cert,
        &report.server_key,
    ] {
        if p.exists() {
            return Err(CertsError::Io {
                path: p.clone(),
                cause: io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "already exists; remove it or choose another --dir",
                ),
            });
        }
    }
    let ca_key = KeyPair::generate().map_err(rcgen_err("generating the CA key"))?;
    let params = ca_params();
    let ca_cert = params
        .self_signed(&ca_key)
        .map_err(rcgen_err("signing the CA certificate"))?;
    let issuer = Issuer::new(params, &ca_key);

    let server_key = KeyPair::generate().map_err(rcgen_err("generating the server key"))?;
    let mut params = CertificateParams::new(sans.to_vec())
        .map_err(rcgen_err("server certificate names (--san)"))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        DnType::CommonName,
        sans.first().map_or("authtrail-collector", String::as_str),
    );
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, days);
    let server_cert = params
        .signed_by(&server_key, &issuer)
        .map_err(rcgen_err("signing the server certificate"))?;

    write_new(&report.ca_key, ca_key.serialize_pem().as_bytes(), 0o600)?;
    write_new(&report.ca_cert, ca_cert.pem().as_bytes(), 0o644)?;
    write_new(
        &report.server_key,
        server_key.serialize_pem().as_bytes(),
        0o600,
    )?;
    write_new(&report.server_cert, server_cert.pem().as_bytes(), 0o644)?;
    Ok(InitReport {
        server_pin: spki_pin(&server_key.subject_public_key_info()),
        ..report
    })
}

/// Issues a client certificate for agent `id` (subject CN = the id), signed by the CA in
/// `dir`, valid for `days`.
pub fn issue_agent(dir: &Path, id: Uuid, days: i64) -> Result<AgentReport, CertsError> {
    let days = check_days(days)?;
    let read = |name: &str| {
        let path = dir.join(name);
        fs::read_to_string(&path).map_err(|cause| CertsError::Io { path, cause })
    };
    let ca_key = KeyPair::from_pem(&read(CA_KEY)?).map_err(rcgen_err(format!(
        "{}: reading the CA key",
        dir.join(CA_KEY).display()
    )))?;
    let issuer = Issuer::from_ca_cert_pem(&read(CA_CERT)?, &ca_key).map_err(rcgen_err(format!(
        "{}: reading the CA certificate",
        dir.join(CA_CERT).display()
    )))?;
    let key = KeyPair::generate().map_err(rcgen_err("generating the agent key"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, id.to_string());
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, days);
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(rcgen_err("signing the agent certificate"))?;
    let report = AgentReport {
        agent_id: id,
        cert: dir.join(format!("agent-{id}.pem")),
        key: dir.join(format!("agent-{id}-key.pem")),
    };
    write_new(&report.key, key.serialize_pem().as_bytes(), 0o600)?;
    write_new(&report.cert, cert.pem().as_bytes(), 0o644)?;
    Ok(report)
}

/// The revocation list file `certs revoke` writes in the CA directory.
pub(crate) const REVOKED: &str = "revoked.txt";

/// What `revoke` did.
#[derive(Debug, Clone)]
pub struct RevokeReport {
    /// The revocation list.
    pub list: PathBuf,
    /// The revoked certificate's serial, hex.
    pub serial: String,
    /// False when it was already revoked.
    pub added: bool,
}

/// Revokes the certificate `issue-agent` wrote for agent `id` in `dir`: adds its serial to
/// `dir/revoked.txt` (written temp, fsync, rename). A collector whose `[tls] revoked-file` is
/// that file refuses the certificate at its next request.
pub fn revoke(dir: &Path, id: Uuid) -> Result<RevokeReport, CertsError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    let cert = dir.join(format!("agent-{id}.pem"));
    let der = CertificateDer::from_pem_file(&cert)
        .map_err(|_| CertsError::BadCert { path: cert.clone() })?;
    let serial = crate::auth::cert_serial(&der).ok_or(CertsError::BadCert { path: cert })?;
    let list = dir.join(REVOKED);
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |cause| CertsError::Io { path, cause }
    };
    let mut text = match fs::read_to_string(&list) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io_err(&list)(e)),
    };
    let known = crate::auth::parse_revoked(&text).map_err(|line| CertsError::Io {
        path: list.clone(),
        cause: io::Error::new(
            io::ErrorKind::InvalidData,
            format!("line {line}: expected `SERIAL AGENT-ID`"),
        ),
    })?;
    if known.contains(&serial) {
        return Ok(RevokeReport {
            list,
            serial,
            added: false,
        });
    }
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!("{serial} {id}\n"));
    let tmp = dir.join(format!(".{REVOKED}.tmp"));
    let _ = fs::remove_file(&tmp);
    write_new(&tmp, text.as_bytes(), 0o644)?;
    fs::rename(&tmp, &list).map_err(io_err(&list))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    Ok(RevokeReport {
        list,
        serial,
        added: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn init_then_issue_agent() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("pki");
        let sans: Vec<String> = DEFAULT_SANS.iter().map(|s| (*s).to_owned()).collect();
        let r = init(&d, &sans, 30).unwrap();
        assert_eq!(r.server_pin, pin_of_cert_file(&r.server_cert).unwrap());
        assert_eq!(r.server_pin.len(), 44);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&r.ca_key), 0o600);
        assert_eq!(mode(&r.server_key), 0o600);
        assert!(init(&d, &sans, 30).is_err(), "never overwrites");

        let id = Uuid::new_v4();
        let a = issue_agent(&d, id, 30).unwrap();
        assert_eq!(mode(&a.key), 0o600);
        let der = {
            use rustls_pki_types::pem::PemObject as _;
            rustls_pki_types::CertificateDer::from_pem_file(&a.cert).unwrap()
        };
        assert_eq!(crate::auth::cert_agent_id(&der), Some(id));
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert!(cert.validity().not_after > cert.validity().not_before);
    }

    #[test]
    fn days_must_be_positive_and_at_most_the_cas() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("pki");
        let sans = vec!["localhost".to_owned()];
        for days in [-2, 0, MAX_DAYS + 1, i64::MAX] {
            let e = init(&d, &sans, days).unwrap_err().to_string();
            assert!(e.contains("--days"), "{e}");
        }
        assert!(!d.join(CA_CERT).exists(), "nothing written");
        init(&d, &sans, 1).unwrap();
        for days in [-2, 0, MAX_DAYS + 1] {
            let e = issue_agent(&d, Uuid::new_v4(), days)
                .unwrap_err()
                .to_string();
            assert!(e.contains("--days"), "{e}");
        }
        let a = issue_agent(&d, Uuid::new_v4(), 1).unwrap();
        let der = {
            use rustls_pki_types::pem::PemObject as _;
            rustls_pki_types::CertificateDer::from_pem_file(&a.cert).unwrap()
        };
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert!(cert.validity().not_after > cert.validity().not_before);
    }
}
