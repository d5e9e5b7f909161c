//! Field readers shared by the family parsers: addresses, ports, numbers, `key=value` pairs, and
//! the "last `from <addr> port <n>` wins" rule that keeps a hostile user name from planting a
//! fake source address.

use core::net::{IpAddr, Ipv6Addr};

use crate::event::{Source, non_empty};
use crate::text::Text;

/// Longest textual IP address with a zone (`ffff:...:255.255.255.255%` + an interface name).
const MAX_IP_TEXT: usize = 45 + 1 + 16;

/// Parses an IPv4 or IPv6 address. An IPv6 zone (`fe80::1%eth0`) is accepted and dropped; an
/// IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) is folded to IPv4 so one client has one address.
pub(crate) fn parse_ip(b: &[u8]) -> Option<IpAddr> {
    if b.is_empty() || b.len() > MAX_IP_TEXT {
        return None;
    }
    // `[::1]` as some daemons write it.
    let b = match b {
        [b'[', inner @ .., b']'] => inner,
        _ => b,
    };
    let &first = b.first()?;
    if !(first.is_ascii_hexdigit() || first == b':') {
        return None;
    }
    // Most addresses in auth logs are IPv4: read them without going through `str`.
    if let Some(v4) = parse_ipv4_fast(b) {
        return Some(IpAddr::V4(v4));
    }
    let addr = match memchr::memchr(b'%', b) {
        Some(i) => {
            let zone = &b[i + 1..];
            if zone.is_empty() || !zone.iter().all(|c| c.is_ascii_graphic()) {
                return None;
            }
            let v6: Ipv6Addr = core::str::from_utf8(&b[..i]).ok()?.parse().ok()?;
            IpAddr::V6(v6)
        }
        None => core::str::from_utf8(b).ok()?.parse().ok()?,
    };
    Some(fold_mapped(addr))
}

/// A dotted-quad IPv4 address (no leading zeros beyond a lone `0`, as `core`'s parser
/// requires), or `None` for anything else (which the caller hands to the full parser).
#[inline]
fn parse_ipv4_fast(b: &[u8]) -> Option<core::net::Ipv4Addr> {
    if b.len() > 15 {
        return None;
    }
    let mut octets = [0u8; 4];
    let mut i = 0;
    for (n, octet) in octets.iter_mut().enumerate() {
        let start = i;
        let mut v: u16 = 0;
        while let Some(&c) = b.get(i) {
            if !c.is_ascii_digit() {
                break;
            }
            v = v * 10 + u16::from(c - b'0');
            i += 1;
            if i - start > 3 {
                return None;
            }
        }
        let digits = i - start;
        if digits == 0 || v > 255 || (digits > 1 && b[start] == b'0') {
            return None;
        }
        *octet = v as u8;
        if n < 3 {
            if b.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
    }
    (i == b.len()).then_some(core::net::Ipv4Addr::from(octets))
}

/// `::ffff:a.b.c.d` -> `a.b.c.d`.
#[inline]
pub(crate) fn fold_mapped(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// An address, or else a plausible DNS name (letters, digits, `-`, `.`, `_`), as sshd logs a
/// client when `UseDNS` resolved one. Anything else is rejected.
pub(crate) fn parse_source(b: &[u8]) -> Option<Source<'_>> {
    if let Some(ip) = parse_ip(b) {
        return Some(Source::Ip(ip));
    }
    if is_host_name(b) {
        return Some(Source::Domain(Text(b)));
    }
    None
}

/// A DNS name as a resolver would return it: 1..=253 bytes of `[A-Za-z0-9._-]`, with at least
/// one letter (so a mangled address like `1.2.3` is not taken for a name).
pub(crate) fn is_host_name(b: &[u8]) -> bool {
    !b.is_empty()
        && b.len() <= 253
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_'))
        && b.iter().any(u8::is_ascii_alphabetic)
        && b[0] != b'.'
        && b[0] != b'-'
}

/// A port number: decimal, 0..=65535.
#[inline]
pub(crate) fn parse_port(b: &[u8]) -> Option<u16> {
    if b.is_empty() || b.len() > 5 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut n: u32 = 0;
    for &c in b {
        n = n * 10 + u32::from(c - b'0');
    }
    u16::try_from(n).ok()
}

/// A decimal u32.
#[inline]
pub(crate) fn parse_u32(b: &[u8]) -> Option<u32> {
    crate::syslog::parse_u32(b)
}

/// Where a message's client is: what comes before it, the source, and the port if given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tail<'a> {
    /// Everything before ` from ` (or before the address when `from` is absent).
    pub head: &'a [u8],
    /// The client.
    pub source: Source<'a>,
    /// The client's port.
    pub port: Option<u16>,
}

