//! Who is sending: the agent id a client certificate names, the agent id a bearer token maps
//! to, and the decision whether a request's claimed `Authtrail-Agent-Id` is backed by them.
//!
//! **Agent identity in a certificate** is the subject's Common Name (CN), which must be the
//! agent's UUID (any case). Subject alternative names are not consulted: `certs issue-agent`
//! puts the id in the CN, and one place is easier to audit than several.

use std::path::{Path, PathBuf};

use ring::digest::{SHA256, digest};
use uuid::Uuid;

use crate::config::{ConfigError, Require, read_checked};

/// Shortest token accepted in a tokens file, bytes. Shorter secrets are guessable.
pub(crate) const MIN_TOKEN_BYTES: usize = 16;

/// Most tokens in a file.
pub(crate) const MAX_TOKENS: usize = 100_000;

/// The agent id a verified client certificate names, from its subject CN.
///
/// `None` when the certificate does not parse, has no CN, its CN is not a UUID, or it carries
/// the console's admin role (an admin certificate is never an agent's).
pub fn cert_agent_id(der: &[u8]) -> Option<Uuid> {
    let (rest, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    if !rest.is_empty() || has_admin_role(&cert) {
        return None;
    }
    let mut cns = cert.subject().iter_common_name();
    let cn = cns.next()?.as_str().ok()?;
    // Two CNs are ambiguous: refuse rather than pick one.
    if cns.next().is_some() {
        return None;
    }
    Uuid::parse_str(cn).ok()
}

/// Whether a certificate names [`crate::certs::ADMIN_ROLE_URI`] among its subject alternative
/// names. An unreadable SAN extension counts as no role.
fn has_admin_role(cert: &x509_parser::certificate::X509Certificate<'_>) -> bool {
    use x509_parser::extensions::GeneralName;
    cert.subject_alternative_name()
        .ok()
        .flatten()
        .is_some_and(|san| {
            san.value
                .general_names
                .iter()
                .any(|n| matches!(n, GeneralName::URI(u) if *u == crate::certs::ADMIN_ROLE_URI))
        })
}

/// The person a console admin certificate names (its subject CN) when the certificate carries
/// the admin role ([`crate::certs::ADMIN_ROLE_URI`]); `None` for any other certificate, an
/// agent's included. Only meaningful for a certificate the listener verified against the
/// fleet CA.
pub fn cert_admin(der: &[u8]) -> Option<String> {
    let (rest, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    if !rest.is_empty() || !has_admin_role(&cert) {
        return None;
    }
    let mut cns = cert.subject().iter_common_name();
    let cn = cns.next()?.as_str().ok()?.to_owned();
    cns.next().is_none().then_some(cn)
}

/// The serial number of a certificate (DER), lower-case hex without leading zero bytes;
/// `None` when it does not parse.
pub(crate) fn cert_serial(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(serial_hex(cert.raw_serial()))
}

/// A certificate serial as hex, without leading zero bytes (the form `revoked.txt` holds).
pub(crate) fn serial_hex(raw: &[u8]) -> String {
    let start = raw.iter().position(|&b| b != 0).unwrap_or(raw.len());
    raw[start..].iter().map(|b| format!("{b:02x}")).collect()
}

/// The revocation list file: `SERIAL AGENT-ID` lines (`#` comments), re-read when its size,
/// modification time or inode changes (one `stat` per check).
#[derive(Debug)]
pub(crate) struct Revoked {
    path: PathBuf,
    cache: std::sync::Mutex<RevokedCache>,
}

#[derive(Debug, Default)]
struct RevokedCache {
    /// (inode, size, mtime) of the file read; None: not read yet or missing.
    seen: Option<(u64, u64, i64, i64)>,
    serials: std::collections::HashSet<String>,
}

/// The revocation list could not be read (every certificate is refused until it can).
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", .path.display())]
pub(crate) struct RevokedError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub reason: String,
}

impl Revoked {
    /// A list read from `path` at each check when it has changed.
    pub(crate) fn new(path: PathBuf) -> Revoked {
        Revoked {
            path,
            cache: std::sync::Mutex::new(RevokedCache::default()),
        }
    }

    /// Whether the certificate with `serial` (from [`cert_serial`]) is revoked now.
    pub(crate) fn is_revoked(&self, serial: &str) -> Result<bool, RevokedError> {
        let err = |reason: String| RevokedError {
            path: self.path.clone(),
            reason,
        };
        let mut cache = self
            .cache
            .lock()
            .map_err(|_| err("poisoned lock".to_owned()))?;
        let key = crate::tls::file_key(&self.path).map_err(|e| err(e.to_string()))?;
        if key != cache.seen || (key.is_none() && !cache.serials.is_empty()) {
            cache.serials = match key {
                None => Default::default(),
                Some(_) => {
                    parse_revoked(&read_checked(&self.path, false).map_err(|e| err(e.to_string()))?)
                        .map_err(|line| err(format!("line {line}: expected `SERIAL AGENT-ID`")))?
                }
            };
            cache.seen = key;
        }
        Ok(cache.serials.contains(serial))
    }
}

/// The serials of a revocation list's text, or the 1-based number of a bad line.
pub(crate) fn parse_revoked(text: &str) -> Result<std::collections::HashSet<String>, usize> {
    let mut serials = std::collections::HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let serial = line.split_whitespace().next().unwrap_or("");
        if serial.is_empty() || !serial.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(i + 1);
        }
        serials.insert(serial.to_ascii_lowercase());
    }
    Ok(serials)
}

