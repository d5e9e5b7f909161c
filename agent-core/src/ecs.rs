//! ECS JSON: one event as one line of JSON, the schema of `ARCHITECTURE.md`.
//!
//! The writer targets any [`core::fmt::Write`] (a `String`, a fixed `heapless::String`, a
//! formatter), allocates nothing itself, nests objects the ECS way (`{"user":{"name":..}}`),
//! leaves out every field it does not know (never an empty string), and replaces invalid UTF-8
//! with U+FFFD.

use core::fmt::{self, Write};

use crate::event::{LoginEvent, Source};
use crate::text::Text;

/// What goes on an event besides what its line said: who shipped it and where it was read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// `host.hostname` when the line has no host field of its own.
    pub hostname: Option<Text<'a>>,
    /// `host.id` (`/etc/machine-id`).
    pub host_id: Option<&'a str>,
    /// `agent.id`: the agent's UUID.
    pub agent_id: Option<&'a str>,
    /// `agent.version`.
    pub agent_version: Option<&'a str>,
    /// `event.provider`: which kind of source read it (`file`, `journald`, `utmp`).
    pub provider: Option<&'a str>,
    /// `event.sequence`: the agent's running count of events.
    pub sequence: Option<u64>,
    /// `log.file.path`.
    pub log_path: Option<Text<'a>>,
    /// `log.offset`: the byte offset of the line's start.
    pub log_offset: Option<u64>,
    /// `message`: the original line.
    pub message: Option<Text<'a>>,
}

/// Writes `ev` as one JSON object (no trailing newline).
pub fn write_event<W: Write + ?Sized>(
    w: &mut W,
    ev: &LoginEvent<'_>,
    env: &Envelope<'_>,
) -> fmt::Result {
    let mut top = Obj::open(w)?;
    if let Some(ts) = ev.timestamp {
        top.key("@timestamp")?;
        write!(top.w, "\"{}\"", ts.rfc3339())?;
    }

    top.object("event")?;
    {
        let mut o = Obj::open_nested(top.w);
        o.str("kind", "event")?;
        o.key("category")?;
        write!(o.w, "[\"{}\"]", ev.category().as_str())?;
        o.str("action", ev.action.as_str())?;
        o.str("outcome", ev.outcome.as_str())?;
        o.opt_text("reason", ev.reason)?;
        o.opt_u64("sequence", env.sequence)?;
        o.opt_str("provider", env.provider)?;
        o.close()?;
    }

    write_host_and_agent(&mut top, ev.hostname.or(env.hostname), env)?;

    if ev.user.is_some() || ev.uid.is_some() || ev.target_user.is_some() {
        top.object("user")?;
        let mut o = Obj::open_nested(top.w);
        o.opt_text("name", ev.user)?;
        if let Some(uid) = ev.uid {
            o.key("id")?;
            write!(o.w, "\"{uid}\"")?;
        }
        if let Some(target) = ev.target_user {
            o.object("target")?;
            let mut t = Obj::open_nested(o.w);
            t.text("name", target)?;
            t.close()?;
        }
        o.close()?;
    }

    if ev.source.is_some() || ev.port.is_some() {
        top.object("source")?;
        let mut o = Obj::open_nested(top.w);
        match ev.source {
            Some(Source::Ip(ip)) => {
                o.key("ip")?;
                write!(o.w, "\"{ip}\"")?;
            }
            Some(Source::Domain(d)) => o.text("domain", d)?,
            None => {}
        }
        o.opt_u64("port", ev.port.map(u64::from))?;
        o.close()?;
    }

    top.object("process")?;
    {
        let mut o = Obj::open_nested(top.w);
        o.text("name", ev.program)?;
        o.opt_u64("pid", ev.pid.map(u64::from))?;
        o.close()?;
    }

    top.object("authtrail")?;
    {
        let mut o = Obj::open_nested(top.w);
        o.opt_str("method", ev.method.map(|m| m.as_str()))?;
        if ev.key_type.is_some() || ev.key_fingerprint.is_some() {
            o.object("key")?;
            let mut k = Obj::open_nested(o.w);
            k.opt_text("type", ev.key_type)?;
            k.opt_text("fingerprint", ev.key_fingerprint)?;
            k.close()?;
        }
        o.opt_text("tty", ev.tty)?;
        o.opt_text("command", ev.command)?;
        o.opt_u64("count", Some(u64::from(ev.count)))?;
        o.close()?;
    }

    write_log_and_message(top, env)
}

/// The `host` and `agent` objects, each left out when empty.
fn write_host_and_agent<W: Write + ?Sized>(
    top: &mut Obj<'_, W>,
    hostname: Option<Text<'_>>,
    env: &Envelope<'_>,
) -> fmt::Result {
    if hostname.is_some() || env.host_id.is_some() {
        top.object("host")?;
        let mut o = Obj::open_nested(&mut *top.w);
        o.opt_text("hostname", hostname)?;
        o.opt_str("id", env.host_id)?;
        o.close()?;
    }
    if env.agent_id.is_some() || env.agent_version.is_some() {
        top.object("agent")?;
        let mut o = Obj::open_nested(&mut *top.w);
        o.opt_str("id", env.agent_id)?;
        o.opt_str("version", env.agent_version)?;
        o.close()?;
    }
    Ok(())
}

