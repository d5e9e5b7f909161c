//! The login-event model: what one recognised log line says happened.
//!
//! A [`LoginEvent`] borrows every text field from the line it was parsed from (see [`Text`]).
//! Field names follow the ECS schema in `ARCHITECTURE.md`; [`crate::ecs`] writes them as JSON.

use core::fmt;
use core::net::IpAddr;

use crate::text::Text;
use crate::time::Timestamp;

/// What happened (`event.action`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Action {
    /// A user proved who they are (sshd `Accepted ...`).
    AuthSuccess,
    /// An authentication attempt failed.
    AuthFailure,
    /// Someone tried a user name that does not exist.
    InvalidUser,
    /// A login or privilege session began.
    SessionOpen,
    /// A session ended.
    SessionClose,
    /// A connection ended (before or after authentication).
    Disconnect,
    /// A sudo command (allowed or refused).
    Sudo,
    /// A switch of user with su.
    Su,
    /// An account or group was created, removed or changed.
    AccountChange,
    /// A network connection arrived (sshd `Connection from`).
    Connection,
    /// Recognised, security-relevant, but none of the above.
    Other,
}

impl Action {
    /// Every action, in declaration order.
    pub const ALL: [Action; 11] = [
        Action::AuthSuccess,
        Action::AuthFailure,
        Action::InvalidUser,
        Action::SessionOpen,
        Action::SessionClose,
        Action::Disconnect,
        Action::Sudo,
        Action::Su,
        Action::AccountChange,
        Action::Connection,
        Action::Other,
    ];

    /// The ECS `event.action` value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Action::AuthSuccess => "auth_success",
            Action::AuthFailure => "auth_failure",
            Action::InvalidUser => "invalid_user",
            Action::SessionOpen => "session_open",
            Action::SessionClose => "session_close",
            Action::Disconnect => "disconnect",
            Action::Sudo => "sudo",
            Action::Su => "su",
            Action::AccountChange => "account_change",
            Action::Connection => "connection",
            Action::Other => "other",
        }
    }

    /// Parses an `event.action` value.
    pub fn from_str_exact(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// The ECS `event.category` this action belongs to.
    pub const fn category(self) -> Category {
        match self {
            Action::AuthSuccess | Action::AuthFailure | Action::InvalidUser => {
                Category::Authentication
            }
            Action::SessionOpen | Action::SessionClose | Action::Disconnect => Category::Session,
            Action::Sudo | Action::Su => Category::Process,
            Action::AccountChange => Category::Iam,
            Action::Connection => Category::Network,
            Action::Other => Category::Authentication,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether it worked (`event.outcome`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// It worked.
    Success,
    /// It was refused or failed.
    Failure,
    /// The line does not say.
    Unknown,
}

impl Outcome {
    /// The ECS `event.outcome` value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Unknown => "unknown",
        }
    }
}

/// The ECS `event.category`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    /// Proving identity.
    Authentication,
    /// Sessions and connections ending.
    Session,
    /// Identity and access management: accounts and groups.
    Iam,
    /// Running something as someone else (sudo, su).
    Process,
    /// A connection arriving (ECS's own category for it).
    Network,
}

impl Category {
    /// The ECS `event.category` value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Category::Authentication => "authentication",
            Category::Session => "session",
            Category::Iam => "iam",
            Category::Process => "process",
            Category::Network => "network",
        }
    }
}

/// How a user authenticated (`authtrail.method`), sshd's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Method {
    /// `password`
    Password,
    /// `publickey`
    Publickey,
    /// `keyboard-interactive` (also `keyboard-interactive/pam`)
    KeyboardInteractive,
    /// `gssapi-with-mic` (also `gssapi-keyex`)
    GssapiWithMic,
    /// `hostbased`
    Hostbased,
    /// `none`
    None,
}

impl Method {
    /// Every method.
    pub const ALL: [Method; 6] = [
        Method::Password,
        Method::Publickey,
        Method::KeyboardInteractive,
        Method::GssapiWithMic,
        Method::Hostbased,
        Method::None,
    ];

