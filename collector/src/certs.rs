//! A small CA for a fleet: `certs init` makes the CA and the collector's server certificate,
//! `certs issue-agent` a client certificate per agent (subject CN = the agent id),
//! `certs issue-admin` a client certificate for a person at the web console.
//!
//! **The admin role** is a subject alternative name URI, [`ADMIN_ROLE_URI`]
//! (`authtrail:role:admin`), in a certificate whose CN is the person's name. Why a SAN URI:
//! it is how SPIFFE carries a workload's identity in X.509, rcgen writes it and x509-parser
//! reads it, and `openssl x509 -text` shows it plainly; a subject OU is a free-text field many
//! tools fill for their own reasons, and a dedicated extended key usage needs an OID arc of our
//! own (a `2.25.<UUID>` arc does not fit rcgen's 64-bit arcs). The role means something only in
//! a certificate the fleet CA signed (the listener verifies the chain first), and an agent
//! certificate never carries it: the console refuses agent certificates, the ingest path
//! refuses admin certificates ([`crate::auth::cert_agent_id`] names no agent for one).
//!
//! Keys are ECDSA P-256 (rcgen's default), written mode 0600. Files in the directory:
//! `ca.pem`, `ca-key.pem`, `server.pem`, `server-key.pem`, `agent-<ID>.pem`,
//! `agent-<ID>-key.pem`, `admin-<NAME>.pem`, `admin-<NAME>-key.pem`. Existing files are never overwritten.

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

/// The subject alternative name URI that gives a certificate the console's admin role.
pub const ADMIN_ROLE_URI: &str = "authtrail:role:admin";

/// Longest admin name, bytes.
pub const MAX_ADMIN_NAME: usize = 64;

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
    /// An admin name that is not 1 to [`MAX_ADMIN_NAME`] letters, digits, `.`, `_` or `-`
    /// starting with a letter or digit, or that is a UUID (which names agents).
    #[error(
        "admin name {0:?}: 1 to {MAX_ADMIN_NAME} letters, digits, '.', '_' or '-', \
             starting with a letter or digit, and not a UUID"
    )]
    AdminName(String),
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

/// What `issue-admin` wrote.
#[derive(Debug, Clone)]
pub struct AdminReport {
    /// The person's name (the certificate's CN).
    pub name: String,
    /// `admin-<NAME>.pem`.
    pub cert: PathBuf,
    /// `admin-<NAME>-key.pem`.
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
    params.not_before = utc_day(-1);
    params.not_after = utc_day(days);
}

/// Midnight UTC `offset` days from today.
fn utc_day(offset: i64) -> time::OffsetDateTime {
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    let d = today
        .checked_add(jiff::Span::new().days(offset))
        .unwrap_or(today);
    rcgen::date_time_ymd(i32::from(d.year()), d.month() as u8, d.day() as u8)
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

/// `name` if it is a sane admin name (it becomes a file name and a CN).
fn check_admin_name(name: &str) -> Result<&str, CertsError> {
    let ok = (1..=MAX_ADMIN_NAME).contains(&name.len())
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && Uuid::parse_str(name).is_err();
    if ok {
        Ok(name)
    } else {
        Err(CertsError::AdminName(name.to_owned()))
    }
}

/// The CA in `dir` as an issuer.
fn load_issuer(dir: &Path) -> Result<Issuer<'static, KeyPair>, CertsError> {
    let read = |name: &str| {
        let path = dir.join(name);
        fs::read_to_string(&path).map_err(|cause| CertsError::Io { path, cause })
    };
    let ca_key = KeyPair::from_pem(&read(CA_KEY)?).map_err(rcgen_err(format!(
        "{}: reading the CA key",
        dir.join(CA_KEY).display()
    )))?;
    Issuer::from_ca_cert_pem(&read(CA_CERT)?, ca_key).map_err(rcgen_err(format!(
        "{}: reading the CA certificate",
        dir.join(CA_CERT).display()
    )))
}

/// Issues a console admin certificate for the person `name` (subject CN = `name`, SAN URI
/// [`ADMIN_ROLE_URI`], client authentication only), signed by the CA in `dir`, valid for
/// `days`.
pub fn issue_admin(dir: &Path, name: &str, days: i64) -> Result<AdminReport, CertsError> {
    let days = check_days(days)?;
    let name = check_admin_name(name)?;
    let uri = ADMIN_ROLE_URI
        .try_into()
        .map_err(rcgen_err("the admin role URI"))?;
    let report = AdminReport {
        name: name.to_owned(),
        cert: dir.join(format!("admin-{name}.pem")),
        key: dir.join(format!("admin-{name}-key.pem")),
    };
    issue_client(
        dir,
        name,
        vec![rcgen::SanType::URI(uri)],
        days,
        (&report.cert, &report.key),
    )?;
    Ok(report)
}

