//! Account and group changes by shadow-utils (`useradd`, `userdel`, `usermod`, `groupadd`,
//! `groupdel`, `groupmod`, `gpasswd`, `passwd`, `chage`, `chfn`, `chsh`, `newusers`), as Debian,
//! Ubuntu, Fedora and RHEL ship them. The messages are shadow's `SYSLOG((...))` calls:
//!
//! ```text
//! new user: name=bob, UID=1001, GID=1001, home=/home/bob, shell=/bin/bash, from=/dev/pts/0
//! add 'bob' to group 'sudo'                  delete user 'bob'
//! change user 'bob' shell from '/bin/sh' to '/bin/bash'
//! user bob added by root to group devs       members of group devs set by root to a,b
//! ```
//!
//! Every recognised line is an `AccountChange`. `target_user` is the user account changed;
//! lines that change only a group (`new group: name=devs`, `group 'devs' removed`) have no
//! target. `user` (the actor) is set only where the line names one (gpasswd's `by root`,
//! passwd's `changed by 'root'`): useradd's `from=` is the terminal it ran on, reported as `tty`.
//! `reason` is the message itself, in the program's words (it names the group, the shell, the old
//! and new values), except for `new user`, whose details are broken out (`uid`, `tty`) and whose
//! reason is `new user`. PAM's `password changed for bob` comes through the PAM parser.

use super::Verdict;
use super::fields::{parse_u32, rsplit_once, split_once, user};
use crate::event::{Action, LoginEvent, Outcome};
use crate::text::Text;

pub(crate) fn is_account_program(name: &[u8]) -> bool {
    matches!(
        name,
        b"useradd"
            | b"userdel"
            | b"usermod"
            | b"groupadd"
            | b"groupdel"
            | b"groupmod"
            | b"gpasswd"
            | b"passwd"
            | b"chpasswd"
            | b"chgpasswd"
            | b"chage"
            | b"chfn"
            | b"chsh"
            | b"newusers"
            | b"adduser"
            | b"deluser"
    )
}

pub(crate) fn parse<'a>(_name: &'a [u8], msg: &'a [u8]) -> Verdict<'a> {
    let msg = msg.trim_ascii();
    match change(msg) {
        Some(mut e) => {
            if e.reason.is_none() {
                e.reason = Some(Text(msg));
            }
            e.into()
        }
        None => Verdict::Unrecognised,
    }
}

