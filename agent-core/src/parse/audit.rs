//! Linux audit records, as auditd writes them to `/var/log/audit/audit.log` (`log_format = RAW`
//! or `ENRICHED`), as `ausearch --format raw` prints them, and as the same records reach a syslog
//! file or the journal.
//!
//! The forms, from linux-audit's `auditd-event.c` (`format_raw`, `format_enrich`), libaudit's
//! `audit_log_acct_message`/`audit_log_user_message` (`lib/audit_logging.c`) and systemd's
//! `journald-audit.c`:
//! - raw: `[node=<host> ]type=<TYPE> msg=audit(<secs>.<ms>:<serial>): <fields>`; an unknown type
//!   is `type=UNKNOWN[<n>]`. `ENRICHED` appends `\x1d` and interpreted fields (`UID="root"
//!   AUID="alice" ID="alice"`).
//! - journald (`SYSLOG_IDENTIFIER=audit`): `audit[<pid>]: <TYPE> <fields>`, an unknown type
//!   `AUDIT<n>`.
//! - the kernel's own printk while no auditd runs: `kernel: audit: type=<n> audit(<secs>.<ms>:
//!   <serial>): <fields>`.
//! - audisp-syslog and relays that tail the file: `<prog>: [node=<host> ]type=<TYPE> msg=audit(...)`.
//!
//! User-space records (everything this parser reports) carry `pid= uid= auid= ses= [subj=]
//! msg='<inner>'`, the inner part being `op=<op> [grantors=<mods>] acct=<name>|id=<uid>
//! exe=<path> hostname=<h> addr=<a> terminal=<t> res=success|failed`. `acct` is quoted, or
//! hex-encoded when the name holds a space, a quote or a byte outside printable ASCII; unknown
//! values are `?`. Each such record is a whole event of its own (one serial, one record): the
//! multi-record events of the kernel (`SYSCALL`+`PATH`+`PROCTITLE`...) carry no login and are
//! Noise, so no record needs joining to another to say who logged in from where.
//!
//! Decisions:
//! - `USER_AUTH` is the authentication (`auth_success`/`auth_failure`); `USER_LOGIN` the login as
//!   the program reports it (`auth_success` when granted, `auth_failure` when refused);
//!   `USER_START`/`USER_END` the PAM session (`session_open`/`session_close`), `USER_LOGOUT` too;
//!   `USER_ACCT` the account check (`other` when granted, `auth_failure` when refused);
//!   `CRED_ACQ` `other`; `USER_ERR` a failed PAM step (`auth_failure`);
//!   `ANOM_LOGIN_FAILURES` (pam_faillock, pam_tally2: the failure limit was reached) an
//!   `auth_failure`; `USER_CHAUTHTOK`, `ADD_USER`, `DEL_USER`, `ADD_GROUP`, `DEL_GROUP`,
//!   `USER_MGMT`, `GRP_MGMT`, `ACCT_LOCK`, `ACCT_UNLOCK` an `account_change` of the account in
//!   `acct` (`user.target.name`), with `op` as the reason; `USER_ROLE_CHANGE` `other`.
//! - sshd writes `acct="(invalid user)"` (hex-encoded, it holds a space) or `"(unknown)"` for a
//!   name that is not an account: the action becomes `invalid_user` and no user is named.
//! - `process.name` is the basename of `exe`; `process.pid` the record's `pid`; the source is
//!   `addr`, else `hostname` when that is an address (both `?` when unknown; a bare name in
//!   `hostname` with `addr=?` is the local host, filled in by libaudit); `terminal` is the tty
//!   unless it is `?` or sshd's `ssh`/`sshd` placeholders.

use super::Verdict;
use super::fields::{parse_ip, parse_u32, split_once};
use crate::event::{Action, LoginEvent, Outcome, Source};
use crate::text::Text;