/// Issues a client-authentication certificate (subject CN `cn`, subject alternative names
/// `sans`) signed by the CA in `dir`, valid for `days`, written to `files` (certificate, key).
fn issue_client(
    dir: &Path,
    cn: &str,
    sans: Vec<rcgen::SanType>,
    days: i64,
    files: (&Path, &Path),
) -> Result<(), CertsError> {
    let issuer = load_issuer(dir)?;
    let key = KeyPair::generate().map_err(rcgen_err(format!("generating the key for {cn}")))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, days);
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(rcgen_err(format!("signing the certificate for {cn}")))?;
    write_new(files.1, key.serialize_pem().as_bytes(), 0o600)?;
    write_new(files.0, cert.pem().as_bytes(), 0o644)
}

/// Issues a client certificate for agent `id` (subject CN = the id), signed by the CA in
/// `dir`, valid for `days`.
pub fn issue_agent(dir: &Path, id: Uuid, days: i64) -> Result<AgentReport, CertsError> {
    let days = check_days(days)?;
    let report = AgentReport {
        agent_id: id,
        cert: dir.join(format!("agent-{id}.pem")),
        key: dir.join(format!("agent-{id}-key.pem")),
    };
    issue_client(
        dir,
        &id.to_string(),
        Vec::new(),
        days,
        (&report.cert, &report.key),
    )?;
    Ok(report)
}

/// The revocation list file `certs revoke` writes in the CA directory.
pub const REVOKED: &str = "revoked.txt";

/// The X.509 certificate revocation list `certs revoke` signs with the CA's key and writes in
/// the CA directory (PEM), from every serial of [`REVOKED`]. A collector whose `[tls] crl-file`
/// is that file refuses a revoked certificate in the TLS handshake.
pub const CRL: &str = "crl.pem";

/// How long a CRL `certs revoke` signs says it stays current (its nextUpdate), days. The
/// collector does not refuse a CRL past it (it is re-signed at each revocation, and an old
/// list of revocations is still true), but other verifiers may.
pub const CRL_DAYS: i64 = 365;

/// What `revoke` did.
#[derive(Debug, Clone)]
pub struct RevokeReport {
    /// The revocation list.
    pub list: PathBuf,
    /// The signed CRL, with every serial of the list.
    pub crl: PathBuf,
    /// The revoked certificate's serial, hex.
    pub serial: String,
    /// False when it was already revoked.
    pub added: bool,
}

/// Revokes the certificate `issue-agent` wrote for agent `id` in `dir`: adds its serial to
/// `dir/revoked.txt` and signs `dir/crl.pem` anew from every serial in that list (each written
/// temp, fsync, rename; the CRL first). A collector whose `[tls] crl-file` is that CRL refuses
/// the certificate at its next handshake; one whose `[tls] revoked-file` is the list, at its
/// next request. Revoking an agent already revoked signs the CRL again: that is how a list
/// written before CRLs existed gets its CRL.
pub fn revoke(dir: &Path, id: Uuid) -> Result<RevokeReport, CertsError> {
    revoke_file(dir, &dir.join(format!("agent-{id}.pem")), &id.to_string())
}

/// Revokes the certificate `issue-admin` wrote for `name` in `dir`, as [`revoke`] does an
/// agent's: the console refuses it at its next request.
pub fn revoke_admin(dir: &Path, name: &str) -> Result<RevokeReport, CertsError> {
    let name = check_admin_name(name)?;
    revoke_file(dir, &dir.join(format!("admin-{name}.pem")), name)
}

/// Adds the serial of the certificate in `cert` to `dir/revoked.txt`, labelled `label`.
fn revoke_file(dir: &Path, cert: &Path, label: &str) -> Result<RevokeReport, CertsError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    let cert = cert.to_owned();
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
    let added = !known.contains(&serial);
    let mut serials: Vec<&str> = known.iter().map(String::as_str).collect();
    if added {
        serials.push(&serial);
    }
    serials.sort_unstable();
    let crl = dir.join(CRL);
    replace(dir, CRL, sign_crl(dir, &serials)?.as_bytes())?;
    if added {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!("{serial} {label}\n"));
        replace(dir, REVOKED, text.as_bytes())?;
    }
    Ok(RevokeReport {
        list,
        crl,
        serial,
        added,
    })
}