fn change(msg: &[u8]) -> Option<LoginEvent<'_>> {
    let mut e = LoginEvent::new(Action::AccountChange, Outcome::Success);
    if let Some(rest) = msg.strip_prefix(b"new user: ") {
        e.target_user = user(comma_kv(rest, b"name=")?);
        e.uid = comma_kv(rest, b"UID=").and_then(parse_u32);
        e.tty = comma_kv(rest, b"from=").and_then(tty);
        e.reason = Some(Text(b"new user"));
    } else if msg.starts_with(b"new group: ")
        || msg.starts_with(b"group added to ")
        || msg.starts_with(b"group changed in ")
        || msg.starts_with(b"removed group ")
        || msg.starts_with(b"removed shadow group ")
    {
        // Group-only changes.
    } else if let Some(rest) = msg.strip_prefix(b"group ") {
        // `group 'devs' removed[ from /etc/group]`, `group 'devs' changed...`.
        quoted(rest)?;
    } else if let Some(rest) = msg
        .strip_prefix(b"add ")
        .or_else(|| msg.strip_prefix(b"delete user "))
        .or_else(|| msg.strip_prefix(b"delete "))
        .or_else(|| msg.strip_prefix(b"lock user "))
        .or_else(|| msg.strip_prefix(b"unlock user "))
        .or_else(|| msg.strip_prefix(b"changed user "))
        .or_else(|| msg.strip_prefix(b"change user name "))
        .or_else(|| msg.strip_prefix(b"change user "))
        .or_else(|| msg.strip_prefix(b"change admin "))
        .or_else(|| msg.strip_prefix(b"change ").filter(|r| r.starts_with(b"'")))
    {
        // The first quoted name is the user account changed (the old name for a rename).
        let (name, _) = quoted(rest)?;
        e.target_user = user(name);
    } else if let Some(rest) = msg.strip_prefix(b"failed adding user ") {
        let (name, _) = quoted(rest)?;
        e.target_user = user(name);
        e.outcome = Outcome::Failure;
    } else if let Some(rest) = msg.strip_prefix(b"user ") {
        // gpasswd: `user bob added by root to group devs`, `user bob removed by root from group
        // devs`.
        let (who, actor) = if let Some((w, r)) = split_once(rest, b" added by ") {
            (w, rsplit_once(r, b" to group ")?.0)
        } else if let Some((w, r)) = split_once(rest, b" removed by ") {
            (w, rsplit_once(r, b" from group ")?.0)
        } else {
            return None;
        };
        e.target_user = user(who);
        e.user = user(actor);
    } else if msg.starts_with(b"members of group ") || msg.starts_with(b"administrators of group ")
    {
        // gpasswd -M / -A: `members of group devs set by root to a,b`.
        let (_, r) = split_once(msg, b" set by ")?;
        let (actor, _) = split_once(r, b" to ").unwrap_or((r, b""));
        e.user = user(actor);
    } else if msg.starts_with(b"password of group ") {
        // gpasswd: `password of group devs changed by root` / `removed by root`.
        if let Some((_, actor)) = rsplit_once(msg, b" by ") {
            e.user = user(actor);
        }
    } else if let Some(rest) = msg
        .strip_prefix(b"password for ")
        .or_else(|| msg.strip_prefix(b"Password for "))
    {
        // shadow's passwd without PAM: `password for 'bob' changed by 'root'`. BusyBox passwd:
        // `Password for bob changed by root` (older: `password for bob changed by root`, `password
        // for 'bob' changed by user 'root'`); BusyBox chpasswd: `Password for 'bob' changed`.
        if let Some((name, after)) = quoted(rest) {
            e.target_user = user(name);
            if let Some(by) = after.trim_ascii_start().strip_prefix(b"changed by ") {
                let by = by.strip_prefix(b"user ").unwrap_or(by);
                e.user = user(quoted(by).map_or(by, |(a, _)| a));
            }
        } else {
            let (name, by) = split_once(rest, b" changed by ")?;
            e.target_user = user(name);
            e.user = user(by);
        }
    } else if let Some(rest) = msg.strip_prefix(b"changed password expiry for ") {
        e.target_user = user(rest);
    } else {
        return None;
    }
    Some(e)
}

/// `'name' rest` or the old `` `name' rest `` -> (`name`, `rest`).
fn quoted(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let s = s.strip_prefix(b"'").or_else(|| s.strip_prefix(b"`"))?;
    let end = memchr::memchr(b'\'', s)?;
    Some((&s[..end], &s[end + 1..]))
}

/// The value of `key` in useradd's `k1=v1, k2=v2` list (up to the next `, ` or the end). The key
/// must start the list or follow `, `.
fn comma_kv<'a>(s: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let value = if s.starts_with(key) {
        &s[key.len()..]
    } else {
        let mut pat = [0u8; 16];
        let n = 2 + key.len();
        let pat = pat.get_mut(..n)?;
        pat[..2].copy_from_slice(b", ");
        pat[2..].copy_from_slice(key);
        let i = memchr::memmem::find(s, pat)?;
        &s[i + n..]
    };
    Some(match split_once(value, b", ") {
        Some((v, _)) => v,
        None => value,
    })
}

