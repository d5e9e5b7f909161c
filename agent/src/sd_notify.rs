//! The systemd notification protocol (`sd_notify(3)`), in a few lines over std's
//! `UnixDatagram`: no libsystemd, no unsafe.
//!
//! Under a `Type=notify` unit systemd sets `$NOTIFY_SOCKET` to a datagram socket, a path
//! (`/run/systemd/notify`) or an abstract name (`@/org/freedesktop/systemd1/notify/...`), and
//! waits for `READY=1` before it calls the service started. With `WatchdogSec=` it also sets
//! `$WATCHDOG_USEC` (and `$WATCHDOG_PID`, the pid that must ping) and restarts the service if
//! no `WATCHDOG=1` arrives within that time. Outside systemd none of this is set and every call
//! here does nothing.
//!
//! The run loop uses [`Watchdog`]: `Watchdog::from_env()` once, `ready()` once the sources run,
//! `tick()` on every wake-up (it pings at half the interval, as `sd_watchdog_enabled(3)`
//! advises), `stopping()` at SIGTERM.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

/// The variable naming the notification socket.
pub(crate) const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";
/// The watchdog interval in microseconds.
pub(crate) const WATCHDOG_USEC: &str = "WATCHDOG_USEC";
/// The pid the watchdog interval is meant for (absent: any).
pub(crate) const WATCHDOG_PID: &str = "WATCHDOG_PID";

/// Sends `state` to the socket `socket` names: an absolute path, or `@name` for an abstract
/// socket. Other forms (`vsock:`, relative paths) are refused with `InvalidInput`.
pub(crate) fn notify_to(socket: &OsStr, state: &str) -> io::Result<()> {
    let addr = socket_addr(socket)?;
    let sock = UnixDatagram::unbound()?;
    let sent = sock.send_to_addr(state.as_bytes(), &addr)?;
    if sent != state.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short write to the notify socket",
        ));
    }
    Ok(())
}

fn socket_addr(socket: &OsStr) -> io::Result<SocketAddr> {
    let bytes = socket.as_bytes();
    match bytes.first() {
        Some(b'/') => SocketAddr::from_pathname(socket),
        Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..]),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{NOTIFY_SOCKET}={} is neither an absolute path nor an @abstract name",
                socket.to_string_lossy()
            ),
        )),
    }
}

/// The watchdog interval systemd expects pings within, from `$WATCHDOG_USEC`, or `None` when
/// the watchdog is off, the value is not a positive integer, or `$WATCHDOG_PID` names another
/// process.
pub(crate) fn watchdog_interval() -> Option<Duration> {
    watchdog_from(
        std::env::var_os(WATCHDOG_USEC).as_deref(),
        std::env::var_os(WATCHDOG_PID).as_deref(),
        std::process::id(),
    )
}

