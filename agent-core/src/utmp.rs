//! wtmp and btmp: glibc's binary `struct utmp` login records, from bytes to [`LoginEvent`]s.
//!
//! `/var/log/wtmp` holds a record for every login on a terminal (type 7, `USER_PROCESS`) and
//! every logout (type 8, `DEAD_PROCESS`), plus boot, shutdown and run-level records;
//! `/var/log/btmp` holds failed logins (type 6, `LOGIN_PROCESS`, from sshd; `login(1)` writes
//! type 7). Both are arrays of fixed-size records, appended by the program that logs the user in.
//!
//! # Layout
//!
//! [`RECORD_LEN`] = 384 bytes, the layout of glibc on x86_64 and aarch64 (both little-endian; the
//! 64-bit ABIs keep `ut_tv` as two `int32_t` for compatibility with 32-bit files):
//!
//! | offset | field | type |
//! | --- | --- | --- |
//! | 0 | `ut_type` | `i16` (then 2 bytes padding) |
//! | 4 | `ut_pid` | `i32` |
//! | 8 | `ut_line` | `[u8; 32]` |
//! | 40 | `ut_id` | `[u8; 4]` |
//! | 44 | `ut_user` | `[u8; 32]` |
//! | 76 | `ut_host` | `[u8; 256]` |
//! | 332 | `ut_exit` | `e_termination: i16`, `e_exit: i16` |
//! | 336 | `ut_session` | `i32` |
//! | 340 | `ut_tv` | `tv_sec: i32`, `tv_usec: i32` |
//! | 348 | `ut_addr_v6` | `[i32; 4]`, the address in network byte order |
//! | 364 | `__glibc_reserved` | `[u8; 20]` |
//!
//! Integers are read **little-endian** only: every target authtrail ships for (x86_64, aarch64,
//! armv7) is little-endian. A big-endian host (s390x, ppc64) writes the same layout big-endian;
//! supporting it would be one parameter, and is deliberately left out until someone needs it.
//! `tv_sec` is read as unsigned, so records written after 2038-01-19 keep a sensible time (no
//! login record predates 1970). The text fields are C strings: everything from the first NUL on
//! is dropped; a field that fills its array has no NUL (`ut_user` cut at 32 bytes).
//!
//! # From record to event ([`to_event`])
//!
//! | file | `ut_type` | event |
//! | --- | --- | --- |
//! | wtmp | 7 `USER_PROCESS` | `session_open` / `success`: user, tty (`ut_line`), source, time, pid |
//! | wtmp | 8 `DEAD_PROCESS` | `session_close` / `success`: tty, time, pid; no user (logout records leave `ut_user` empty) |
//! | btmp | 6 `LOGIN_PROCESS`, 7 `USER_PROCESS` | `auth_failure` / `failure`: user, tty (`ssh:notty`, `pts/1`), source, time, pid |
//! | either | anything else | `None` |
//!
//! Boot (`BOOT_TIME`), shutdown and run-level (`RUN_LVL`), clock-change and `INIT_PROCESS`
//! records are not logins: they yield `None` rather than an `other` event, so they neither
//! inflate event counts nor need a consumer to filter them. A caller that wants boots can still
//! look at [`UtmpRecord::record_type`].
//!
//! `login(1)` records an attempt on a user name that does not exist as the user `UNKNOWN`
//! (shadow's `LOG_UNKFAIL_ENAS no`); that becomes an `auth_failure` without a user name, as the
//! auth-log parser does for the same `FOR 'UNKNOWN'` line.
//!
//! The source address is `ut_addr_v6` when it is not all zeros: IPv4 is stored in the first word
//! with the other three zero, IPv6 in all four (the same rule `last` and `utmpdump` apply; an
//! IPv6 address whose last 96 bits are zero is read as IPv4 unless `ut_host` spells it out as
//! IPv6). Otherwise `ut_host` is parsed as an address or a DNS name (`UseDNS yes`); anything else
//! there (`:0`, a kernel version on boot records) gives no source.
//!
//! # `process.name`
//!
//! A record does not name the program that wrote it, only its pid (`ut_pid`, kept as
//! `process.pid`). [`to_event`] names it the way the record itself shows it:
//! - `sshd` when `ut_line` starts with `ssh:` (`ssh:notty`: only sshd writes these), or when the
//!   record carries a remote source (address or host name): on the servers authtrail watches
//!   remote terminal logins are sshd's (telnetd and rlogind would be named wrongly);
//! - `login` otherwise: a local login on a terminal (`tty1`, a `pts` driven by `login`).
//!
//! This is a best-effort name; the record's provenance is stated separately by the agent, which
//! tags every utmp event `event.provider = "utmp"` (see the agent's utmp source).

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::event::{Action, LoginEvent, Outcome, Source, non_empty};
use crate::parse::fields;
use crate::text::Text;
use crate::time::Timestamp;

