//! sudo's own log lines (sudoers' `logging.c`/`eventlog.c`, sudo 1.8 and 1.9, the default
//! `log_format=sudo`):
//!
//! ```text
//!    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id
//!    alice : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id
//!      bob : user NOT in sudoers ; PWD=/home/bob ; USER=root ; COMMAND=/usr/bin/id
//! ```
//!
//! The invoking user comes first, right-aligned, before ` : `. A refusal puts its reason before
//! the keys; an allowed command has none. Keys come in a fixed order (`HOST=`, `TTY=`, `CHROOT=`,
//! `PWD=`, `USER=`, `GROUP=`, `TSID=`, `ENV=`, `COMMAND=`); `TTY=` is absent without a
//! terminal and `COMMAND=` is always last and may itself hold ` ; `, so the command is the rest
//! of the line.
//!
//! Two fields hold text the invoker chooses: `PWD=` (any directory name) and `COMMAND=` (any
//! argument). The format cannot tell a planted ` ; USER=x ; COMMAND=y` from the real keys, so:
//! the command is everything after the *first* `COMMAND=` key (the real command is always a
//! suffix of it, never lost), and the target is given only when exactly one ` USER=` key appears
//! in the line (otherwise it is unknown rather than possibly wrong).
//!
//! PAM's lines for the sudo service (`pam_unix(sudo:auth): authentication failure; ...`) are
//! parsed by the PAM module.

use super::Verdict;
use super::fields::{parse_u32, split_once, word};
use crate::event::{Action, LoginEvent, Outcome};
use crate::text::Text;

pub(crate) fn parse(msg: &[u8]) -> Verdict<'_> {
    let msg = msg.trim_ascii();
    if is_noise(msg) {
        return Verdict::Noise;
    }
    let Some((who, rest)) = split_once(msg, b" : ") else {
        return Verdict::Unrecognised;
    };
    let who = who.trim_ascii();
    if who.is_empty() {
        return Verdict::Unrecognised;
    }
    if is_noise(rest) {
        return Verdict::Noise;
    }
    // `rest` is `[reason ; ]KEY=v ; KEY=v ; ... COMMAND=cmd`. Split off the command first.
    let (keys, command) = match find_key(rest, b"COMMAND=") {
        Some(i) => (&rest[..i], Some(&rest[i + 8..])),
        None => (rest, None),
    };
    let mut e = LoginEvent::new(Action::Sudo, Outcome::Success);
    e.user = Some(Text(who));
    e.command = command.map(<[u8]>::trim_ascii).and_then(non_empty);
    let mut first = true;
    let mut seen_pwd = false;
    for item in keys.split_str(b" ; ") {
        let item = item.trim_ascii();
        if item.is_empty() {
            continue;
        }
        if first && !is_key(item) {
            // The reason for a refusal.
            e.outcome = Outcome::Failure;
            e.reason = Some(Text(item));
            let (n, after) = word(item);
            if after.starts_with(b"incorrect password attempt") {
                e.count = parse_u32(n).unwrap_or(1).max(1);
            }
            first = false;
            continue;
        }
        first = false;
        // `TTY=` comes before `PWD=`; one after it could only be text inside the directory name.
        if item.starts_with(b"PWD=") {
            seen_pwd = true;
        } else if let Some(t) = item.strip_prefix(b"TTY=")
            && !seen_pwd
            && e.tty.is_none()
        {
            e.tty = match t {
                b"unknown" | b"" => None,
                t => Some(Text(t)),
            };
        }
    }
    // The target: the value of the one ` USER=` key in the whole line.
    let mut users = memchr::memmem::find_iter(rest, b" USER=").chain(
        // `USER=` may also lead `rest` (no reason, no TTY, no PWD: unusual but harmless).
        rest.starts_with(b"USER=").then_some(usize::MAX),
    );
    let first_user = users.next();
    if users.next().is_none()
        && let Some(at) = first_user
    {
        let value = if at == usize::MAX {
            &rest[5..]
        } else {
            &rest[at + 6..]
        };
        let end = memchr::memchr(b' ', value).unwrap_or(value.len());
        e.target_user = non_empty(&value[..end]);
    }
    e.into()
}

/// A `KEY=` item: upper-case ASCII letters then `=`.
fn is_key(item: &[u8]) -> bool {
    match memchr::memchr(b'=', item) {
        Some(i) if i > 0 => item[..i].iter().all(u8::is_ascii_uppercase),
        _ => false,
    }
}

/// The offset of `key` where it starts `s` or follows ` ; `.
fn find_key(s: &[u8], key: &[u8]) -> Option<usize> {
    if s.starts_with(key) {
        return Some(0);
    }
    let mut pattern = [0u8; 16];
    let n = 3 + key.len();
    let pattern = pattern.get_mut(..n)?;
    pattern[..3].copy_from_slice(b" ; ");
    pattern[3..].copy_from_slice(key);
    memchr::memmem::find(s, pattern).map(|i| i + 3)
}