/// The `log` object and `message`, then the closing brace: the end of events and alerts alike.
fn write_log_and_message<W: Write + ?Sized>(
    mut top: Obj<'_, W>,
    env: &Envelope<'_>,
) -> fmt::Result {
    if env.log_path.is_some() || env.log_offset.is_some() {
        top.object("log")?;
        let mut o = Obj::open_nested(top.w);
        if let Some(path) = env.log_path {
            o.object("file")?;
            let mut f = Obj::open_nested(o.w);
            f.text("path", path)?;
            f.close()?;
        }
        o.opt_u64("offset", env.log_offset)?;
        o.close()?;
    }

    top.opt_text("message", env.message)?;
    top.close()
}

/// Writes `s` as a JSON string (with quotes), escaping what JSON requires and replacing invalid
/// UTF-8 with U+FFFD.
pub fn write_json_string<W: Write + ?Sized>(w: &mut W, s: Text<'_>) -> fmt::Result {
    w.write_char('"')?;
    for chunk in s.utf8_chunks() {
        escape_str(w, chunk.valid())?;
        if !chunk.invalid().is_empty() {
            w.write_char('\u{FFFD}')?;
        }
    }
    w.write_char('"')
}

fn escape_str<W: Write + ?Sized>(w: &mut W, s: &str) -> fmt::Result {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: Option<&str> = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0..=0x1f | 0x7f => None,
            _ => continue,
        };
        // `i` is at an ASCII byte, so both slices end on char boundaries.
        w.write_str(&s[start..i])?;
        match escape {
            Some(e) => w.write_str(e)?,
            None => write!(w, "\\u{b:04x}")?,
        }
        start = i + 1;
    }
    w.write_str(&s[start..])
}

/// A JSON object being written: tracks whether a comma is due.
struct Obj<'w, W: Write + ?Sized> {
    w: &'w mut W,
    first: bool,
}

impl<'w, W: Write + ?Sized> Obj<'w, W> {
    fn open(w: &'w mut W) -> Result<Self, fmt::Error> {
        w.write_char('{')?;
        Ok(Obj { w, first: true })
    }

    /// For an object whose `{` was written by [`Obj::object`].
    fn open_nested(w: &'w mut W) -> Self {
        Obj { w, first: true }
    }

    fn key(&mut self, k: &str) -> fmt::Result {
        if !self.first {
            self.w.write_char(',')?;
        }
        self.first = false;
        self.w.write_char('"')?;
        self.w.write_str(k)?;
        self.w.write_str("\":")
    }

    /// Starts a nested object; write it with `Obj::open_nested(self.w)` and close it.
    fn object(&mut self, k: &str) -> fmt::Result {
        self.key(k)?;
        self.w.write_char('{')
    }

    fn str(&mut self, k: &str, v: &str) -> fmt::Result {
        self.key(k)?;
        self.w.write_char('"')?;
        escape_str(self.w, v)?;
        self.w.write_char('"')
    }

    fn opt_str(&mut self, k: &str, v: Option<&str>) -> fmt::Result {
        match v {
            Some(v) if !v.is_empty() => self.str(k, v),
            _ => Ok(()),
        }
    }

    fn text(&mut self, k: &str, v: Text<'_>) -> fmt::Result {
        self.key(k)?;
        write_json_string(self.w, v)
    }

    fn opt_text(&mut self, k: &str, v: Option<Text<'_>>) -> fmt::Result {
        match v {
            Some(v) if !v.is_empty() => self.text(k, v),
            _ => Ok(()),
        }
    }

    fn opt_u64(&mut self, k: &str, v: Option<u64>) -> fmt::Result {
        match v {
            Some(v) => {
                self.key(k)?;
                write!(self.w, "{v}")
            }
            None => Ok(()),
        }
    }

    fn close(self) -> fmt::Result {
        self.w.write_char('}')
    }
}

