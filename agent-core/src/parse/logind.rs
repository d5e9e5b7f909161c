//! systemd-logind (`src/login/logind-session.c`, `logind-seat.c`, `logind-button.c`):
//! `New session 12 of user alice.` (recent releases: `New session '12' of user 'alice' with class
//! 'user' and type 'tty'.`) opens a session, `Removed session 12.` closes one.
//!
//! The session id (`12`, `c1`) is not reported: it is neither a tty nor a user, and the schema
//! has no field for it. `Removed session` does not name the user, so its `user` is unknown; the
//! matching PAM `session closed for user` line names it. Seat, button and power lines are Noise.

use super::Verdict;
use super::fields::{rsplit_once, split_once, user};
use crate::event::{Action, LoginEvent, Outcome};

pub(crate) fn parse(msg: &[u8]) -> Verdict<'_> {
    let msg = msg.trim_ascii();
    if let Some(rest) = msg.strip_prefix(b"New session '") {
        // Recent systemd: `New session '3' of user 'alice' with class 'user' and type 'tty'.`
        let Some((id, who)) = split_once(rest, b"' of user '") else {
            return Verdict::Unrecognised;
        };
        let Some((who, _)) = rsplit_once(who, b"' with class '") else {
            return Verdict::Unrecognised;
        };
        if id.is_empty() || id.contains(&b' ') {
            return Verdict::Unrecognised;
        }
        let mut e = LoginEvent::new(Action::SessionOpen, Outcome::Success);
        e.user = user(who);
        return e.into();
    }
    if let Some(rest) = msg.strip_prefix(b"New session ") {
        let Some((id, who)) = split_once(rest, b" of user ") else {
            return Verdict::Unrecognised;
        };
        if id.is_empty() || id.contains(&b' ') {
            return Verdict::Unrecognised;
        }
        let mut e = LoginEvent::new(Action::SessionOpen, Outcome::Success);
        e.user = user(who.strip_suffix(b".").unwrap_or(who));
        return e.into();
    }
    if let Some(rest) = msg.strip_prefix(b"Removed session ") {
        let id = rest.strip_suffix(b".").unwrap_or(rest);
        if id.is_empty() || id.contains(&b' ') {
            return Verdict::Unrecognised;
        }
        return LoginEvent::new(Action::SessionClose, Outcome::Success).into();
    }
    if is_noise(msg) {
        Verdict::Noise
    } else {
        Verdict::Unrecognised
    }
}

fn is_noise(msg: &[u8]) -> bool {
    const PREFIXES: &[&[u8]] = &[
        b"Session ",
        b"New seat ",
        b"Removed seat ",
        b"Watching system buttons",
        b"Power key pressed",
        b"Power key pressed short",
        b"Power key pressed long",
        b"Reboot key pressed",
        b"Suspend key pressed",
        b"Hibernate key pressed",
        b"Lid opened",
        b"Lid closed",
        b"Lid switch",
        b"System is ",
        b"Operation '",
        b"Delay lock is active",
        b"Failed to ",
        b"User enumeration failed",
        b"Session enumeration failed",
        b"Seat enumeration failed",
        b"Inhibitor enumeration failed",
        b"Creating /run/nologin",
        b"Removed user ",
        b"New user ",
        b"Unknown ",
        b"Received ",
        b"Started ",
        b"Stopped ",
        b"Setting ",
        b"Not ",
        b"Docking",
        b"Undocking",
        b"Suspending",
        b"Hibernating",
        b"Shutdown ",
        b"Scheduled ",
    ];
    PREFIXES.iter().any(|p| msg.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::test_support::test_context;
    use crate::parse::{Parsed, parse_line};
    use crate::text::Text;

    #[test]
    fn new_session() {
        let Verdict::Event(e) = parse(b"New session 12 of user alice.") else {
            panic!()
        };
        assert_eq!(
            (e.action, e.outcome),
            (Action::SessionOpen, Outcome::Success)
        );
        assert_eq!(e.user, Some(Text(b"alice")));
        assert_eq!(e.tty, None);
        let Verdict::Event(e) = parse(b"New session c1 of user gdm.") else {
            panic!()
        };
        assert_eq!(e.user, Some(Text(b"gdm")));
    }

    /// Recent systemd (`src/login/logind-session.c` `session_start` with `LOG_ITEM()`; 257 and
    /// older write `New session 3 of user alice.`): `"New session '%s' of user '%s' with class
    /// '%s' and type '%s'."`.
    #[test]
    fn new_session_quoted_with_class_and_type() {
        let Verdict::Event(e) =
            parse(b"New session '3' of user 'alice' with class 'user' and type 'tty'.")
        else {
            panic!()
        };
        assert_eq!(
            (e.action, e.outcome),
            (Action::SessionOpen, Outcome::Success)
        );
        assert_eq!(e.user, Some(Text(b"alice")));
        let Verdict::Event(e) =
            parse(b"New session 'c1' of user 'gdm' with class 'greeter' and type 'wayland'.")
        else {
            panic!()
        };
        assert_eq!(e.user, Some(Text(b"gdm")));
        assert_eq!(
            parse(b"New session '3' of user 'alice"),
            Verdict::Unrecognised
        );
    }

    #[test]
    fn removed_session() {
        let Verdict::Event(e) = parse(b"Removed session 12.") else {
            panic!()
        };
        assert_eq!(
            (e.action, e.outcome),
            (Action::SessionClose, Outcome::Success)
        );
        assert_eq!(e.user, None);
    }

    #[test]
    fn noise_and_unknown() {
        for m in [
            "Session 12 logged out. Waiting for processes to exit.",
            "New seat seat0.",
            "Watching system buttons on /dev/input/event0 (Power Button)",
            "Power key pressed short.",
            "System is powering down.",
        ] {
            assert_eq!(parse(m.as_bytes()), Verdict::Noise, "{m}");
        }
        assert_eq!(parse(b"New session of user"), Verdict::Unrecognised);
        assert_eq!(parse(b"New session 1 2 of user x."), Verdict::Unrecognised);
        assert_eq!(parse(b"Removed session ."), Verdict::Unrecognised);
        assert_eq!(parse(b"frobnicated"), Verdict::Unrecognised);
    }

    #[test]
    fn through_dispatch() {
        let ctx = test_context();
        let Parsed::Event(e) = parse_line(
            b"Nov 28 07:00:00 host systemd-logind[512]: New session 3 of user alice.",
            &ctx,
        ) else {
            panic!()
        };
        assert_eq!(e.program, Text(b"systemd-logind"));
        assert_eq!(e.pid, Some(512));
        assert_eq!(e.user, Some(Text(b"alice")));
    }
}