fn non_empty(b: &[u8]) -> Option<Text<'_>> {
    if b.is_empty() { None } else { Some(Text(b)) }
}

/// sudo lines that say nothing about who ran what.
fn is_noise(s: &[u8]) -> bool {
    const PREFIXES: &[&[u8]] = &[
        b"unable to resolve host",
        b"(command continued)",
        b"problem with defaults entries",
        b"unable to open audit system",
        b"unable to send audit message",
        b"setrlimit(",
        b"unable to dlopen",
    ];
    PREFIXES.iter().any(|p| s.starts_with(p))
}

/// `split` on a multi-byte separator, without allocation.
trait SplitStr {
    fn split_str<'a>(&'a self, sep: &'static [u8]) -> SplitStrIter<'a>;
}

impl SplitStr for [u8] {
    fn split_str<'a>(&'a self, sep: &'static [u8]) -> SplitStrIter<'a> {
        SplitStrIter {
            rest: Some(self),
            sep,
        }
    }
}

struct SplitStrIter<'a> {
    rest: Option<&'a [u8]>,
    sep: &'static [u8],
}

impl<'a> Iterator for SplitStrIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        match split_once(rest, self.sep) {
            Some((item, after)) => {
                self.rest = Some(after);
                Some(item)
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::Parsed;
    use crate::parse::test_support::{event, line};

    fn ev(msg: &str) -> LoginEvent<'_> {
        event(parse(msg.as_bytes()), msg)
    }

    #[test]
    fn allowed_with_tty() {
        let e = ev("   alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id");
        assert_eq!((e.action, e.outcome), (Action::Sudo, Outcome::Success));
        assert_eq!(e.user, Some(Text(b"alice")));
        assert_eq!(e.target_user, Some(Text(b"root")));
        assert_eq!(e.tty, Some(Text(b"pts/0")));
        assert_eq!(e.command, Some(Text(b"/usr/bin/id")));
        assert_eq!(e.reason, None);
        assert_eq!(e.count, 1);
    }

    #[test]
    fn allowed_without_tty_and_unknown_tty() {
        let e = ev("alice : PWD=/ ; USER=root ; COMMAND=/bin/true");
        assert_eq!(e.outcome, Outcome::Success);
        assert_eq!(e.tty, None);
        assert_eq!(e.target_user, Some(Text(b"root")));
        assert_eq!(e.command, Some(Text(b"/bin/true")));
        let e = ev("alice : TTY=unknown ; PWD=/ ; USER=root ; COMMAND=/bin/true");
        assert_eq!(e.tty, None);
    }

    #[test]
    fn command_keeps_semicolons_and_spaces() {
        let e = ev(
            " atalice : TTY=pts/0 ; PWD=/tmp ; USER=root ; COMMAND=/usr/bin/echo hello 'two  spaces' ; x",
        );
        assert_eq!(
            e.command,
            Some(Text(b"/usr/bin/echo hello 'two  spaces' ; x"))
        );
        assert_eq!(e.target_user, Some(Text(b"root")));
    }

    #[test]
    fn group_env_tsid() {
        let e = ev(
            "alice : TTY=pts/1 ; PWD=/srv ; USER=bob ; GROUP=devs ; TSID=000001 ; ENV=A=1 B=2 ; COMMAND=/usr/bin/make install",
        );
        assert_eq!(e.target_user, Some(Text(b"bob")));
        assert_eq!(e.tty, Some(Text(b"pts/1")));
        assert_eq!(e.command, Some(Text(b"/usr/bin/make install")));
        let e = ev("alice : HOST=web1 ; TTY=pts/1 ; PWD=/srv ; USER=root ; COMMAND=/bin/ls");
        assert_eq!(e.tty, Some(Text(b"pts/1")));
    }

    #[test]
    fn incorrect_password_attempts() {
        let e = ev(
            " atalice : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/home/atalice ; USER=root ; COMMAND=/usr/bin/id",
        );
        assert_eq!((e.action, e.outcome), (Action::Sudo, Outcome::Failure));
        assert_eq!(e.count, 3);
        assert_eq!(e.reason, Some(Text(b"3 incorrect password attempts")));
        assert_eq!(e.user, Some(Text(b"atalice")));
        assert_eq!(e.target_user, Some(Text(b"root")));
        assert_eq!(e.tty, Some(Text(b"pts/0")));
        let e = ev("alice : 1 incorrect password attempt ; PWD=/ ; USER=root ; COMMAND=/bin/id");
        assert_eq!(e.count, 1);
        assert_eq!(e.tty, None);
    }

    #[test]
    fn refusals() {
        for (msg, reason) in [
            (
                "   atbob : user NOT in sudoers ; TTY=pts/0 ; PWD=/home/atbob ; USER=root ; COMMAND=/usr/bin/id",
                "user NOT in sudoers",
            ),
            (
                "bob : user NOT authorized on host ; TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/sh",
                "user NOT authorized on host",
            ),
            (
                "bob : command not allowed ; TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/sh",
                "command not allowed",
            ),
            (
                "bob : a password is required ; PWD=/ ; USER=root ; COMMAND=/bin/sh",
                "a password is required",
            ),
        ] {
            let e = ev(msg);
            assert_eq!(
                (e.action, e.outcome),
                (Action::Sudo, Outcome::Failure),
                "{msg}"
            );
            assert_eq!(e.reason, Some(Text(reason.as_bytes())));
            assert_eq!(e.target_user, Some(Text(b"root")));
            assert!(e.command.is_some());
            assert_eq!(e.count, 1);
        }
    }

    #[test]
    fn unknown_runas_user_without_command() {
        let e = ev(
            " atalice : unknown user nosuchuser ; TTY=pts/0 ; PWD=/home/atalice ; USER=nosuchuser ; ",
        );
        assert_eq!(e.outcome, Outcome::Failure);
        assert_eq!(e.reason, Some(Text(b"unknown user nosuchuser")));
        assert_eq!(e.target_user, Some(Text(b"nosuchuser")));
        assert_eq!(e.command, None);
    }

    #[test]
    fn noise_and_garbage() {
        assert_eq!(
            parse(b"    alice : unable to resolve host web1: Name or service not known"),
            Verdict::Noise
        );
        assert_eq!(
            parse(b"unable to resolve host web1: Temporary failure"),
            Verdict::Noise
        );
        assert_eq!(
            parse(b"alice : (command continued) more args"),
            Verdict::Noise
        );
        assert_eq!(parse(b"something else entirely"), Verdict::Unrecognised);
        assert_eq!(parse(b" : TTY=pts/0"), Verdict::Unrecognised);
        assert_eq!(parse(b""), Verdict::Unrecognised);
    }

    #[test]
    fn hostile_pwd_and_arguments() {
        // A directory name planting keys: the real command is still the end of `command`, and
        // the target is unknown rather than the planted one.
        let e = ev(
            "mallory : TTY=pts/0 ; PWD=/tmp/x ; USER=nobody ; COMMAND=/bin/true ; y ; USER=root ; COMMAND=/bin/sh",
        );
        assert_eq!(e.user, Some(Text(b"mallory")));
        assert_eq!(e.tty, Some(Text(b"pts/0")));
        assert_eq!(e.target_user, None);
        assert!(e.command.unwrap().as_bytes().ends_with(b"COMMAND=/bin/sh"));
        assert_eq!(e.outcome, Outcome::Success);
        // Arguments planting keys.
        let e = ev("mallory : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/echo ; USER=nobody");
        assert_eq!(e.target_user, None);
        assert_eq!(e.command, Some(Text(b"/bin/echo ; USER=nobody")));
        // A PWD planting a TTY.
        let e = ev("mallory : PWD=/x ; TTY=pts/9 ; USER=root ; COMMAND=/bin/id");
        assert_eq!(e.tty, None);
        // A user name with ` : ` is cut at the first one (sudo writes the real name first).
        let e = ev("a : b : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/id");
        assert_eq!(e.user, Some(Text(b"a")));
        assert_eq!(e.outcome, Outcome::Failure);
        for i in 0..60 {
            let m = b"alice : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/x";
            let _ = parse(&m[..i.min(m.len())]);
        }
    }

    #[test]
    fn through_dispatch() {
        let Parsed::Event(e) = line(
            "2026-11-28T07:58:02.783020+00:00 testhost sudo:  atalice : TTY=pts/0 ; PWD=/home/atalice ; USER=root ; COMMAND=/usr/bin/id",
        ) else {
            panic!()
        };
        assert_eq!(e.program, Text(b"sudo"));
        assert_eq!(e.pid, None);
        assert_eq!(e.user, Some(Text(b"atalice")));
        assert_eq!(e.command, Some(Text(b"/usr/bin/id")));
        let Parsed::Event(e) = line(
            "Nov 28 07:58:19 testhost sudo:  atalice : 3 incorrect password attempts ; PWD=/home/atalice ; USER=root ; COMMAND=/usr/bin/id",
        ) else {
            panic!()
        };
        assert_eq!(e.count, 3);
        assert!(matches!(
            line(
                "Nov 28 07:58:19 testhost sudo: unable to resolve host testhost: Name or service not known"
            ),
            Parsed::Noise { .. }
        ));
    }
}