    /// The `authtrail.method` value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Password => "password",
            Method::Publickey => "publickey",
            Method::KeyboardInteractive => "keyboard-interactive",
            Method::GssapiWithMic => "gssapi-with-mic",
            Method::Hostbased => "hostbased",
            Method::None => "none",
        }
    }

    /// sshd's method word as it appears in `Accepted <method> for ...`, including the
    /// `keyboard-interactive/pam` and `gssapi-keyex` spellings.
    pub fn from_sshd(word: &[u8]) -> Option<Method> {
        Some(match word {
            b"password" => Method::Password,
            b"publickey" => Method::Publickey,
            b"keyboard-interactive" | b"keyboard-interactive/pam" => Method::KeyboardInteractive,
            b"gssapi-with-mic" | b"gssapi-keyex" | b"gssapi" => Method::GssapiWithMic,
            b"hostbased" => Method::Hostbased,
            b"none" => Method::None,
            _ => return None,
        })
    }
}

/// Where a login came from: an address, or a host name when the log holds a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source<'a> {
    /// `source.ip` (IPv4-mapped IPv6 addresses are folded to IPv4).
    Ip(IpAddr),
    /// `source.domain`: sshd logs a name when `UseDNS yes` resolved one.
    Domain(Text<'a>),
}

/// One recognised login-relevant log line. Fields are `None` when the line does not say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoginEvent<'a> {
    /// `@timestamp` from the line's header, if it had one.
    pub timestamp: Option<Timestamp>,
    /// `host.hostname` from the line's header.
    pub hostname: Option<Text<'a>>,
    /// `process.name`: the program that wrote the line (`sshd`, `sudo`, `su`, ...).
    pub program: Text<'a>,
    /// `process.pid`.
    pub pid: Option<u32>,
    /// `event.action`.
    pub action: Action,
    /// `event.outcome`.
    pub outcome: Outcome,
    /// `user.name`: who authenticates or acts.
    pub user: Option<Text<'a>>,
    /// `user.target.name`: the sudo/su target, or the account changed.
    pub target_user: Option<Text<'a>>,
    /// `user` holds the hex encoding of the name (Linux audit's `acct=` for a name with a space
    /// or a byte outside printable ASCII); writers decode it. Parsers cannot decode in place
    /// without allocating, so the flag travels with the borrowed bytes.
    pub user_hex: bool,
    /// As `user_hex`, for `target_user`.
    pub target_user_hex: bool,
    /// `user.id` where the line gives it.
    pub uid: Option<u32>,
    /// `source.ip` or `source.domain`.
    pub source: Option<Source<'a>>,
    /// `source.port`.
    pub port: Option<u16>,
    /// `authtrail.method`.
    pub method: Option<Method>,
    /// `authtrail.key.type` (`ED25519`, `RSA`, ...).
    pub key_type: Option<Text<'a>>,
    /// `authtrail.key.fingerprint` (`SHA256:...`).
    pub key_fingerprint: Option<Text<'a>>,
    /// `authtrail.tty`.
    pub tty: Option<Text<'a>>,
    /// `authtrail.command` (sudo).
    pub command: Option<Text<'a>>,
    /// `event.reason`: why it failed or what changed, in the program's words.
    pub reason: Option<Text<'a>>,
    /// `authtrail.count`: how many times this happened (`message repeated N times`, sudo's
    /// `N incorrect password attempts`, PAM's `N more authentication failures`). At least 1.
    pub count: u32,
}

impl<'a> LoginEvent<'a> {
    /// An event with the given action and outcome and every other field unknown.
    pub const fn new(action: Action, outcome: Outcome) -> Self {
        LoginEvent {
            timestamp: None,
            hostname: None,
            program: Text(b""),
            pid: None,
            action,
            outcome,
            user: None,
            target_user: None,
            user_hex: false,
            target_user_hex: false,
            uid: None,
            source: None,
            port: None,
            method: None,
            key_type: None,
            key_fingerprint: None,
            tty: None,
            command: None,
            reason: None,
            count: 1,
        }
    }

    /// `event.category`.
    #[inline]
    pub const fn category(&self) -> Category {
        self.action.category()
    }

    /// The source address, if the source is an address.
    pub fn source_ip(&self) -> Option<IpAddr> {
        match self.source {
            Some(Source::Ip(ip)) => Some(ip),
            _ => None,
        }
    }

    /// Sets `user` from a field, leaving it `None` when the field is empty (the schema never
    /// carries an empty string).
    #[inline]
    pub fn with_user(mut self, user: &'a [u8]) -> Self {
        self.user = non_empty(user);
        self
    }
}

/// `Some(Text)` for a non-empty field, `None` for an empty one.
#[inline]
pub(crate) fn non_empty(b: &[u8]) -> Option<Text<'_>> {
    if b.is_empty() { None } else { Some(Text(b)) }
}