/// Writes a detection [`Alert`](crate::detect::Alert) as one JSON object (no trailing
/// newline): `event.kind` `alert`, `event.action` the rule, `event.reason` a human sentence,
/// `event.start`/`event.end` the window, `source.ip`, `user.name`, and `authtrail.count` (failed
/// attempts), `authtrail.users` (distinct user names, when tracked), `authtrail.scope` (what the
/// count was taken over, for success after failures), plus the envelope fields of
/// [`write_event`]. (Placed before the test module, not after it, for clippy's
/// `items_after_test_module`.)
pub fn write_alert<W: Write + ?Sized>(
    w: &mut W,
    alert: &crate::detect::Alert,
    env: &Envelope<'_>,
) -> fmt::Result {
    use crate::detect::{Rule, Scope};

    /// Escapes what is written through it as the inside of a JSON string.
    struct Escaped<'w, W: Write + ?Sized>(&'w mut W);
    impl<W: Write + ?Sized> Write for Escaped<'_, W> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            escape_str(self.0, s)
        }
    }

    let mut top = Obj::open(w)?;
    top.key("@timestamp")?;
    write!(top.w, "\"{}\"", alert.end.rfc3339())?;

    top.object("event")?;
    {
        let mut o = Obj::open_nested(top.w);
        o.str("kind", "alert")?;
        o.key("category")?;
        o.w.write_str("[\"authentication\"]")?;
        o.str("action", alert.rule.as_str())?;
        o.str("outcome", alert.rule.outcome().as_str())?;
        o.opt_u64("severity", Some(u64::from(alert.severity)))?;
        o.key("reason")?;
        o.w.write_char('"')?;
        write!(Escaped(&mut *o.w), "{alert}")?;
        o.w.write_char('"')?;
        o.key("start")?;
        write!(o.w, "\"{}\"", alert.start.rfc3339())?;
        o.key("end")?;
        write!(o.w, "\"{}\"", alert.end.rfc3339())?;
        o.opt_u64("sequence", env.sequence)?;
        o.opt_str("provider", env.provider)?;
        o.close()?;
    }

    write_host_and_agent(&mut top, env.hostname, env)?;

    if let Some(ip) = alert.source {
        top.object("source")?;
        let mut o = Obj::open_nested(top.w);
        o.key("ip")?;
        write!(o.w, "\"{ip}\"")?;
        o.close()?;
    }

    let user = alert.user.as_ref().filter(|u| !u.as_text().is_empty());
    if let Some(u) = user {
        top.object("user")?;
        let mut o = Obj::open_nested(top.w);
        o.text("name", u.as_text())?;
        o.close()?;
    }

    top.object("authtrail")?;
    {
        let mut o = Obj::open_nested(top.w);
        o.opt_u64("count", Some(u64::from(alert.count)))?;
        o.opt_u64("users", Some(u64::from(alert.users)).filter(|&n| n > 0))?;
        if alert.rule == Rule::SuccessAfterFailures || alert.scope != Scope::Source {
            o.str("scope", alert.scope.as_str())?;
        }
        if user.is_some_and(|u| u.is_truncated()) {
            o.key("user_truncated")?;
            o.w.write_str("true")?;
        }
        o.close()?;
    }

    write_log_and_message(top, env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Action, Method, Outcome};
    use crate::time::Timestamp;

    fn json(ev: &LoginEvent<'_>, env: &Envelope<'_>) -> String {
        let mut s = String::new();
        write_event(&mut s, ev, env).unwrap();
        s
    }

    #[test]
    fn full_event_is_valid_nested_ecs() {
        let mut ev = LoginEvent::new(Action::AuthSuccess, Outcome::Success);
        ev.timestamp = Some(Timestamp::from_secs(1_795_848_570));
        ev.hostname = Some(Text(b"web1"));
        ev.program = Text(b"sshd");
        ev.pid = Some(42);
        ev.user = Some(Text(b"alice"));
        ev.source = Some(Source::Ip("2001:db8::1".parse().unwrap()));
        ev.port = Some(50522);
        ev.method = Some(Method::Publickey);
        ev.key_type = Some(Text(b"ED25519"));
        ev.key_fingerprint = Some(Text(b"SHA256:abc"));
        let env = Envelope {
            agent_id: Some("a-1"),
            log_path: Some(Text(b"/var/log/auth.log")),
            log_offset: Some(7),
            message: Some(Text(b"line \"quoted\"\t\x01\xff")),
            ..Envelope::default()
        };
        assert_eq!(
            json(&ev, &env),
            concat!(
                r#"{"@timestamp":"2026-11-28T06:49:30Z","#,
                r#""event":{"kind":"event","category":["authentication"],"action":"auth_success","outcome":"success"},"#,
                r#""host":{"hostname":"web1"},"agent":{"id":"a-1"},"user":{"name":"alice"},"#,
                r#""source":{"ip":"2001:db8::1","port":50522},"process":{"name":"sshd","pid":42},"#,
                r#""authtrail":{"method":"publickey","key":{"type":"ED25519","fingerprint":"SHA256:abc"},"count":1},"#,
                r#""log":{"file":{"path":"/var/log/auth.log"},"offset":7},"#,
                "\"message\":\"line \\\"quoted\\\"\\t\\u0001\u{FFFD}\"}"
            )
        );
    }

    #[test]
    fn unknown_fields_are_absent_not_empty() {
        let mut ev = LoginEvent::new(Action::Sudo, Outcome::Failure);
        ev.program = Text(b"sudo");
        ev.user = None;
        ev.target_user = Some(Text(b"root"));
        ev.uid = Some(0);
        let s = json(&ev, &Envelope::default());
        assert_eq!(
            s,
            concat!(
                r#"{"event":{"kind":"event","category":["process"],"action":"sudo","outcome":"failure"},"#,
                r#""user":{"id":"0","target":{"name":"root"}},"process":{"name":"sudo"},"authtrail":{"count":1}}"#
            )
        );
        assert!(!s.contains("\"\""));
    }
}