/// Size of one `struct utmp` record on x86_64 and aarch64 glibc.
pub const RECORD_LEN: usize = 384;

const OFF_TYPE: usize = 0;
const OFF_PID: usize = 4;
const OFF_LINE: usize = 8;
const LEN_LINE: usize = 32;
const OFF_ID: usize = 40;
const LEN_ID: usize = 4;
const OFF_USER: usize = 44;
const LEN_USER: usize = 32;
const OFF_HOST: usize = 76;
const LEN_HOST: usize = 256;
const OFF_EXIT: usize = 332;
const OFF_SESSION: usize = 336;
const OFF_TV_SEC: usize = 340;
const OFF_TV_USEC: usize = 344;
const OFF_ADDR: usize = 348;
const LEN_ADDR: usize = 16;

/// Which file a record came from: the same record type means different things in each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UtmpFile {
    /// `/var/log/wtmp`: logins and logouts.
    Wtmp,
    /// `/var/log/btmp`: failed logins.
    Btmp,
}

impl UtmpFile {
    /// Guesses the kind from a file name: a name containing `btmp` (`btmp`, `btmp.1`) is
    /// [`UtmpFile::Btmp`], anything else [`UtmpFile::Wtmp`].
    pub fn from_file_name(name: &[u8]) -> UtmpFile {
        if memchr::memmem::find(name, b"btmp").is_some() {
            UtmpFile::Btmp
        } else {
            UtmpFile::Wtmp
        }
    }
}

/// `ut_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RecordType {
    /// 0: no valid record.
    Empty,
    /// 1: a change of run level (also shutdown, user `shutdown`).
    RunLevel,
    /// 2: the system booted.
    BootTime,
    /// 3: the clock was set (the time after the change).
    NewTime,
    /// 4: the clock was set (the time before the change).
    OldTime,
    /// 5: a process spawned by init.
    InitProcess,
    /// 6: a getty waiting for a login; in btmp, a failed login.
    LoginProcess,
    /// 7: a user logged in.
    UserProcess,
    /// 8: a session ended.
    DeadProcess,
    /// 9: not used by glibc.
    Accounting,
    /// Any other value.
    Unknown(i16),
}

impl RecordType {
    /// From the raw `ut_type`.
    pub(crate) const fn from_raw(raw: i16) -> RecordType {
        match raw {
            0 => RecordType::Empty,
            1 => RecordType::RunLevel,
            2 => RecordType::BootTime,
            3 => RecordType::NewTime,
            4 => RecordType::OldTime,
            5 => RecordType::InitProcess,
            6 => RecordType::LoginProcess,
            7 => RecordType::UserProcess,
            8 => RecordType::DeadProcess,
            9 => RecordType::Accounting,
            n => RecordType::Unknown(n),
        }
    }
}

/// Why bytes are not a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UtmpError {
    /// The slice is not exactly [`RECORD_LEN`] bytes long.
    WrongLength {
        /// Its length.
        len: usize,
    },
}

impl fmt::Display for UtmpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UtmpError::WrongLength { len } => {
                write!(f, "utmp record is {len} bytes, expected {RECORD_LEN}")
            }
        }
    }
}

impl core::error::Error for UtmpError {}