/// The audit record types this parser reports, by number (`linux/audit.h`, libaudit's
/// `msg_typetab.h`).
const TYPES: &[(u16, &[u8])] = &[
    (1100, b"USER_AUTH"),
    (1101, b"USER_ACCT"),
    (1102, b"USER_MGMT"),
    (1103, b"CRED_ACQ"),
    (1104, b"CRED_DISP"),
    (1105, b"USER_START"),
    (1106, b"USER_END"),
    (1108, b"USER_CHAUTHTOK"),
    (1109, b"USER_ERR"),
    (1110, b"CRED_REFR"),
    (1112, b"USER_LOGIN"),
    (1113, b"USER_LOGOUT"),
    (1114, b"ADD_USER"),
    (1115, b"DEL_USER"),
    (1116, b"ADD_GROUP"),
    (1117, b"DEL_GROUP"),
    (1132, b"GRP_MGMT"),
    (1135, b"ACCT_LOCK"),
    (1136, b"ACCT_UNLOCK"),
    (2100, b"ANOM_LOGIN_FAILURES"),
    (2300, b"USER_ROLE_CHANGE"),
];

/// What a raw record's prefix says: the host (`node=`), the type name, the time and the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Raw<'a> {
    pub(crate) node: Option<Text<'a>>,
    pub(crate) secs: i64,
    pub(crate) millis: u32,
    pub(crate) serial: u64,
    pub(crate) kind: &'a [u8],
    pub(crate) body: &'a [u8],
}

/// True when `line` starts like a raw audit record (`type=` or `node=`), cheap enough for every
/// line.
#[inline]
pub(crate) fn looks_raw(line: &[u8]) -> bool {
    line.starts_with(b"type=") || line.starts_with(b"node=")
}

/// Splits `[node=<h> ]type=<T> msg=audit(<s>.<ms>:<serial>):[ ]<body>`.
pub(crate) fn split_raw(line: &[u8]) -> Option<Raw<'_>> {
    let mut rest = line;
    let mut node = None;
    if let Some(r) = rest.strip_prefix(b"node=") {
        let (n, after) = split_once(r, b" ")?;
        node = (!n.is_empty()).then_some(Text(n));
        rest = after;
    }
    let r = rest.strip_prefix(b"type=")?;
    let (kind, after) = split_once(r, b" msg=audit(")?;
    let (stamp, body) = split_once(after, b"):")?;
    let (secs, ms_serial) = split_once(stamp, b".")?;
    let (ms, serial) = split_once(ms_serial, b":")?;
    if secs.len() > 12 || ms.len() > 3 {
        return None;
    }
    let secs = i64::from(parse_u32(secs)?);
    let mut millis = parse_u32(ms)?;
    for _ in ms.len()..3 {
        millis *= 10;
    }
    let serial = u64::from(parse_u32(serial)?);
    Some(Raw {
        node,
        secs,
        millis,
        serial,
        kind,
        body: body.strip_prefix(b" ").unwrap_or(body),
    })
}

/// `1112` or `UNKNOWN[1112]` or `AUDIT1112` -> `USER_LOGIN`; a name is returned as it is.
fn type_name(kind: &[u8]) -> &[u8] {
    let digits = kind
        .strip_prefix(b"UNKNOWN[")
        .and_then(|k| k.strip_suffix(b"]"))
        .or_else(|| kind.strip_prefix(b"AUDIT"))
        .unwrap_or(kind);
    // Some journal readers prefix the name (`AUDIT_USER_LOGIN`).
    let digits = digits.strip_prefix(b"_").unwrap_or(digits);
    if parse_u32(digits).is_none() && digits.len() < kind.len() {
        return digits;
    }
    match parse_u32(digits) {
        Some(n) => TYPES
            .iter()
            .find(|(num, _)| u32::from(*num) == n)
            .map_or(kind, |(_, name)| name),
        None => kind,
    }
}

/// The journald form: `<TYPE> <fields>`.
pub(crate) fn parse_journal(msg: &[u8]) -> Verdict<'_> {
    // A relay of the raw file (`audisp-syslog`, rsyslog imfile) keeps the raw prefix.
    if looks_raw(msg) {
        return match split_raw(msg) {
            Some(raw) => record(raw.kind, raw.body),
            None => Verdict::Unrecognised,
        };
    }
    // The kernel's printk: `audit: type=1112 audit(1.2:3): <fields>`.
    if let Some(r) = msg.strip_prefix(b"audit: type=") {
        let Some((kind, after)) = split_once(r, b" audit(") else {
            return Verdict::Unrecognised;
        };
        let Some((_, body)) = split_once(after, b"):") else {
            return Verdict::Unrecognised;
        };
        return record(kind, body.trim_ascii_start());
    }
    let (kind, body) = match memchr::memchr(b' ', msg) {
        Some(i) => (&msg[..i], &msg[i + 1..]),
        None => (msg, &b""[..]),
    };
    if kind.is_empty()
        || !kind
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_')
    {
        return Verdict::Unrecognised;
    }
    record(kind, body)
}