/// Splits `<head> from <addr> port <port>` (the tail must end the input; strip `ssh2`,
/// `[preauth]` and similar first). The *last* ` from ` is taken, so a user name such as
/// `x from 10.0.0.1 port 1` cannot plant a source.
pub(crate) fn split_from_port(s: &[u8]) -> Option<Tail<'_>> {
    let (before_port, port) = rsplit_once(s, b" port ")?;
    let port = parse_port(port)?;
    let (head, addr) = rsplit_once(before_port, b" from ")?;
    Some(Tail {
        head,
        source: parse_source(addr)?,
        port: Some(port),
    })
}

/// Splits `<head> <addr> port <port>` (sshd's `Connection closed by authenticating user U
/// <addr> port <port>` form, no `from`). The address is the last word before ` port `.
pub(crate) fn split_addr_port(s: &[u8]) -> Option<Tail<'_>> {
    let (before_port, port) = rsplit_once(s, b" port ")?;
    let port = parse_port(port)?;
    let (head, addr) = match memchr::memrchr(b' ', before_port) {
        Some(i) => (&before_port[..i], &before_port[i + 1..]),
        None => (&b""[..], before_port),
    };
    Some(Tail {
        head,
        source: parse_source(addr)?,
        port: Some(port),
    })
}

/// Splits `<head> from <addr>` with no port (the last ` from `).
pub(crate) fn split_from(s: &[u8]) -> Option<Tail<'_>> {
    let (head, addr) = rsplit_once(s, b" from ")?;
    Some(Tail {
        head,
        source: parse_source(addr)?,
        port: None,
    })
}

/// Splits at the last occurrence of `needle`.
#[inline]
pub(crate) fn rsplit_once<'a>(s: &'a [u8], needle: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    // Log lines are short and needles are a few bytes: scanning back for the needle's first
    // byte beats building a memmem searcher for every call.
    let (&first, rest) = needle.split_first()?;
    let i = memchr::memrchr_iter(first, s).find(|&i| s[i + 1..].starts_with(rest))?;
    Some((&s[..i], &s[i + needle.len()..]))
}

/// Splits at the first occurrence of `needle`.
#[inline]
pub(crate) fn split_once<'a>(s: &'a [u8], needle: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    let (&first, rest) = needle.split_first()?;
    let i = memchr::memchr_iter(first, s).find(|&i| s[i + 1..].starts_with(rest))?;
    Some((&s[..i], &s[i + needle.len()..]))
}

/// Splits off the first space-separated word.
#[inline]
pub(crate) fn word(s: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memchr(b' ', s) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, &[]),
    }
}

/// Strips a suffix if present.
#[inline]
pub(crate) fn strip_suffix<'a>(s: &'a [u8], suffix: &[u8]) -> &'a [u8] {
    s.strip_suffix(suffix).unwrap_or(s)
}

/// The value of `key=` in a PAM-style `k1=v1 k2=v2` list: up to the next space, or `None` if the
/// key is absent. `key` includes the `=`. The match must start the list or follow a space.
pub(crate) fn kv<'a>(s: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let mut from = 0;
    while let Some(i) = memchr::memmem::find(&s[from..], key) {
        let at = from + i;
        if at == 0 || matches!(s[at - 1], b' ' | b';' | b'\t') {
            let value = &s[at + key.len()..];
            let end = memchr::memchr(b' ', value).unwrap_or(value.len());
            return Some(&value[..end]);
        }
        from = at + key.len();
    }
    None
}

/// A user field, `None` when empty.
#[inline]
pub(crate) fn user(b: &[u8]) -> Option<Text<'_>> {
    non_empty(b)
}

