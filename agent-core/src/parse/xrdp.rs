//! xrdp's session manager, `xrdp-sesman` (0.9) and `xrdp-sesexec` (0.10): the line it writes
//! for fail2ban when a password is refused (`sesman/sesman.c`, `sesman/sesexec/sesexec.c`
//! `log_authfail_message`): `AUTHFAIL: user=<user> ip=<ip> time=<unix seconds>`, `ip=unknown`
//! when the peer is not known. Through syslog the message keeps xrdp's level tag (`common/log.c`
//! sends the buffer after its date: `[INFO ] AUTHFAIL: ...`).
//!
//! xrdp's PAM lines (`pam_unix(xrdp-sesman:auth): ...`) are read by the PAM module; its other
//! lines are noise. The user name is typed by the client: the address is read from the end.

use super::Verdict;
use super::fields::{parse_ip, rsplit_once, user};
use crate::event::{Action, LoginEvent, Method, Outcome, Source};

pub(crate) fn parse(msg: &[u8]) -> Verdict<'_> {
    let msg = msg.trim_ascii();
    // `[INFO ] `, `[WARN ] `, ...: xrdp's level, 8 bytes.
    let body = match msg {
        [b'[', _, _, _, _, _, b']', b' ', rest @ ..] => rest,
        _ => msg,
    };
    let Some(rest) = body.strip_prefix(b"AUTHFAIL: user=") else {
        return Verdict::Noise;
    };
    let Some((who, peer)) = rsplit_once(rest, b" ip=") else {
        return Verdict::Unrecognised;
    };
    let ip = match rsplit_once(peer, b" time=") {
        Some((ip, _)) => ip,
        None => peer,
    };
    let mut e = LoginEvent::new(Action::AuthFailure, Outcome::Failure);
    e.user = user(who);
    e.source = parse_ip(ip).map(Source::Ip);
    e.method = Some(Method::Password);
    e.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::test_support::{event, test_context};
    use crate::parse::{Parsed, parse_line};
    use crate::text::Text;

    /// xrdp 0.9 `sesman/sesman.c` and 0.10 `sesman/sesexec/sesexec.c`: `LOG(LOG_LEVEL_INFO,
    /// "AUTHFAIL: user=%s ip=%s time=%d", username, ip, g_time1())`, through `common/log.c`'s
    /// `syslog(..., "%s", buff + 20)` (the level tag stays).
    #[test]
    fn authfail() {
        let m = "[INFO ] AUTHFAIL: user=alice ip=::ffff:192.0.2.5 time=1795855770";
        let e = event(parse(m.as_bytes()), m);
        assert_eq!(
            (e.action, e.outcome),
            (Action::AuthFailure, Outcome::Failure)
        );
        assert_eq!(e.user, Some(Text(b"alice")));
        assert_eq!(e.source, parse_ip(b"192.0.2.5").map(Source::Ip));
        assert_eq!(e.method, Some(Method::Password));
        let m = "AUTHFAIL: user=bob ip=unknown time=1795855770";
        let e = event(parse(m.as_bytes()), m);
        assert_eq!((e.user, e.source), (Some(Text(b"bob")), None));
        // A typed name holding ` ip=`: the address is the last one.
        let m = "AUTHFAIL: user=x ip=203.0.113.1 ip=192.0.2.5 time=1";
        let e = event(parse(m.as_bytes()), m);
        assert_eq!(e.user, Some(Text(b"x ip=203.0.113.1")));
        assert_eq!(e.source, parse_ip(b"192.0.2.5").map(Source::Ip));
        assert_eq!(
            parse(b"[INFO ] Terminal Server Users group is disabled, allowing authentication"),
            Verdict::Noise
        );
    }

    #[test]
    fn through_dispatch() {
        let ctx = test_context();
        for line in [
            &b"Nov 28 07:04:00 rdp1 xrdp-sesman[2200]: [INFO ] AUTHFAIL: user=alice ip=::ffff:192.0.2.5 time=1795855440"[..],
            b"Nov 28 07:04:00 rdp1 xrdp-sesexec[2201]: [INFO ] AUTHFAIL: user=alice ip=192.0.2.5 time=1795855440",
        ] {
            let Parsed::Event(e) = parse_line(line, &ctx) else {
                panic!("{}", String::from_utf8_lossy(line))
            };
            assert_eq!(e.action, Action::AuthFailure);
            assert_eq!(e.source, parse_ip(b"192.0.2.5").map(Source::Ip));
        }
    }
}