/// One record's type and fields (after `msg=audit(...): `).
pub(crate) fn record<'a>(kind: &'a [u8], body: &'a [u8]) -> Verdict<'a> {
    let name = type_name(kind);
    let (action, outcome_rule) = match name {
        b"USER_AUTH" => (Action::AuthSuccess, Rule::SuccessOrFailure),
        b"USER_LOGIN" => (Action::AuthSuccess, Rule::SuccessOrFailure),
        b"USER_ACCT" => (Action::Other, Rule::SuccessOrFailure),
        b"USER_START" => (Action::SessionOpen, Rule::Plain),
        b"USER_END" | b"USER_LOGOUT" => (Action::SessionClose, Rule::Plain),
        b"CRED_ACQ" => (Action::Other, Rule::Plain),
        b"USER_ERR" => (Action::AuthFailure, Rule::Plain),
        b"ANOM_LOGIN_FAILURES" => (Action::AuthFailure, Rule::AlwaysFailure),
        b"USER_CHAUTHTOK" | b"ADD_USER" | b"DEL_USER" | b"ADD_GROUP" | b"DEL_GROUP"
        | b"USER_MGMT" | b"GRP_MGMT" | b"ACCT_LOCK" | b"ACCT_UNLOCK" => {
            (Action::AccountChange, Rule::Plain)
        }
        b"USER_ROLE_CHANGE" => (Action::Other, Rule::Plain),
        _ => return Verdict::Noise,
    };
    let fields = Fields::new(body);
    let res = fields.inner(b"res");
    let outcome = match res.map(|v| v.bytes) {
        Some(b"success" | b"yes" | b"1") => Outcome::Success,
        Some(b"failed" | b"failure" | b"no" | b"0") => Outcome::Failure,
        _ => Outcome::Unknown,
    };
    let mut e = LoginEvent::new(action, outcome);
    // Whether `op` explains the event: what changed, or which PAM step failed.
    let op_is_reason =
        matches!(name, b"USER_ERR" | b"USER_ACCT" | b"CRED_ACQ") || action == Action::AccountChange;
    match outcome_rule {
        Rule::SuccessOrFailure if outcome == Outcome::Failure => {
            e.action = Action::AuthFailure;
        }
        Rule::AlwaysFailure => e.outcome = Outcome::Failure,
        _ => {}
    }
    if outcome_rule == Rule::AlwaysFailure {
        // pam_faillock: `op=pam_faillock suid=N` (older `pam_faillock uid=N`), pam_tally2:
        // `pam_tally2 uid=N`: the uid of the account that reached the limit.
        e.reason = Some(Text(b"login failure limit reached"));
        e.uid = fields
            .inner(b"suid")
            .or_else(|| fields.inner(b"uid"))
            .and_then(|v| parse_u32(v.bytes));
    }
    e.pid = fields.outer(b"pid").and_then(|v| parse_u32(v.bytes));
    let op = fields.op();

    // Who: `acct=` (a name), else `id=` (a uid, named by the enriched `ID=` when present).
    let acct = fields.inner(b"acct").filter(|v| !v.is_unknown());
    let mut who: Option<Value<'_>> = None;
    let mut invalid = false;
    if let Some(v) = acct {
        if v.matches(b"(invalid user)") || v.matches(b"(unknown)") || v.matches(b"UNKNOWN") {
            invalid = true;
        } else {
            who = Some(v);
        }
    }
    let id = fields.inner(b"id").and_then(|v| parse_u32(v.bytes));
    if who.is_none() && id.is_some() {
        who = fields
            .enriched(b"ID")
            .filter(|v| !v.is_unknown() && !v.bytes.starts_with(b"unknown"));
    }
    match e.action {
        Action::AccountChange => {
            set_text(&mut e, who, Slot::Target);
            // The actor: the enriched AUID, when the record has one.
            if let Some(a) = fields
                .enriched(b"AUID")
                .filter(|v| !v.is_unknown() && v.bytes != b"unset")
            {
                set_text(&mut e, Some(a), Slot::User);
            }
            e.reason = op.map(|v| Text(v.bytes));
        }
        _ => {
            set_text(&mut e, who, Slot::User);
            if who.is_none() && e.uid.is_none() {
                e.uid = id;
            }
            if op_is_reason && e.reason.is_none() {
                e.reason = op.map(|v| Text(v.bytes));
            }
        }
    }
    if invalid && matches!(e.action, Action::AuthFailure | Action::AuthSuccess) {
        e.action = Action::InvalidUser;
        e.outcome = Outcome::Failure;
    }
    // Where from: `addr`, else `hostname` when it is an address (libaudit fills `hostname` with
    // the local host's name when the program gave none, as passwd's records show).
    let ip = |key: &[u8]| {
        fields
            .inner(key)
            .filter(|v| !v.is_unknown() && !v.hex)
            .and_then(|v| parse_ip(v.bytes))
    };
    e.source = ip(b"addr").or_else(|| ip(b"hostname")).map(Source::Ip);
    e.tty = fields
        .inner(b"terminal")
        .filter(|v| !v.is_unknown() && !v.hex && v.bytes != b"sshd")
        .and_then(|v| super::pam::tty(v.bytes));
    if let Some(exe) = fields.inner(b"exe").filter(|v| !v.hex && !v.is_unknown()) {
        let name = match memchr::memrchr(b'/', exe.bytes) {
            Some(i) => &exe.bytes[i + 1..],
            None => exe.bytes,
        };
        if !name.is_empty() {
            e.program = Text(name);
        }
    }
    Verdict::Event(e)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// `res=` decides the outcome; a failure turns the action into `auth_failure`.
    SuccessOrFailure,
    /// `res=` decides the outcome.
    Plain,
    /// Always a failure whatever `res=` says (the record reports one).
    AlwaysFailure,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    User,
    Target,
}