/// One `struct utmp`, its text fields borrowed from the input with trailing NULs removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UtmpRecord<'a> {
    /// `ut_type`, raw.
    pub ut_type: i16,
    /// `ut_pid`: the process that logged the user in (sshd's session process, login).
    pub pid: i32,
    /// `ut_line`: the terminal without `/dev/` (`pts/3`, `tty1`) or `ssh:notty`.
    pub line: Text<'a>,
    /// `ut_id`: the terminal's short id (`ts/3`), often empty.
    pub id: Text<'a>,
    /// `ut_user`: the user name (empty in logout records).
    pub user: Text<'a>,
    /// `ut_host`: the remote host (name or address text), or the kernel version in boot
    /// records.
    pub host: Text<'a>,
    /// `ut_exit.e_termination`.
    pub exit_termination: i16,
    /// `ut_exit.e_exit`.
    pub exit_status: i16,
    /// `ut_session`.
    pub session: i32,
    /// `ut_tv.tv_sec`, read as unsigned (see the module docs).
    pub tv_sec: u32,
    /// `ut_tv.tv_usec`, raw.
    pub tv_usec: i32,
    /// `ut_addr_v6`, the 16 bytes as stored (network byte order).
    pub addr: [u8; 16],
}

impl<'a> UtmpRecord<'a> {
    /// `ut_type`, decoded.
    pub const fn record_type(&self) -> RecordType {
        RecordType::from_raw(self.ut_type)
    }

    /// The record's time, `None` when it is unset (0) or `tv_usec` is out of range.
    pub(crate) fn timestamp(&self) -> Option<Timestamp> {
        if self.tv_sec == 0 && self.tv_usec == 0 {
            return None;
        }
        let usec = u32::try_from(self.tv_usec)
            .ok()
            .filter(|u| *u < 1_000_000)?;
        Some(Timestamp {
            secs: i64::from(self.tv_sec),
            nanos: usec * 1_000,
        })
    }

    /// `ut_addr_v6` as an address, `None` when it is all zeros. IPv4 when only the first word
    /// is set; IPv4-mapped IPv6 folds to IPv4.
    pub(crate) fn addr_ip(&self) -> Option<IpAddr> {
        let a = self.addr;
        if a == [0; 16] {
            return None;
        }
        if a[4..] == [0; 12] {
            return Some(IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])));
        }
        Some(fields::fold_mapped(IpAddr::V6(Ipv6Addr::from(a))))
    }

    /// Where the login came from: [`Self::addr_ip`], else `ut_host` as an address or DNS name.
    pub(crate) fn source(&self) -> Option<Source<'a>> {
        let host = fields::parse_source(self.host.as_bytes());
        match self.addr_ip() {
            // An IPv6 address with only its first 32 bits set looks like IPv4 in `ut_addr_v6`;
            // the host text says which it was.
            Some(IpAddr::V4(v4)) => match host {
                Some(Source::Ip(IpAddr::V6(v6))) if v6.octets()[..4] == v4.octets() => host,
                _ => Some(Source::Ip(IpAddr::V4(v4))),
            },
            Some(ip) => Some(Source::Ip(ip)),
            None => host,
        }
    }
}

/// Reads one record. `bytes` must be exactly [`RECORD_LEN`] long.
pub fn parse_record(bytes: &[u8]) -> Result<UtmpRecord<'_>, UtmpError> {
    let b: &[u8; RECORD_LEN] = bytes
        .try_into()
        .map_err(|_| UtmpError::WrongLength { len: bytes.len() })?;
    let mut addr = [0u8; LEN_ADDR];
    addr.copy_from_slice(&b[OFF_ADDR..OFF_ADDR + LEN_ADDR]);
    Ok(UtmpRecord {
        ut_type: i16_at(b, OFF_TYPE),
        pid: i32_at(b, OFF_PID),
        line: c_str(&b[OFF_LINE..OFF_LINE + LEN_LINE]),
        id: c_str(&b[OFF_ID..OFF_ID + LEN_ID]),
        user: c_str(&b[OFF_USER..OFF_USER + LEN_USER]),
        host: c_str(&b[OFF_HOST..OFF_HOST + LEN_HOST]),
        exit_termination: i16_at(b, OFF_EXIT),
        exit_status: i16_at(b, OFF_EXIT + 2),
        session: i32_at(b, OFF_SESSION),
        tv_sec: i32_at(b, OFF_TV_SEC) as u32,
        tv_usec: i32_at(b, OFF_TV_USEC),
        addr,
    })
}