/// Why a tokens file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokensError {
    /// Unreadable, too big or too open.
    #[error("[auth] tokens-file: {}{}", .0, tokens_hint(.0))]
    File(#[from] ConfigError),
    /// A line that is not `AGENT-ID TOKEN`.
    #[error("{}:{line}: {reason}", .path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong (never the token itself).
        reason: &'static str,
    },
    /// More than [`MAX_TOKENS`] entries.
    #[error("{}: more than {MAX_TOKENS} tokens", .path.display())]
    TooMany {
        /// The file.
        path: PathBuf,
    },
}

/// What to do about a tokens file that is not there.
fn tokens_hint(e: &ConfigError) -> &'static str {
    match e {
        ConfigError::Read { cause, .. } if cause.kind() == std::io::ErrorKind::NotFound => {
            " (create it: one `AGENT-ID TOKEN` per line, mode 600, e.g. \
             `echo \"$(cat /var/lib/authtrail/agent-id) $(openssl rand -base64 32)\"`)"
        }
        _ => "",
    }
}

/// Bearer tokens: `AGENT-ID TOKEN` lines, blank lines and `#` comments allowed.
///
/// ```text
/// # agent id                             token (at least 16 bytes, no spaces)
/// 9b2f6f0e-3c1d-4b8a-9a57-6f1f0b1c2d3e   Zq4...random...
/// ```
///
/// Only SHA-256 digests of the tokens are kept in memory. A presented token is hashed and
/// compared with every entry in constant time (no early exit), so timing reveals neither which
/// entry nor how much of one matched. One agent may have several tokens (for rotation).
#[derive(Clone, Default)]
pub struct Tokens {
    entries: Vec<([u8; 32], Uuid)>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} entries)", self.entries.len())
    }
}

/// Equality of two digests without an early exit. (ring's helper for this is deprecated; the
/// inputs are SHA-256 digests, so even a leak would be of hash bits, not token bytes.)
fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

impl Tokens {
    /// Reads a tokens file, refusing one that others may read or that group or others may
    /// write.
    pub fn load(path: &Path) -> Result<Tokens, TokensError> {
        let text = read_checked(path, true)?;
        Tokens::parse(&text, path)
    }

    /// Parses tokens text; `path` only names the file in errors.
    pub(crate) fn parse(text: &str, path: &Path) -> Result<Tokens, TokensError> {
        let mut entries = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |reason| TokensError::Line {
                path: path.to_owned(),
                line: i + 1,
                reason,
            };
            let mut words = line.split_whitespace();
            let (Some(id), Some(token), None) = (words.next(), words.next(), words.next()) else {
                return Err(err("expected `AGENT-ID TOKEN` (two words)"));
            };
            let id = Uuid::parse_str(id).map_err(|_| err("the agent id is not a UUID"))?;
            if token.len() < MIN_TOKEN_BYTES {
                return Err(err("the token is shorter than 16 bytes"));
            }
            if entries.len() >= MAX_TOKENS {
                return Err(TokensError::TooMany {
                    path: path.to_owned(),
                });
            }
            entries.push((sha256(token.as_bytes()), id));
        }
        Ok(Tokens { entries })
    }

    /// Number of tokens.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The agent a token belongs to, if any. Constant time in the token's content.
    pub(crate) fn agent_of(&self, token: &str) -> Option<Uuid> {
        let presented = sha256(token.as_bytes());
        let mut found = None;
        for (hash, id) in &self.entries {
            if ct_eq(hash, &presented) && found.is_none() {
                found = Some(*id);
            }
        }
        found
    }
}