/// Replaces `dir/name` with `bytes`: written to a temporary file, fsync'd, renamed over it, and
/// the directory fsync'd.
fn replace(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), CertsError> {
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |cause| CertsError::Io { path, cause }
    };
    let (tmp, path) = (dir.join(format!(".{name}.tmp")), dir.join(name));
    let _ = fs::remove_file(&tmp);
    write_new(&tmp, bytes, 0o644)?;
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// A CRL (PEM) signed by the CA in `dir` revoking `serials` (hex, as [`REVOKED`] holds them),
/// current from today for [`CRL_DAYS`], numbered by the time it is signed (so each is newer
/// than the last).
fn sign_crl(dir: &Path, serials: &[&str]) -> Result<String, CertsError> {
    let issuer = load_issuer(dir)?;
    let today = utc_day(0);
    let revoked_certs = serials
        .iter()
        .map(|hex| rcgen::RevokedCertParams {
            serial_number: rcgen::SerialNumber::from(serial_bytes(hex)),
            revocation_time: today,
            reason_code: None,
            invalidity_date: None,
        })
        .collect();
    let number = u64::try_from(jiff::Timestamp::now().as_millisecond()).unwrap_or(0);
    let params = rcgen::CertificateRevocationListParams {
        this_update: today,
        next_update: utc_day(CRL_DAYS),
        crl_number: rcgen::SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    };
    params
        .signed_by(&issuer)
        .and_then(|crl| crl.pem())
        .map_err(rcgen_err("signing the CRL"))
}

/// The big-endian bytes of a hex serial (an odd number of digits has a leading 0 added).
fn serial_bytes(hex: &str) -> Vec<u8> {
    let padded = if hex.len() % 2 == 1 {
        format!("0{hex}")
    } else {
        hex.to_owned()
    };
    padded
        .as_bytes()
        .chunks(2)
        .filter_map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
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
    fn admin_names_are_checked_and_admin_certs_carry_the_role() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("pki");
        init(&d, &["localhost".to_owned()], 1).unwrap();
        let long = "a".repeat(MAX_ADMIN_NAME + 1);
        let uuid = Uuid::new_v4().to_string();
        for bad in ["", "../x", "-x", "a b", &long, &uuid] {
            let e = issue_admin(&d, bad, 1).unwrap_err().to_string();
            assert!(e.contains("admin name"), "{bad}: {e}");
        }
        let a = issue_admin(&d, "ops.alice_1", 1).unwrap();
        let der = {
            use rustls_pki_types::pem::PemObject as _;
            rustls_pki_types::CertificateDer::from_pem_file(&a.cert).unwrap()
        };
        assert_eq!(
            crate::auth::cert_admin(&der).as_deref(),
            Some("ops.alice_1")
        );
        assert_eq!(crate::auth::cert_agent_id(&der), None);
        assert!(
            issue_admin(&d, "ops.alice_1", 1).is_err(),
            "never overwrites"
        );
        let r = revoke_admin(&d, "ops.alice_1").unwrap();
        assert!(r.added);
        assert!(!revoke_admin(&d, "ops.alice_1").unwrap().added);
        let list = fs::read_to_string(&r.list).unwrap();
        assert!(
            list.contains(&format!("{} ops.alice_1", r.serial)),
            "{list}"
        );
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

    /// The serials (hex, as `revoked.txt` holds them) a CRL file revokes, after checking its
    /// signature against the CA in `dir`.
    fn crl_serials(dir: &Path) -> Vec<String> {
        use rustls_pki_types::pem::PemObject as _;
        let der =
            rustls_pki_types::CertificateRevocationListDer::from_pem_file(dir.join(CRL)).unwrap();
        let (_, crl) = x509_parser::parse_x509_crl(&der).unwrap();
        let ca = rustls_pki_types::CertificateDer::from_pem_file(dir.join(CA_CERT)).unwrap();
        let (_, ca) = x509_parser::parse_x509_certificate(&ca).unwrap();
        crl.verify_signature(ca.public_key()).unwrap();
        let mut serials: Vec<String> = crl
            .iter_revoked_certificates()
            .map(|r| crate::auth::serial_hex(r.raw_serial()))
            .collect();
        serials.sort();
        serials
    }

    #[test]
    fn revoke_signs_a_crl_of_every_listed_serial_and_migrates_an_old_list() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("pki");
        init(&d, &["localhost".to_owned()], 30).unwrap();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        issue_agent(&d, a, 30).unwrap();
        issue_agent(&d, b, 30).unwrap();
        let ra = revoke(&d, a).unwrap();
        assert!(ra.added);
        assert_eq!(crl_serials(&d), std::slice::from_ref(&ra.serial));
        let rb = revoke(&d, b).unwrap();
        let mut both = vec![ra.serial.clone(), rb.serial.clone()];
        both.sort();
        assert_eq!(crl_serials(&d), both);
        // A list written before CRLs existed (no crl.pem): revoking again signs its CRL.
        fs::remove_file(d.join(CRL)).unwrap();
        let again = revoke(&d, a).unwrap();
        assert!(!again.added);
        assert_eq!(crl_serials(&d), both);
    }
}