/// The whole records in `data`, in order; a partial record at the end is not yielded (see
/// [`Records::remainder`]).
#[cfg(test)]
pub(crate) fn records(data: &[u8]) -> Records<'_> {
    Records {
        inner: data.chunks_exact(RECORD_LEN),
    }
}

/// Iterator over the records of a byte slice; see [`records`].
#[derive(Debug, Clone)]
#[cfg(test)]
pub(crate) struct Records<'a> {
    inner: core::slice::ChunksExact<'a, u8>,
}

#[cfg(test)]
impl<'a> Records<'a> {
    /// The bytes after the last whole record (shorter than [`RECORD_LEN`]).
    pub(crate) fn remainder(&self) -> &'a [u8] {
        self.inner.remainder()
    }
}

#[cfg(test)]
impl<'a> Iterator for Records<'a> {
    type Item = UtmpRecord<'a>;

    fn next(&mut self) -> Option<UtmpRecord<'a>> {
        // `chunks_exact` yields only full-length chunks, so this cannot fail.
        self.inner.next().and_then(|c| parse_record(c).ok())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

/// The login event a record stands for, `None` for records that are not logins (see the module
/// docs for the table).
pub fn to_event<'a>(rec: &UtmpRecord<'a>, file: UtmpFile) -> Option<LoginEvent<'a>> {
    let mut ev = match (file, rec.record_type()) {
        (UtmpFile::Wtmp, RecordType::UserProcess) => {
            let mut e = LoginEvent::new(Action::SessionOpen, Outcome::Success);
            e.user = non_empty(rec.user.as_bytes());
            e.source = rec.source();
            e
        }
        (UtmpFile::Wtmp, RecordType::DeadProcess) => {
            let mut e = LoginEvent::new(Action::SessionClose, Outcome::Success);
            // Logout records normally have an empty user; keep one if a writer set it.
            e.user = non_empty(rec.user.as_bytes());
            e.source = rec.source();
            e
        }
        (UtmpFile::Btmp, RecordType::LoginProcess | RecordType::UserProcess) => {
            let mut e = LoginEvent::new(Action::AuthFailure, Outcome::Failure);
            e.user = match rec.user.as_bytes() {
                b"UNKNOWN" => None,
                u => non_empty(u),
            };
            e.source = rec.source();
            e
        }
        _ => return None,
    };
    ev.timestamp = rec.timestamp();
    ev.tty = non_empty(rec.line.as_bytes());
    ev.pid = u32::try_from(rec.pid).ok().filter(|p| *p != 0);
    ev.program = Text(writer_name(rec, ev.source.is_some()));
    Some(ev)
}

/// `process.name` for a record's event; see the module docs.
fn writer_name(rec: &UtmpRecord<'_>, remote: bool) -> &'static [u8] {
    if rec.line.as_bytes().starts_with(b"ssh:") || remote {
        b"sshd"
    } else {
        b"login"
    }
}

fn c_str(field: &[u8]) -> Text<'_> {
    let end = memchr::memchr(0, field).unwrap_or(field.len());
    Text(&field[..end])
}

fn i16_at(b: &[u8; RECORD_LEN], at: usize) -> i16 {
    i16::from_le_bytes([b[at], b[at + 1]])
}

