//! Calendar arithmetic and syslog timestamps, in UTC. Self-written so that loggen has no
//! dependencies and the output for a seed is fixed.

use crate::Format;

pub(crate) const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// (year, month 1..=12, day 1..=31) for days since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, valid for the whole `i64` range we can reach).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Writes syslog timestamps, caching the part that only changes once a second.
#[derive(Debug)]
pub(crate) struct Stamp {
    format: Format,
    cached_sec: Option<i64>,
    /// `Nov 28 06:49:30 ` (RFC 3164) or `2026-11-28T06:55:33.` (RFC 3339).
    prefix: Vec<u8>,
}

impl Stamp {
    pub(crate) fn new(format: Format) -> Self {
        Self {
            format,
            cached_sec: None,
            prefix: Vec::with_capacity(32),
        }
    }

    /// Appends the timestamp for `unix_us` (microseconds since the epoch) and one space.
    pub(crate) fn write(&mut self, buf: &mut Vec<u8>, unix_us: i64) {
        let sec = unix_us.div_euclid(1_000_000);
        if self.cached_sec != Some(sec) {
            self.fill_prefix(sec);
            self.cached_sec = Some(sec);
        }
        buf.extend_from_slice(&self.prefix);
        if self.format == Format::Rfc3339 {
            let micros = unix_us.rem_euclid(1_000_000) as u32;
            push_digits(buf, micros, 6);
            buf.extend_from_slice(b"+00:00 ");
        }
    }

    fn fill_prefix(&mut self, sec: i64) {
        let (year, month, day) = civil_from_days(sec.div_euclid(86_400));
        let sod = sec.rem_euclid(86_400) as u32;
        let (h, m, s) = (sod / 3600, sod / 60 % 60, sod % 60);
        let p = &mut self.prefix;
        p.clear();
        match self.format {
            Format::Rfc3164 => {
                p.extend_from_slice(MONTHS[month as usize - 1].as_bytes());
                p.push(b' ');
                // The day is space-padded: `Nov  8`.
                if day < 10 {
                    p.push(b' ');
                }
                push_digits(p, day, if day < 10 { 1 } else { 2 });
                p.push(b' ');
                push_hms(p, h, m, s);
                p.push(b' ');
            }
            Format::Rfc3339 => {
                // Years outside 0..=9999 cannot be written in RFC 3339; clamp rather than
                // print something no parser accepts.
                push_digits(p, year.clamp(0, 9999) as u32, 4);
                p.push(b'-');
                push_digits(p, month, 2);
                p.push(b'-');
                push_digits(p, day, 2);
                p.push(b'T');
                push_hms(p, h, m, s);
                p.push(b'.');
            }
        }
    }
}

fn push_hms(buf: &mut Vec<u8>, h: u32, m: u32, s: u32) {
    push_digits(buf, h, 2);
    buf.push(b':');
    push_digits(buf, m, 2);
    buf.push(b':');
    push_digits(buf, s, 2);
}

/// Appends `value` as exactly `width` zero-padded decimal digits (the high digits are
/// dropped if `value` does not fit).
fn push_digits(buf: &mut Vec<u8>, mut value: u32, width: usize) {
    let start = buf.len();
    buf.resize(start + width, b'0');
    for slot in buf[start..].iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(format: Format, unix_us: i64) -> String {
        let mut buf = Vec::new();
        Stamp::new(format).write(&mut buf, unix_us);
        String::from_utf8(buf).expect("ascii")
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(
            civil_from_days(crate::DEFAULT_START / 86_400),
            (2026, 11, 28)
        );
    }

    #[test]
    fn rfc3164_pads_the_day_with_a_space() {
        // 2026-11-08T06:49:30Z
        let t = (crate::DEFAULT_START - 20 * 86_400 + 6 * 3600 + 49 * 60 + 30) * 1_000_000;
        assert_eq!(stamp(Format::Rfc3164, t), "Nov  8 06:49:30 ");
        let t = (crate::DEFAULT_START + 6 * 3600 + 49 * 60 + 30) * 1_000_000 + 999;
        assert_eq!(stamp(Format::Rfc3164, t), "Nov 28 06:49:30 ");
    }

    #[test]
    fn rfc3339_has_microseconds_and_offset() {
        let t = (crate::DEFAULT_START + 6 * 3600 + 55 * 60 + 33) * 1_000_000 + 434_531;
        assert_eq!(
            stamp(Format::Rfc3339, t),
            "2026-11-28T06:55:33.434531+00:00 "
        );
        assert_eq!(
            stamp(Format::Rfc3339, 5),
            "1970-01-01T00:00:00.000005+00:00 "
        );
    }

    #[test]
    fn cache_follows_the_second() {
        let mut s = Stamp::new(Format::Rfc3164);
        let mut buf = Vec::new();
        s.write(&mut buf, 59_999_999);
        s.write(&mut buf, 60_000_000);
        assert_eq!(buf, b"Jan  1 00:00:59 Jan  1 00:01:00 ");
    }
}