fn set_text<'a>(e: &mut LoginEvent<'a>, v: Option<Value<'a>>, slot: Slot) {
    let Some(v) = v.filter(|v| !v.bytes.is_empty()) else {
        return;
    };
    match slot {
        Slot::User => {
            e.user = Some(Text(v.bytes));
            e.user_hex = v.hex;
        }
        Slot::Target => {
            e.target_user = Some(Text(v.bytes));
            e.target_user_hex = v.hex;
        }
    }
}

/// One field's value: quoted (the quotes stripped), hex-encoded, or bare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Value<'a> {
    bytes: &'a [u8],
    hex: bool,
}

impl Value<'_> {
    /// `?` (or empty): audit's "unknown".
    fn is_unknown(&self) -> bool {
        self.bytes.is_empty() || self.bytes == b"?" || self.bytes == b"(none)"
    }

    /// Equal to `plain` once decoded.
    fn matches(&self, plain: &[u8]) -> bool {
        if !self.hex {
            return self.bytes == plain;
        }
        let mut buf = [0u8; 32];
        self.bytes.len() == plain.len() * 2
            && Text(self.bytes).hex_decoded(&mut buf) == Some(Text(plain))
    }
}

/// Even-length, all hex digits: how `audit_encode_value` writes a value it cannot quote.
fn is_hex(b: &[u8]) -> bool {
    !b.is_empty() && b.len().is_multiple_of(2) && b.iter().all(u8::is_ascii_hexdigit)
}

/// The three parts of a user-space record: the fields before `msg='`, those inside it, and the
/// enriched ones after `\x1d`.
struct Fields<'a> {
    outer: &'a [u8],
    inner: &'a [u8],
    enriched: &'a [u8],
}

impl<'a> Fields<'a> {
    fn new(body: &'a [u8]) -> Self {
        let (body, enriched) = match memchr::memchr(0x1d, body) {
            Some(i) => (&body[..i], &body[i + 1..]),
            None => (body, &b""[..]),
        };
        match split_once(body, b"msg='") {
            Some((outer, inner)) => {
                let inner = match memchr::memrchr(b'\'', inner) {
                    Some(i) => &inner[..i],
                    None => inner,
                };
                Fields {
                    outer,
                    inner,
                    enriched,
                }
            }
            // Kernel-style records keep every field at the top level.
            None => Fields {
                outer: body,
                inner: body,
                enriched,
            },
        }
    }

