//! doas's own log lines (OpenBSD's doas and the OpenDoas port that Alpine, Void and many small
//! ARM systems ship instead of sudo). doas logs to `authpriv`:
//!
//! ```text
//! alice ran command apk upgrade as root from /home/alice
//! command not permitted for alice: rm -rf /   (early OpenDoas: `failed command for`)
//! failed auth for alice
//! tty required for alice
//! ```
//!
//! A command runs as `sudo` does, so the events are `sudo` events (`process.name` tells them
//! apart): success for `ran command`, failure with the reason otherwise.
//!
//! The command line and the working directory are text the invoker chooses, and the format does
//! not quote them: a command `x as root from /` makes ` as ` and ` from ` ambiguous. The command
//! is everything between `ran command ` and the *last* ` as <name> from ` (the real one is never
//! lost), and the target is given only when exactly one ` as <name> from ` appears in the line
//! (otherwise it is unknown rather than possibly wrong). PAM's lines for the doas service are
//! parsed by the PAM module.

use super::Verdict;
use super::fields::{split_once, word};
use crate::event::{Action, LoginEvent, Outcome};
use crate::text::Text;

pub(crate) fn parse(msg: &[u8]) -> Verdict<'_> {
    let msg = msg.trim_ascii();
    // The refusals first: their command may itself hold ` ran command `.
    for (prefix, reason) in [
        (&b"failed command for "[..], &b"command not permitted"[..]),
        (b"command not permitted for ", b"command not permitted"),
    ] {
        if let Some(rest) = msg.strip_prefix(prefix) {
            let Some((user, command)) = split_once(rest, b": ") else {
                return Verdict::Unrecognised;
            };
            return refused(user, Some(command), reason);
        }
    }
    for (prefix, reason) in [
        (&b"failed auth for "[..], &b"authentication failed"[..]),
        (b"tty required for ", b"tty required"),
    ] {
        if let Some(user) = msg.strip_prefix(prefix) {
            return refused(user, None, reason);
        }
    }
    match split_once(msg, b" ran command ") {
        Some((user, rest)) => ran(user, rest),
        None => Verdict::Unrecognised,
    }
}

/// `<user> ran command <command> as <target> from <cwd>`.
fn ran<'a>(user: &'a [u8], rest: &'a [u8]) -> Verdict<'a> {
    if !is_name(user) {
        return Verdict::Unrecognised;
    }
    let mut e = LoginEvent::new(Action::Sudo, Outcome::Success);
    e.user = Some(Text(user));
    // Every ` as <name> from `: the last bounds the command, a single one gives the target.
    let mut found = 0usize;
    let mut last: Option<(usize, &[u8])> = None;
    for at in memchr::memmem::find_iter(rest, b" as ") {
        let (name, after) = word(&rest[at + 4..]);
        if is_name(name) && after.starts_with(b"from ") {
            found += 1;
            last = Some((at, name));
        }
    }
    let Some((at, target)) = last else {
        return Verdict::Unrecognised;
    };
    e.command = Some(Text(&rest[..at])).filter(|c| !c.0.is_empty());
    if found == 1 {
        e.target_user = Some(Text(target));
    }
    e.into()
}

fn refused<'a>(user: &'a [u8], command: Option<&'a [u8]>, reason: &'static [u8]) -> Verdict<'a> {
    if !is_name(user) {
        return Verdict::Unrecognised;
    }
    let mut e = LoginEvent::new(Action::Sudo, Outcome::Failure);
    e.user = Some(Text(user));
    e.command = command
        .map(<[u8]>::trim_ascii)
        .filter(|c| !c.is_empty())
        .map(Text);
    e.reason = Some(Text(reason));
    e.into()
}

/// A user name as doas writes it: no white space, not empty.
fn is_name(s: &[u8]) -> bool {
    !s.is_empty() && !s.iter().any(u8::is_ascii_whitespace)
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
    fn ran_command() {
        let e = ev("alice ran command apk upgrade -a as root from /home/alice");
        assert_eq!((e.action, e.outcome), (Action::Sudo, Outcome::Success));
        assert_eq!(e.user, Some(Text(b"alice")));
        assert_eq!(e.target_user, Some(Text(b"root")));
        assert_eq!(e.command, Some(Text(b"apk upgrade -a")));
        assert_eq!(e.reason, None);
        // A working directory with spaces, a shell (`doas -s`).
        let e = ev("bob ran command /bin/ash as root from /home/bob/my files");
        assert_eq!(e.command, Some(Text(b"/bin/ash")));
        assert_eq!(e.target_user, Some(Text(b"root")));
    }

    #[test]
    fn planted_as_from_hides_the_target_but_keeps_the_command() {
        // The invoker ran `echo x as root from /` as `nobody`: two candidates, no target.
        let e = ev("mallory ran command echo x as root from / as nobody from /tmp");
        assert_eq!(e.user, Some(Text(b"mallory")));
        assert_eq!(e.target_user, None);
        assert_eq!(e.command, Some(Text(b"echo x as root from /")));
    }

    #[test]
    fn refusals() {
        for (line, reason, command) in [
            (
                "failed command for alice: rm -rf /",
                &b"command not permitted"[..],
                Some(&b"rm -rf /"[..]),
            ),
            (
                "command not permitted for alice: rm -rf /",
                b"command not permitted",
                Some(b"rm -rf /"),
            ),
            ("failed auth for alice", b"authentication failed", None),
            (
                "failed command for alice: x ran command y as root from /",
                b"command not permitted",
                Some(b"x ran command y as root from /"),
            ),
            ("tty required for alice", b"tty required", None),
        ] {
            let e = ev(line);
            assert_eq!(
                (e.action, e.outcome),
                (Action::Sudo, Outcome::Failure),
                "{line}"
            );
            assert_eq!(e.user, Some(Text(b"alice")), "{line}");
            assert_eq!(e.reason, Some(Text(reason)), "{line}");
            assert_eq!(e.command, command.map(Text), "{line}");
            assert_eq!(e.target_user, None, "{line}");
        }
    }

    #[test]
    fn other_lines_are_unrecognised() {
        for line in [
            "alice ran command id",
            " ran command id as root from /",
            "failed command for alice",
            "failed auth for ",
            "something else entirely",
        ] {
            assert!(
                matches!(parse(line.as_bytes()), Verdict::Unrecognised),
                "{line}"
            );
        }
    }

    #[test]
    fn through_the_syslog_line() {
        let l = "Nov 28 10:00:21 gw doas[563]: alice ran command id as root from /home/alice";
        match line(l) {
            Parsed::Event(e) => {
                assert_eq!(e.program, Text(b"doas"));
                assert_eq!(e.pid, Some(563));
                assert_eq!(e.action, Action::Sudo);
            }
            p => panic!("{p:?}"),
        }
    }
}