/// What a request was refused for. 401: no or unknown credentials; 403: credentials that name
/// another agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum AuthError {
    /// Neither a client certificate nor a bearer token.
    #[error("no credentials: present a client certificate or an `Authorization: Bearer` token")]
    NoCredentials,
    /// `require` asks for a client certificate and there is none.
    #[error("a client certificate is required")]
    CertRequired,
    /// `require` asks for a token and there is none.
    #[error("a bearer token is required")]
    TokenRequired,
    /// A token that is in no tokens file entry.
    #[error("unknown bearer token")]
    UnknownToken,
    /// An `Authorization` header that is not `Bearer <token>`.
    #[error("the Authorization header must be `Bearer <token>`")]
    BadAuthorization,
    /// The client certificate's CN is not a UUID.
    #[error("the client certificate's subject CN is not an agent id (a UUID)")]
    CertWithoutId,
    /// The certificate names another agent.
    #[error("the client certificate is for agent {cert}, not {claimed}")]
    CertMismatch {
        /// The CN.
        cert: Uuid,
        /// The `Authtrail-Agent-Id` header.
        claimed: Uuid,
    },
    /// The token belongs to another agent.
    #[error("the bearer token belongs to another agent, not {claimed}")]
    TokenMismatch {
        /// The `Authtrail-Agent-Id` header.
        claimed: Uuid,
    },
}

impl AuthError {
    /// True for 403 (authenticated as someone else), false for 401.
    pub(crate) fn is_forbidden(self) -> bool {
        matches!(
            self,
            AuthError::CertMismatch { .. }
                | AuthError::TokenMismatch { .. }
                | AuthError::CertWithoutId
        )
    }
}

/// What a request presented.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Credentials<'a> {
    /// The verified client certificate's agent id: `Some(None)` when a certificate was
    /// presented but names no agent.
    pub cert: Option<Option<Uuid>>,
    /// The `Authorization` header's value.
    pub authorization: Option<&'a str>,
}

/// The order of checks: missing credentials (401) before a bad agent-id header (400), so that
/// an anonymous client learns nothing about the protocol.
pub(crate) fn check_present(creds: &Credentials<'_>) -> Result<(), AuthError> {
    if creds.cert.is_none() && creds.authorization.is_none() {
        return Err(AuthError::NoCredentials);
    }
    Ok(())
}