    /// `op=`: unquoted and may hold spaces (`op=adding user id=1001`, shadow's wording), so it
    /// runs up to the next word that is a `key=value`.
    fn op(&self) -> Option<Value<'a>> {
        let rest = &self.inner[value_start(self.inner, b"op")?..];
        let mut end = 0;
        let mut pos = 0;
        for (n, word) in rest.split(|&c| c == b' ').enumerate() {
            if n > 0 && (word.is_empty() || memchr::memchr(b'=', word).is_some()) {
                break;
            }
            pos += word.len();
            end = pos;
            pos += 1;
        }
        let bytes = &rest[..end];
        (!bytes.is_empty() && bytes != b"?").then_some(Value { bytes, hex: false })
    }

    fn outer(&self, key: &[u8]) -> Option<Value<'a>> {
        find(self.outer, key)
    }

    fn inner(&self, key: &[u8]) -> Option<Value<'a>> {
        find(self.inner, key)
    }

    fn enriched(&self, key: &[u8]) -> Option<Value<'a>> {
        find(self.enriched, key)
    }
}

/// The value of `key=` in a space-separated audit field list: `"quoted"` (up to the closing
/// quote), or a bare word (hex when it is all hex digits of even length and `hex_ok`). The key
/// must start the list or follow a space.
fn find<'a>(s: &'a [u8], key: &[u8]) -> Option<Value<'a>> {
    let v = &s[value_start(s, key)?..];
    if let Some(q) = v.strip_prefix(b"\"") {
        let end = memchr::memchr(b'"', q).unwrap_or(q.len());
        return Some(Value {
            bytes: &q[..end],
            hex: false,
        });
    }
    let end = memchr::memchr(b' ', v).unwrap_or(v.len());
    // Old (audit 1.x) records list `(hostname=h, addr=a, terminal=t res=r)`.
    let bytes = v[..end].strip_suffix(b",").unwrap_or(&v[..end]);
    let bytes = bytes.strip_suffix(b")").unwrap_or(bytes);
    // Only fields audit encodes are read as hex (names and paths), and only when not quoted:
    // `acct=6261642075736572` is `bad user`.
    let hex = matches!(key, b"acct" | b"exe" | b"hostname" | b"terminal") && is_hex(bytes);
    Some(Value { bytes, hex })
}