/// useradd's `from=`: a terminal, or `none`.
fn tty(b: &[u8]) -> Option<Text<'_>> {
    let b = b.strip_prefix(b"/dev/").unwrap_or(b);
    match b {
        b"" | b"none" | b"???" => None,
        b => Some(Text(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::test_support::{event, test_context};
    use crate::parse::{Parsed, parse_line};

    fn ev<'a>(program: &'a str, msg: &'a str) -> LoginEvent<'a> {
        event(parse(program.as_bytes(), msg.as_bytes()), msg)
    }

    fn t(s: &str) -> Option<Text<'_>> {
        Some(Text(s.as_bytes()))
    }

    /// Checks an account change: its target, actor, and that the reason is the message.
    fn check(program: &str, msg: &str, target: Option<&str>, actor: Option<&str>) {
        let e = ev(program, msg);
        assert_eq!(
            (e.action, e.outcome),
            (Action::AccountChange, Outcome::Success),
            "{msg}"
        );
        assert_eq!(e.target_user, target.map(|s| Text(s.as_bytes())), "{msg}");
        assert_eq!(e.user, actor.map(|s| Text(s.as_bytes())), "{msg}");
        assert_eq!(e.reason, t(msg), "{msg}");
    }

    #[test]
    fn useradd_new_user() {
        let e = ev(
            "useradd",
            "new user: name=bob, UID=1001, GID=1001, home=/home/bob, shell=/bin/bash, from=/dev/pts/0",
        );
        assert_eq!(
            (e.action, e.outcome),
            (Action::AccountChange, Outcome::Success)
        );
        assert_eq!(e.target_user, t("bob"));
        assert_eq!(e.uid, Some(1001));
        assert_eq!(e.tty, t("pts/0"));
        assert_eq!(e.user, None);
        assert_eq!(e.reason, t("new user"));
        let e = ev(
            "useradd",
            "new user: name=atalice, UID=1001, GID=1001, home=/home/atalice, shell=/bin/bash, from=none",
        );
        assert_eq!(e.tty, None);
        // Older shadow without `from=`.
        let e = ev(
            "useradd",
            "new user: name=carol, UID=1002, GID=100, home=/home/carol, shell=/bin/sh",
        );
        assert_eq!(e.target_user, t("carol"));
        assert_eq!(e.tty, None);
        assert_eq!(parse(b"useradd", b"new user: UID=5"), Verdict::Unrecognised);
    }

    #[test]
    fn useradd_groups() {
        check("useradd", "new group: name=bob, GID=1001", None, None);
        check("useradd", "add 'bob' to group 'sudo'", Some("bob"), None);
        check(
            "useradd",
            "add 'bob' to shadow group 'sudo'",
            Some("bob"),
            None,
        );
        check("useradd", "add `bob' to group `sudo'", Some("bob"), None);
        let e = ev("useradd", "failed adding user 'bob', data deleted");
        assert_eq!(e.outcome, Outcome::Failure);
        assert_eq!(e.target_user, t("bob"));
    }

    #[test]
    fn userdel() {
        check("userdel", "delete user 'bob'", Some("bob"), None);
        check("userdel", "removed group 'bob' owned by 'bob'", None, None);
        check(
            "userdel",
            "removed shadow group 'bob' owned by 'bob'",
            None,
            None,
        );
        check(
            "userdel",
            "delete 'bob' from group 'sudo'",
            Some("bob"),
            None,
        );
        check(
            "userdel",
            "delete 'atdave2' from shadow group 'atgrp'",
            Some("atdave2"),
            None,
        );
    }

    #[test]
    fn usermod() {
        check(
            "usermod",
            "change user 'bob' shell from '/bin/sh' to '/bin/bash'",
            Some("bob"),
            None,
        );
        check("usermod", "add 'bob' to group 'adm'", Some("bob"), None);
        check("usermod", "lock user 'bob' password", Some("bob"), None);
        check("usermod", "unlock user 'bob' password", Some("bob"), None);
        check(
            "usermod",
            "change user name 'bob' to 'rob'",
            Some("bob"),
            None,
        );
        check(
            "usermod",
            "change user 'bob' home from '/home/bob' to '/srv/bob'",
            Some("bob"),
            None,
        );
        check(
            "usermod",
            "change user 'bob' expiration from 'never' to '2027-01-01'",
            Some("bob"),
            None,
        );
        check(
            "usermod",
            "change 'atdave' to 'atdave2' in group 'atgrp'",
            Some("atdave"),
            None,
        );
        check(
            "usermod",
            "change admin 'atdave' to 'atdave2' in shadow group 'atgrp'",
            Some("atdave"),
            None,
        );
    }

    #[test]
    fn groups() {
        check(
            "groupadd",
            "group added to /etc/group: name=devs, GID=1002",
            None,
            None,
        );
        check(
            "groupadd",
            "group added to /etc/gshadow: name=devs",
            None,
            None,
        );
        check("groupadd", "new group: name=devs, GID=1002", None, None);
        check("groupdel", "group 'devs' removed", None, None);
        check(
            "groupdel",
            "group 'devs' removed from /etc/group",
            None,
            None,
        );
        check(
            "groupmod",
            "group changed in /etc/group (group atgrp2/995, new name: atgrp3)",
            None,
            None,
        );
        assert_eq!(
            parse(b"groupdel", b"group without quotes"),
            Verdict::Unrecognised
        );
    }

    #[test]
    fn gpasswd() {
        check(
            "gpasswd",
            "user bob added by root to group devs",
            Some("bob"),
            Some("root"),
        );
        check(
            "gpasswd",
            "user bob removed by root from group devs",
            Some("bob"),
            Some("root"),
        );
        check(
            "gpasswd",
            "members of group devs set by root to a,b",
            None,
            Some("root"),
        );
        check(
            "gpasswd",
            "administrators of group atgrp set by root to atdave",
            None,
            Some("root"),
        );
        check(
            "gpasswd",
            "password of group devs changed by root",
            None,
            Some("root"),
        );
        assert_eq!(
            parse(b"gpasswd", b"user bob did something"),
            Verdict::Unrecognised
        );
    }

    #[test]
    fn passwd_chage_chfn_chsh() {
        check(
            "passwd",
            "password for 'bob' changed by 'root'",
            Some("bob"),
            Some("root"),
        );
        check(
            "chage",
            "changed password expiry for bob",
            Some("bob"),
            None,
        );
        check("chfn", "changed user 'bob' information", Some("bob"), None);
        check(
            "chsh",
            "changed user 'bob' shell to '/bin/zsh'",
            Some("bob"),
            None,
        );
        assert_eq!(parse(b"passwd", b"something else"), Verdict::Unrecognised);
        assert_eq!(parse(b"usermod", b"add bob"), Verdict::Unrecognised);
        assert_eq!(parse(b"usermod", b"add 'bob"), Verdict::Unrecognised);
        assert_eq!(parse(b"usermod", b""), Verdict::Unrecognised);
    }

    /// BusyBox (Alpine, embedded): `loginutils/passwd.c` logs `bb_info_msg("Password for %s
    /// changed by %s")` to syslog too (`LOGMODE_BOTH`; older releases `bb_error_msg("password
    /// for %s changed by %s")`, older still `syslog("password for '%s' changed by user '%s'")`),
    /// `loginutils/chpasswd.c` `bb_info_msg("Password for '%s' changed")`.
    #[test]
    fn busybox_passwd_and_chpasswd() {
        check(
            "passwd",
            "Password for bob changed by root",
            Some("bob"),
            Some("root"),
        );
        check(
            "passwd",
            "password for bob changed by root",
            Some("bob"),
            Some("root"),
        );
        check(
            "passwd",
            "password for 'bob' changed by user 'root'",
            Some("bob"),
            Some("root"),
        );
        check("chpasswd", "Password for 'bob' changed", Some("bob"), None);
        assert_eq!(
            parse(b"passwd", b"password for bob is already locked"),
            Verdict::Unrecognised
        );
    }

    #[test]
    fn through_dispatch() {
        let ctx = test_context();
        let Parsed::Event(e) = parse_line(
            b"2026-11-28T07:58:02.126200+00:00 testhost usermod[4515]: add 'atalice' to group 'sudo'",
            &ctx,
        ) else {
            panic!()
        };
        assert_eq!(e.program, Text(b"usermod"));
        assert_eq!(e.target_user, t("atalice"));
        assert_eq!(e.reason, t("add 'atalice' to group 'sudo'"));
        let Parsed::Event(e) = parse_line(
            b"Nov 28 07:58:02 testhost chpasswd[4523]: pam_unix(chpasswd:chauthtok): password changed for atalice",
            &ctx,
        ) else {
            panic!()
        };
        assert_eq!(e.action, Action::AccountChange);
        assert_eq!(e.target_user, t("atalice"));
        assert!(matches!(
            parse_line(b"Nov 28 07:58:02 testhost useradd[1]: weird new line", &ctx),
            Parsed::Unrecognised { .. }
        ));
    }
}