/// Decides whether `creds` back the claimed agent id under `require`.
pub(crate) fn authorize(
    require: Require,
    tokens: &Tokens,
    creds: &Credentials<'_>,
    claimed: Uuid,
) -> Result<(), AuthError> {
    check_present(creds)?;
    match require {
        Require::Mtls | Require::Both if creds.cert.is_none() => {
            return Err(AuthError::CertRequired);
        }
        Require::Token | Require::Both if creds.authorization.is_none() => {
            return Err(AuthError::TokenRequired);
        }
        _ => {}
    }
    // Every credential presented must be valid and name the claimed agent, even under
    // `either`: a wrong one is never outvoted by a right one.
    if let Some(header) = creds.authorization {
        // RFC 7235 §2.1: the scheme is case-insensitive (`bearer`, `BEARER`).
        let token = header
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::BadAuthorization)?;
        match tokens.agent_of(token) {
            None => return Err(AuthError::UnknownToken),
            Some(id) if id != claimed => return Err(AuthError::TokenMismatch { claimed }),
            Some(_) => {}
        }
    }
    match creds.cert {
        Some(None) => Err(AuthError::CertWithoutId),
        Some(Some(cert)) if cert != claimed => Err(AuthError::CertMismatch { cert, claimed }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate with subject CN `cn`, and the admin role when `admin`.
    fn cert_with(cn: &str, admin: bool) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        if admin {
            p.subject_alt_names = vec![rcgen::SanType::URI(
                crate::certs::ADMIN_ROLE_URI.try_into().unwrap(),
            )];
        }
        p.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn admin_role_and_agent_id_exclude_each_other() {
        let id = Uuid::new_v4();
        let agent = cert_with(&id.to_string(), false);
        assert_eq!(cert_agent_id(&agent), Some(id));
        assert_eq!(cert_admin(&agent), None, "an agent certificate is no admin");
        let admin = cert_with("ops-alice", true);
        assert_eq!(cert_admin(&admin).as_deref(), Some("ops-alice"));
        assert_eq!(cert_agent_id(&admin), None);
        // Even with a UUID for a CN, a certificate with the admin role names no agent.
        let both = cert_with(&id.to_string(), true);
        assert_eq!(cert_agent_id(&both), None);
        let other_uri = {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut p = rcgen::CertificateParams::default();
            p.subject_alt_names = vec![rcgen::SanType::URI(
                "authtrail:role:adminx".try_into().unwrap(),
            )];
            p.self_signed(&key).unwrap().der().to_vec()
        };
        assert_eq!(cert_admin(&other_uri), None);
    }

    const A: &str = "9b2f6f0e-3c1d-4b8a-9a57-6f1f0b1c2d3e";
    const B: &str = "11111111-2222-4333-8444-555555555555";

    fn tokens() -> Tokens {
        Tokens::parse(
            &format!("# comment\n\n{A} token-for-agent-a-0001\n{B}   token-for-agent-b-0002  \n"),
            Path::new("t"),
        )
        .unwrap()
    }

    #[test]
    fn tokens_map_to_agents() {
        let t = tokens();
        assert_eq!(t.len(), 2);
        assert_eq!(
            t.agent_of("token-for-agent-a-0001"),
            Uuid::parse_str(A).ok()
        );
        assert_eq!(
            t.agent_of("token-for-agent-b-0002"),
            Uuid::parse_str(B).ok()
        );
        assert_eq!(t.agent_of("token-for-agent-a-000"), None);
        assert_eq!(t.agent_of(""), None);
    }

    #[test]
    fn bad_token_lines_name_the_line_but_not_the_token() {
        for (text, want) in [
            ("x y\n", "not a UUID"),
            (&format!("{A} short\n") as &str, "shorter than 16"),
            (&format!("{A}\n"), "two words"),
            (&format!("{A} a-long-enough-token b\n"), "two words"),
        ] {
            let e = Tokens::parse(&format!("# c\n{text}"), Path::new("t"))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("t:2: "), "{e}");
            assert!(e.contains(want), "{e}");
            assert!(
                !e.contains("short\n") && !e.contains("a-long-enough"),
                "{e}"
            );
        }
    }

    #[test]
    fn authorize_modes() {
        let t = tokens();
        let a = Uuid::parse_str(A).unwrap();
        let b = Uuid::parse_str(B).unwrap();
        let tok_a = Some("Bearer token-for-agent-a-0001");
        let none = Credentials::default();
        let cert_a = Credentials {
            cert: Some(Some(a)),
            authorization: None,
        };
        let token_a = Credentials {
            cert: None,
            authorization: tok_a,
        };
        let both_a = Credentials {
            cert: Some(Some(a)),
            authorization: tok_a,
        };
        use Require::*;
        assert_eq!(
            authorize(Either, &t, &none, a),
            Err(AuthError::NoCredentials)
        );
        assert_eq!(authorize(Either, &t, &cert_a, a), Ok(()));
        assert_eq!(authorize(Either, &t, &token_a, a), Ok(()));
        assert_eq!(
            authorize(Mtls, &t, &token_a, a),
            Err(AuthError::CertRequired)
        );
        assert_eq!(
            authorize(Token, &t, &cert_a, a),
            Err(AuthError::TokenRequired)
        );
        assert_eq!(
            authorize(Both, &t, &cert_a, a),
            Err(AuthError::TokenRequired)
        );
        assert_eq!(authorize(Both, &t, &both_a, a), Ok(()));
        let e = authorize(Either, &t, &cert_a, b).unwrap_err();
        assert!(e.is_forbidden());
        let e = authorize(Token, &t, &token_a, b).unwrap_err();
        assert_eq!(e, AuthError::TokenMismatch { claimed: b });
        let bad = Credentials {
            cert: Some(Some(a)),
            authorization: Some("Bearer nope-nope-nope-nope"),
        };
        // A wrong token is not outvoted by a right certificate.
        assert_eq!(authorize(Either, &t, &bad, a), Err(AuthError::UnknownToken));
        let basic = Credentials {
            cert: None,
            authorization: Some("Basic abc"),
        };
        assert_eq!(
            authorize(Either, &t, &basic, a),
            Err(AuthError::BadAuthorization)
        );
        // RFC 7235: the scheme is case-insensitive.
        for scheme in ["bearer", "BEARER", "bEaReR"] {
            let header = format!("{scheme} token-for-agent-a-0001");
            let creds = Credentials {
                cert: None,
                authorization: Some(&header),
            };
            assert_eq!(authorize(Either, &t, &creds, a), Ok(()), "{scheme}");
        }
        let no_id = Credentials {
            cert: Some(None),
            authorization: None,
        };
        assert!(authorize(Mtls, &t, &no_id, a).unwrap_err().is_forbidden());
    }
}