/// Where the value of `key=` starts; the key must start the list or follow a space (or `(`).
fn value_start(s: &[u8], key: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = memchr::memmem::find(&s[from..], key) {
        let at = from + i;
        let after = at + key.len();
        // Audit 1.x lists some fields in parentheses: `(hostname=h, addr=a, ...)`.
        if (at == 0 || matches!(s[at - 1], b' ' | b'(')) && s.get(after) == Some(&b'=') {
            return Some(after + 1);
        }
        from = after;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::fields::v4;
    use crate::parse::test_support::event;

    fn ev(kind: &str, body: &str) -> LoginEvent<'static> {
        let kind: &'static str = Box::leak(kind.to_owned().into_boxed_str());
        let body: &'static str = Box::leak(body.to_owned().into_boxed_str());
        event(record(kind.as_bytes(), body.as_bytes()), body)
    }

    #[test]
    fn raw_prefix() {
        let r = split_raw(b"node=h1 type=USER_LOGIN msg=audit(1700000000.5:42): pid=1 x").unwrap();
        assert_eq!(r.node, Some(Text(b"h1")));
        assert_eq!((r.secs, r.millis, r.serial), (1_700_000_000, 500, 42));
        assert_eq!(r.kind, b"USER_LOGIN");
        assert_eq!(r.body, b"pid=1 x");
        assert!(split_raw(b"type=USER_LOGIN msg=audit(x.1:2): a").is_none());
        assert!(split_raw(b"type=USER_LOGIN msg=audit(1.1:2").is_none());
    }

    #[test]
    fn user_auth_success_and_failure() {
        let e = ev(
            "USER_AUTH",
            "pid=9 uid=0 auid=4294967295 ses=4294967295 msg='op=PAM:authentication grantors=pam_unix acct=\"alice\" exe=\"/usr/sbin/sshd\" hostname=192.0.2.5 addr=192.0.2.5 terminal=ssh res=success'",
        );
        assert_eq!(
            (e.action, e.outcome),
            (Action::AuthSuccess, Outcome::Success)
        );
        assert_eq!(e.user, Some(Text(b"alice")));
        assert_eq!(e.source, Some(Source::Ip(v4(192, 0, 2, 5))));
        assert_eq!(e.program, "sshd");
        assert_eq!(e.pid, Some(9));
        assert_eq!(e.tty, None);
        let e = ev(
            "1100",
            "pid=9 uid=0 msg='op=PAM:authentication grantors=? acct=\"alice\" exe=\"/usr/sbin/sshd\" hostname=? addr=192.0.2.5 terminal=ssh res=failed'",
        );
        assert_eq!(
            (e.action, e.outcome),
            (Action::AuthFailure, Outcome::Failure)
        );
    }

    #[test]
    fn hex_acct_and_invalid_user() {
        let e = ev(
            "USER_LOGIN",
            "pid=9 uid=0 msg='op=login acct=28696E76616C6964207573657229 exe=\"/usr/sbin/sshd\" hostname=? addr=192.0.2.5 terminal=ssh res=failed'",
        );
        assert_eq!(
            (e.action, e.outcome),
            (Action::InvalidUser, Outcome::Failure)
        );
        assert_eq!(e.user, None);
        let e = ev(
            "USER_AUTH",
            "pid=9 uid=0 msg='op=PAM:authentication acct=6261642075736572 exe=\"/usr/sbin/sshd\" hostname=? addr=? terminal=ssh res=failed'",
        );
        assert_eq!(e.user, Some(Text(b"6261642075736572")));
        assert!(e.user_hex);
        let mut buf = [0u8; 16];
        assert_eq!(
            e.user.map(|u| u.decoded_if(true, &mut buf)),
            Some(Text(b"bad user"))
        );
    }

    #[test]
    fn account_change_names_the_target_and_the_actor() {
        let e = ev(
            "ADD_USER",
            "pid=9 uid=0 auid=1000 ses=3 msg='op=add-user acct=\"bob\" exe=\"/usr/sbin/useradd\" hostname=h addr=? terminal=pts/0 res=success'\x1dUID=\"root\" AUID=\"alice\"",
        );
        assert_eq!(
            (e.action, e.outcome),
            (Action::AccountChange, Outcome::Success)
        );
        assert_eq!(e.target_user, Some(Text(b"bob")));
        assert_eq!(e.user, Some(Text(b"alice")));
        assert_eq!(e.reason, Some(Text(b"add-user")));
        assert_eq!(e.tty, Some(Text(b"pts/0")));
    }

    #[test]
    fn journald_entries_as_the_journald_source_hands_them_over() {
        // `SYSLOG_IDENTIFIER=audit`, `_PID`, `MESSAGE=<TYPE> <fields>` (journald-audit.c).
        let msg = b"USER_LOGIN pid=77 uid=0 auid=1000 ses=3 msg='op=login id=1000 exe=\"/usr/sbin/sshd\" hostname=192.0.2.9 addr=192.0.2.9 terminal=/dev/pts/1 res=success'";
        let crate::parse::Parsed::Event(e) =
            crate::parse::parse_message(Text(b"audit"), Some(77), msg)
        else {
            panic!("not an event");
        };
        assert_eq!(
            (e.action, e.outcome),
            (Action::AuthSuccess, Outcome::Success)
        );
        assert_eq!(e.program, "sshd");
        assert_eq!(e.pid, Some(77));
        assert_eq!(e.uid, Some(1000));
        assert_eq!(e.tty, Some(Text(b"pts/1")));
        let noise = crate::parse::parse_message(Text(b"audit"), Some(1), b"SYSCALL arch=c000003e");
        assert_eq!(noise.kind(), "noise");
    }

    #[test]
    fn kernel_records_and_unknown_types_are_noise() {
        assert_eq!(
            record(b"SYSCALL", b"arch=c000003e syscall=44"),
            Verdict::Noise
        );
        assert_eq!(record(b"UNKNOWN[1400]", b"x"), Verdict::Noise);
        assert_eq!(type_name(b"UNKNOWN[1112]"), b"USER_LOGIN");
        assert_eq!(type_name(b"AUDIT1105"), b"USER_START");
    }
}
