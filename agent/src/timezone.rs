//! The zone that zone-less log timestamps (`Nov 28 06:49:30`) are written in.
//!
//! syslog daemons write RFC 3164 timestamps in the host's local time. `local` asks the system's
//! time zone database (via `jiff`) for the offset in force at the reference time; a fixed offset
//! or `UTC` can be given instead.

use std::fmt;
use std::str::FromStr;

use agent_core::Timestamp;

/// How to read zone-less timestamps. In the config file: `local`, `UTC` or `+HH:MM`, checked
/// when the file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Zone {
    /// The host's zone (`/etc/localtime`, `TZ`).
    #[default]
    Local,
    /// A fixed offset, seconds east of UTC (`UTC` is 0).
    Fixed(i32),
}

impl Zone {
    /// Seconds east of UTC in force at `at`.
    pub fn offset_at(&self, at: Timestamp) -> i32 {
        match self {
            Zone::Fixed(s) => *s,
            Zone::Local => {
                let tz = jiff::tz::TimeZone::system();
                match jiff::Timestamp::from_second(at.secs) {
                    Ok(ts) => tz.to_offset(ts).seconds(),
                    Err(_) => 0,
                }
            }
        }
    }
}

/// A `--timezone` value that is not `local`, `UTC` or `+HH:MM`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected `local`, `UTC` or an offset like `+01:00` or `-0530`, found {0:?}")]
pub struct ZoneError(String);

impl TryFrom<String> for Zone {
    type Error = ZoneError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<Zone> for String {
    fn from(zone: Zone) -> String {
        zone.to_string()
    }
}

impl FromStr for Zone {
    type Err = ZoneError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ZoneError(s.to_owned());
        if s.eq_ignore_ascii_case("local") {
            return Ok(Zone::Local);
        }
        if s.eq_ignore_ascii_case("utc") || s == "Z" {
            return Ok(Zone::Fixed(0));
        }
        let (sign, rest) = match s.as_bytes().first() {
            Some(b'+') => (1, &s[1..]),
            Some(b'-') => (-1, &s[1..]),
            _ => return Err(err()),
        };
        let digits: String = rest.chars().filter(|c| *c != ':').collect();
        if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let h: i32 = digits[..2].parse().map_err(|_| err())?;
        let m: i32 = digits[2..].parse().map_err(|_| err())?;
        if h > 23 || m > 59 {
            return Err(err());
        }
        Ok(Zone::Fixed(sign * (h * 3600 + m * 60)))
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Zone::Local => f.write_str("local"),
            Zone::Fixed(0) => f.write_str("UTC"),
            Zone::Fixed(s) => {
                let sign = if *s < 0 { '-' } else { '+' };
                let a = s.unsigned_abs();
                write!(f, "{sign}{:02}:{:02}", a / 3600, a % 3600 / 60)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_zone_forms() {
        assert_eq!("local".parse::<Zone>(), Ok(Zone::Local));
        assert_eq!("UTC".parse::<Zone>(), Ok(Zone::Fixed(0)));
        assert_eq!("+01:00".parse::<Zone>(), Ok(Zone::Fixed(3600)));
        assert_eq!("-0530".parse::<Zone>(), Ok(Zone::Fixed(-19800)));
        assert!("+25:00".parse::<Zone>().is_err());
        assert!("Europe/Paris".parse::<Zone>().is_err());
        assert_eq!(Zone::Fixed(-19800).to_string(), "-05:30");
    }
}