fn i32_at(b: &[u8; RECORD_LEN], at: usize) -> i32 {
    i32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::days_from_civil;

    const WTMP: &[u8] = include_bytes!("../testdata/debian12-utmp/wtmp");
    const BTMP: &[u8] = include_bytes!("../testdata/debian12-utmp/btmp");
    const WTMP_DUMP: &str = include_str!("../testdata/debian12-utmp/wtmp.utmpdump.txt");
    const BTMP_DUMP: &str = include_str!("../testdata/debian12-utmp/btmp.utmpdump.txt");

    /// One line of `utmpdump` output:
    /// `[type] [pid] [id] [user] [line] [host] [addr] [2026-11-28T08:03:09,277439+00:00]`.
    #[derive(Debug)]
    struct Dump<'a> {
        ut_type: i16,
        pid: i32,
        id: &'a str,
        user: &'a str,
        line: &'a str,
        host: &'a str,
        addr: &'a str,
        micros: i64,
    }

    fn dump_lines(text: &str) -> Vec<Dump<'_>> {
        text.lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let inner = l.strip_prefix('[').unwrap().strip_suffix(']').unwrap();
                let f: Vec<&str> = inner.split("] [").collect();
                assert_eq!(f.len(), 8, "{l}");
                // utmpdump pads every field with spaces to a minimum width.
                Dump {
                    ut_type: f[0].parse().unwrap(),
                    pid: f[1].parse().unwrap(),
                    id: f[2].trim_end(),
                    user: f[3].trim_end(),
                    line: f[4].trim_end(),
                    host: f[5].trim_end(),
                    addr: f[6].trim_end(),
                    micros: dump_time(f[7]),
                }
            })
            .collect()
    }

    /// `2026-11-28T08:03:09,277439+00:00` -> Unix microseconds.
    fn dump_time(s: &str) -> i64 {
        let (date, rest) = s.split_once('T').unwrap();
        let rest = rest.strip_suffix("+00:00").unwrap();
        let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
        let (hms, usec) = rest.split_once(',').unwrap();
        let t: Vec<i64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
        let days = days_from_civil(d[0] as i32, d[1] as u8, d[2] as u8);
        ((days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2]) * 1_000_000)
            + usec.parse::<i64>().unwrap()
    }

    fn check_against_dump(data: &[u8], dump: &str) -> usize {
        let expected = dump_lines(dump);
        assert_eq!(data.len(), expected.len() * RECORD_LEN);
        let recs: Vec<UtmpRecord<'_>> = records(data).collect();
        assert_eq!(recs.len(), expected.len());
        for (r, d) in recs.iter().zip(&expected) {
            assert_eq!(r.ut_type, d.ut_type, "{d:?}");
            assert_eq!(r.pid, d.pid, "{d:?}");
            assert_eq!(r.id.to_str().unwrap().trim_end(), d.id, "{d:?}");
            assert_eq!(r.user, d.user, "{d:?}");
            assert_eq!(r.line, d.line, "{d:?}");
            assert_eq!(r.host, d.host, "{d:?}");
            let addr = r.addr_ip().map(|a| a.to_string());
            let want = if d.addr == "0.0.0.0" {
                None
            } else {
                Some(d.addr.to_owned())
            };
            assert_eq!(addr, want, "{d:?}");
            assert_eq!(
                r.timestamp().map(|t| t.as_micros()),
                Some(d.micros),
                "{d:?}"
            );
        }
        recs.len()
    }

    #[test]
    fn wtmp_fixture_matches_utmpdump() {
        assert_eq!(check_against_dump(WTMP, WTMP_DUMP), 20);
    }

    #[test]
    fn btmp_fixture_matches_utmpdump() {
        assert_eq!(check_against_dump(BTMP, BTMP_DUMP), 47);
    }

    #[test]
    fn wtmp_events() {
        let dump = dump_lines(WTMP_DUMP);
        let mut opens = 0;
        let mut closes = 0;
        for (r, d) in records(WTMP).zip(&dump) {
            let e = to_event(&r, UtmpFile::Wtmp).unwrap();
            assert_eq!(e.tty, Some(Text(d.line.as_bytes())));
            assert_eq!(e.pid, Some(d.pid as u32));
            assert_eq!(e.timestamp.map(|t| t.as_micros()), Some(d.micros));
            match d.ut_type {
                7 => {
                    opens += 1;
                    assert_eq!(
                        (e.action, e.outcome),
                        (Action::SessionOpen, Outcome::Success)
                    );
                    assert_eq!(e.user, Some(Text(d.user.as_bytes())));
                    if d.host.is_empty() {
                        assert_eq!(e.source, None);
                        assert_eq!(e.program, "login");
                    } else {
                        let ip: IpAddr = d.host.parse().unwrap();
                        assert_eq!(e.source, Some(Source::Ip(ip)));
                        assert_eq!(e.program, "sshd");
                    }
                }
                8 => {
                    closes += 1;
                    assert_eq!(
                        (e.action, e.outcome),
                        (Action::SessionClose, Outcome::Success)
                    );
                    assert_eq!(e.user, None);
                    assert_eq!(e.source, None);
                }
                t => panic!("unexpected type {t}"),
            }
        }
        assert_eq!((opens, closes), (10, 10));
    }

    #[test]
    fn wtmp_ipv6_and_ipv4_sources() {
        let evs: Vec<_> = records(WTMP)
            .filter_map(|r| to_event(&r, UtmpFile::Wtmp))
            .collect();
        let v6 = evs
            .iter()
            .find(|e| e.source == Some(Source::Ip("::1".parse().unwrap())))
            .unwrap();
        assert_eq!(v6.user, Some(Text(b"atalice")));
        assert!(
            evs.iter()
                .any(|e| e.source == Some(Source::Ip("127.0.0.52".parse().unwrap())))
        );
    }

    #[test]
    fn btmp_events() {
        let dump = dump_lines(BTMP_DUMP);
        for (r, d) in records(BTMP).zip(&dump) {
            let e = to_event(&r, UtmpFile::Btmp).unwrap();
            assert_eq!(
                (e.action, e.outcome),
                (Action::AuthFailure, Outcome::Failure),
                "{d:?}"
            );
            assert_eq!(e.tty, Some(Text(d.line.as_bytes())));
            let want_user = if d.user == "UNKNOWN" {
                None
            } else {
                Some(Text(d.user.as_bytes()))
            };
            assert_eq!(e.user, want_user, "{d:?}");
            if d.line.starts_with("ssh:") {
                assert_eq!(e.program, "sshd");
                let ip: IpAddr = d.host.parse().unwrap();
                assert_eq!(e.source, Some(Source::Ip(ip)));
            } else {
                assert_eq!(e.program, "login");
                assert_eq!(e.source, None);
            }
        }
        // The 32-byte user name fills its field: no NUL, cut where sshd cut it.
        let long = records(BTMP)
            .find(|r| r.user.as_bytes().starts_with(b"test from"))
            .unwrap();
        assert_eq!(long.user, "test from 10.10.1.2 port 55555 s");
    }

    #[test]
    fn btmp_records_are_not_wtmp_events_and_back() {
        // A btmp LOGIN_PROCESS record read as wtmp is not a login.
        let r = records(BTMP).find(|r| r.ut_type == 6).unwrap();
        assert_eq!(to_event(&r, UtmpFile::Wtmp), None);
        // A wtmp logout read as btmp is not a failure.
        let r = records(WTMP).find(|r| r.ut_type == 8).unwrap();
        assert_eq!(to_event(&r, UtmpFile::Btmp), None);
    }

    fn record(ut_type: i16, user: &[u8], line: &[u8], host: &[u8], addr: [u8; 16]) -> [u8; 384] {
        let mut b = [0u8; RECORD_LEN];
        b[0..2].copy_from_slice(&ut_type.to_le_bytes());
        b[4..8].copy_from_slice(&1234i32.to_le_bytes());
        b[OFF_LINE..OFF_LINE + line.len()].copy_from_slice(line);
        b[OFF_USER..OFF_USER + user.len()].copy_from_slice(user);
        b[OFF_HOST..OFF_HOST + host.len()].copy_from_slice(host);
        b[OFF_TV_SEC..OFF_TV_SEC + 4].copy_from_slice(&1_700_000_000i32.to_le_bytes());
        b[OFF_ADDR..OFF_ADDR + 16].copy_from_slice(&addr);
        b
    }

    #[test]
    fn boot_and_run_level_records_are_not_events() {
        for t in [0, 1, 2, 3, 4, 5, 9, 42, -1] {
            let b = record(t, b"reboot", b"~", b"6.1.0-28-amd64", [0; 16]);
            let r = parse_record(&b).unwrap();
            assert_eq!(to_event(&r, UtmpFile::Wtmp), None, "type {t}");
            assert_eq!(to_event(&r, UtmpFile::Btmp), None, "type {t}");
        }
        let b = record(2, b"reboot", b"~", b"6.1.0-28-amd64", [0; 16]);
        assert_eq!(
            parse_record(&b).unwrap().record_type(),
            RecordType::BootTime
        );
    }

    #[test]
    fn host_name_and_ipv6_first_word_only() {
        let b = record(7, b"bob", b"pts/4", b"client.example.org", [0; 16]);
        let e = to_event(&parse_record(&b).unwrap(), UtmpFile::Wtmp).unwrap();
        assert_eq!(e.source, Some(Source::Domain(Text(b"client.example.org"))));
        assert_eq!(e.program, "sshd");

        // 2001:db8:: has only its first 32 bits set: the host text decides.
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        let b = record(7, b"bob", b"pts/4", b"2001:db8::", a);
        let e = to_event(&parse_record(&b).unwrap(), UtmpFile::Wtmp).unwrap();
        assert_eq!(e.source, Some(Source::Ip("2001:db8::".parse().unwrap())));
        let b = record(7, b"bob", b"pts/4", b"", a);
        let e = to_event(&parse_record(&b).unwrap(), UtmpFile::Wtmp).unwrap();
        assert_eq!(e.source, Some(Source::Ip("32.1.13.184".parse().unwrap())));

        // IPv4-mapped folds to IPv4; a display name is no source.
        let mut m = [0u8; 16];
        m[10] = 0xff;
        m[11] = 0xff;
        m[12..].copy_from_slice(&[192, 0, 2, 7]);
        let b = record(7, b"bob", b"pts/4", b":0", m);
        let e = to_event(&parse_record(&b).unwrap(), UtmpFile::Wtmp).unwrap();
        assert_eq!(e.source, Some(Source::Ip("192.0.2.7".parse().unwrap())));
        let b = record(7, b"bob", b"tty7", b":0", [0; 16]);
        let e = to_event(&parse_record(&b).unwrap(), UtmpFile::Wtmp).unwrap();
        assert_eq!((e.source, e.program), (None, Text(b"login")));
    }

    #[test]
    fn wrong_length_is_an_error() {
        for len in [0, 1, 383, 385, 768] {
            let v = vec![0u8; len];
            assert_eq!(parse_record(&v), Err(UtmpError::WrongLength { len }));
        }
        assert_eq!(
            UtmpError::WrongLength { len: 3 }.to_string(),
            "utmp record is 3 bytes, expected 384"
        );
    }

    #[test]
    fn partial_trailing_record_is_left_over() {
        let mut v = WTMP[..2 * RECORD_LEN + 100].to_vec();
        v.push(0);
        let mut it = records(&v);
        assert_eq!(it.by_ref().count(), 2);
        assert_eq!(it.remainder().len(), 101);
    }

    #[test]
    fn times_past_2038_and_bad_usec() {
        let mut b = record(7, b"bob", b"pts/1", b"", [0; 16]);
        b[OFF_TV_SEC..OFF_TV_SEC + 4].copy_from_slice(&0x9000_0000u32.to_le_bytes());
        let r = parse_record(&b).unwrap();
        assert_eq!(r.timestamp().unwrap().secs, 0x9000_0000);
        b[OFF_TV_USEC..OFF_TV_USEC + 4].copy_from_slice(&1_000_000i32.to_le_bytes());
        assert_eq!(parse_record(&b).unwrap().timestamp(), None);
    }

    #[test]
    fn file_kind_from_name() {
        assert_eq!(UtmpFile::from_file_name(b"btmp.1"), UtmpFile::Btmp);
        assert_eq!(UtmpFile::from_file_name(b"wtmp"), UtmpFile::Wtmp);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..800)) {
            for r in records(&bytes) {
                let _ = to_event(&r, UtmpFile::Wtmp);
                let _ = to_event(&r, UtmpFile::Btmp);
                let _ = r.source();
                let _ = r.timestamp();
            }
            let _ = parse_record(&bytes);
        }
    }
}