/// [`watchdog_interval`] over given values, for tests.
fn watchdog_from(usec: Option<&OsStr>, pid: Option<&OsStr>, me: u32) -> Option<Duration> {
    if let Some(pid) = pid {
        let pid: u32 = pid.to_str()?.trim().parse().ok()?;
        if pid != me {
            return None;
        }
    }
    let usec: u64 = usec?.to_str()?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// The service's side of the protocol: where to send, and when the watchdog is due.
///
/// Errors are returned to the caller only from [`Watchdog::ready`]; pings that fail are
/// counted and otherwise ignored (systemd restarts the service if they keep failing, which is
/// the point of a watchdog).
#[derive(Debug, Clone)]
pub(crate) struct Watchdog {
    socket: Option<OsString>,
    /// Half of `WATCHDOG_USEC`.
    every: Option<Duration>,
    last: Instant,
    /// Pings that could not be sent.
    pub failures: u64,
}

impl Watchdog {
    /// Reads `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID`.
    pub(crate) fn from_env() -> Self {
        let socket = std::env::var_os(NOTIFY_SOCKET).filter(|s| !s.is_empty());
        let every = socket.as_ref().and(watchdog_interval()).map(|d| d / 2);
        Self {
            socket,
            every,
            last: Instant::now(),
            failures: 0,
        }
    }

    /// Whether systemd is listening (a `Type=notify` unit).
    #[cfg(test)]
    pub(crate) fn enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// How often [`Watchdog::tick`] pings, if the watchdog is on. The caller must wake at least
    /// this often.
    pub(crate) fn ping_every(&self) -> Option<Duration> {
        self.every
    }

    fn send(&self, state: &str) -> io::Result<bool> {
        match &self.socket {
            Some(socket) => notify_to(socket, state).map(|()| true),
            None => Ok(false),
        }
    }

    /// `READY=1` and a `STATUS=` line. `Ok(false)` outside systemd.
    pub(crate) fn ready(&mut self, status: &str) -> io::Result<bool> {
        self.last = Instant::now();
        self.send(&format!("READY=1\nSTATUS={status}"))
    }

    /// `WATCHDOG=1` if half the interval has passed since the last one. Returns whether a
    /// ping was sent.
    pub(crate) fn tick(&mut self) -> bool {
        let Some(every) = self.every else {
            return false;
        };
        if self.last.elapsed() < every {
            return false;
        }
        self.last = Instant::now();
        match self.send("WATCHDOG=1") {
            Ok(sent) => sent,
            Err(_) => {
                self.failures += 1;
                false
            }
        }
    }

    /// `STATUS=...` (shown by `systemctl status`). Failures are ignored.
    pub(crate) fn status(&self, status: &str) {
        let _ = self.send(&format!("STATUS={status}"));
    }

    /// `STOPPING=1`, sent at the start of a graceful stop. Failures are ignored.
    pub(crate) fn stopping(&self) {
        let _ = self.send("STOPPING=1\nSTATUS=stopping");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receive(sock: &UnixDatagram) -> String {
        sock.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).expect("a datagram");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn sends_to_a_path_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).expect("bind");
        notify_to(path.as_os_str(), "READY=1\nSTATUS=running").expect("sent");
        assert_eq!(receive(&server), "READY=1\nSTATUS=running");
        notify_to(path.as_os_str(), "WATCHDOG=1").expect("sent");
        assert_eq!(receive(&server), "WATCHDOG=1");
    }

    #[test]
    fn sends_to_an_abstract_socket() {
        let name = format!(
            "authtrail-test-notify-{}-{:?}",
            std::process::id(),
            Instant::now()
        );
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("addr");
        let server = UnixDatagram::bind_addr(&addr).expect("bind abstract");
        notify_to(OsStr::new(&format!("@{name}")), "STOPPING=1").expect("sent");
        assert_eq!(receive(&server), "STOPPING=1");
    }

    #[test]
    fn refuses_other_addresses() {
        for bad in ["", "relative/path", "vsock:2:1234"] {
            let err = notify_to(OsStr::new(bad), "READY=1").expect_err(bad);
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad}");
        }
    }

    #[test]
    fn a_missing_socket_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nobody-listens");
        assert!(notify_to(path.as_os_str(), "READY=1").is_err());
    }

    #[test]
    fn watchdog_interval_from_the_environment_values() {
        let os = OsStr::new;
        assert_eq!(
            watchdog_from(Some(os("30000000")), None, 7),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            watchdog_from(Some(os("30000000")), Some(os("7")), 7),
            Some(Duration::from_secs(30))
        );
        // Meant for another process (a child inherited the variables).
        assert_eq!(watchdog_from(Some(os("30000000")), Some(os("8")), 7), None);
        assert_eq!(watchdog_from(Some(os("0")), None, 7), None);
        assert_eq!(watchdog_from(Some(os("soon")), None, 7), None);
        assert_eq!(watchdog_from(None, Some(os("7")), 7), None);
        assert_eq!(watchdog_from(Some(os("100")), Some(os("x")), 7), None);
    }

    #[test]
    fn watchdog_pings_at_half_the_interval() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).expect("bind");
        let mut wd = Watchdog {
            socket: Some(path.clone().into_os_string()),
            every: Some(Duration::from_millis(50)),
            last: Instant::now(),
            failures: 0,
        };
        assert!(wd.enabled());
        assert!(wd.ready("running").expect("sent"));
        assert_eq!(receive(&server), "READY=1\nSTATUS=running");
        assert!(!wd.tick(), "not due yet");
        std::thread::sleep(Duration::from_millis(60));
        assert!(wd.tick());
        assert_eq!(receive(&server), "WATCHDOG=1");
        wd.stopping();
        assert_eq!(receive(&server), "STOPPING=1\nSTATUS=stopping");
        // The socket goes away: pings fail quietly and are counted.
        drop(server);
        std::thread::sleep(Duration::from_millis(60));
        assert!(!wd.tick());
        assert_eq!(wd.failures, 1);
    }

    #[test]
    fn outside_systemd_nothing_is_sent() {
        let mut wd = Watchdog {
            socket: None,
            every: None,
            last: Instant::now(),
            failures: 0,
        };
        assert!(!wd.enabled());
        assert!(!wd.ready("x").expect("no-op"));
        assert!(!wd.tick());
    }
}