/// An IPv4 address, for tests.
#[cfg(test)]
pub(crate) const fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(core::net::Ipv4Addr::new(a, b, c, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brackets around nothing are no address, not a panic: sshd writes `[addr]`, and any
    /// local user can write `sshd: Connection reset by [] port 22` to syslog with `logger`.
    #[test]
    fn empty_brackets_are_no_address() {
        for b in [&b"[]"[..], b"[", b"]", b"[[]]", b"[%]"] {
            assert_eq!(parse_ip(b), None, "{:?}", String::from_utf8_lossy(b));
        }
        let line = b"Dec  5 10:00:00 host sshd[1]: Connection reset by [] port 22 [preauth]";
        let ctx = crate::syslog::Context::new(crate::Timestamp::from_secs(1_764_928_800));
        let _ = crate::parse_line(line, &ctx);
    }

    #[test]
    fn ip_forms() {
        assert_eq!(parse_ip(b"10.0.0.1"), Some(v4(10, 0, 0, 1)));
        assert_eq!(parse_ip(b"::ffff:192.0.2.7"), Some(v4(192, 0, 2, 7)));
        assert_eq!(
            parse_ip(b"fe80::1%eth0"),
            Some(IpAddr::V6("fe80::1".parse().unwrap()))
        );
        assert_eq!(parse_ip(b"[::1]"), Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        assert_eq!(parse_ip(b"fe80::1%"), None);
        assert_eq!(parse_ip(b"300.1.1.1"), None);
        assert_eq!(parse_ip(b"host.example"), None);
        assert_eq!(parse_ip(b""), None);
    }

    #[test]
    fn source_names() {
        assert_eq!(
            parse_source(b"gw.example.net"),
            Some(Source::Domain(Text(b"gw.example.net")))
        );
        assert_eq!(parse_source(b"1.2.3"), None);
        assert_eq!(parse_source(b"a b"), None);
        assert_eq!(parse_source(b"x\xff"), None);
    }

    #[test]
    fn last_from_wins() {
        let t = split_from_port(
            b"invalid user test from 10.10.1.2 port 55555 ssh2 from 127.0.0.1 port 58946",
        )
        .unwrap();
        assert_eq!(t.source, Source::Ip(v4(127, 0, 0, 1)));
        assert_eq!(t.port, Some(58946));
        assert_eq!(t.head, b"invalid user test from 10.10.1.2 port 55555 ssh2");
    }

    #[test]
    fn fast_ipv4_agrees_with_core() {
        for text in [
            "0.0.0.0",
            "1.2.3.4",
            "255.255.255.255",
            "256.1.1.1",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.5",
            "1..3.4",
            "1.2.3.4 ",
            "1234.1.1.1",
            "10.0.0.01",
            "192.168.001.1",
            "1.2.3.a",
        ] {
            let core: Option<core::net::Ipv4Addr> = text.parse().ok();
            assert_eq!(parse_ipv4_fast(text.as_bytes()), core, "{text}");
        }
    }

    #[test]
    fn splits_find_the_right_occurrence() {
        assert_eq!(
            rsplit_once(b"a from b from c", b" from "),
            Some((&b"a from b"[..], &b"c"[..]))
        );
        assert_eq!(
            split_once(b"a from b from c", b" from "),
            Some((&b"a"[..], &b"b from c"[..]))
        );
        assert_eq!(rsplit_once(b"  port", b" port "), None);
        assert_eq!(
            rsplit_once(b"x port ", b" port "),
            Some((&b"x"[..], &b""[..]))
        );
        assert_eq!(split_once(b"", b" "), None);
    }

    #[test]
    fn port_bounds() {
        assert_eq!(parse_port(b"65535"), Some(65535));
        assert_eq!(parse_port(b"65536"), None);
        assert_eq!(parse_port(b"-1"), None);
        assert_eq!(parse_port(b""), None);
    }

    #[test]
    fn kv_pairs() {
        let s = b"logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.5  user=root";
        assert_eq!(kv(s, b"rhost="), Some(&b"203.0.113.5"[..]));
        assert_eq!(kv(s, b"ruser="), Some(&b""[..]));
        assert_eq!(kv(s, b"uid="), Some(&b"0"[..]));
        assert_eq!(kv(s, b"user="), Some(&b"root"[..]));
        assert_eq!(kv(s, b"nope="), None);
    }
}
