//! Time without a clock: [`Timestamp`], calendar arithmetic, and the year inference that
//! year-less syslog lines need.
//!
//! RFC 3164 lines (`Nov 28 06:49:30 ...`) carry no year and no zone. The caller passes a
//! reference time (normally "now", or the file's modification time) and the zone the writer used;
//! [`infer_year`] picks the year that puts the event nearest to the reference, so a December line
//! read in January lands in the previous year.

use core::fmt;

/// A point in time, UTC: seconds since the Unix epoch and nanoseconds within the second.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    /// Seconds since 1970-01-01T00:00:00Z (negative before).
    pub secs: i64,
    /// Nanoseconds, `0..1_000_000_000`.
    pub nanos: u32,
}

/// Seconds in a day.
const DAY: i64 = 86_400;

impl Timestamp {
    /// A timestamp from whole seconds.
    #[inline]
    pub const fn from_secs(secs: i64) -> Self {
        Timestamp { secs, nanos: 0 }
    }

    /// A timestamp from Unix microseconds (journald's `__REALTIME_TIMESTAMP`).
    #[inline]
    pub const fn from_micros(micros: i64) -> Self {
        Timestamp {
            secs: micros.div_euclid(1_000_000),
            nanos: (micros.rem_euclid(1_000_000) * 1_000) as u32,
        }
    }

    /// Unix microseconds.
    #[inline]
    pub const fn as_micros(&self) -> i64 {
        self.secs
            .saturating_mul(1_000_000)
            .saturating_add((self.nanos / 1_000) as i64)
    }

    /// Builds a timestamp from a civil date and time in a zone `offset` seconds east of UTC.
    /// Returns `None` for an impossible date or time (Feb 30, 25:00, a leap second is allowed
    /// as `:60` and folded into the next second).
    pub fn from_civil(civil: &Civil, offset: i32) -> Option<Self> {
        if !civil.is_valid() {
            return None;
        }
        let days = days_from_civil(civil.year, civil.month, civil.day);
        let secs = days * DAY
            + i64::from(civil.hour) * 3600
            + i64::from(civil.minute) * 60
            + i64::from(civil.second)
            - i64::from(offset);
        Some(Timestamp {
            secs,
            nanos: civil.nanos,
        })
    }

    /// The civil date and time in UTC.
    pub fn to_civil(&self) -> Civil {
        let days = self.secs.div_euclid(DAY);
        let rem = self.secs.rem_euclid(DAY);
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: (rem / 3600) as u8,
            minute: (rem % 3600 / 60) as u8,
            second: (rem % 60) as u8,
            nanos: self.nanos,
        }
    }

    /// A [`Display`](fmt::Display) adapter printing RFC 3339 in UTC (`2026-11-28T06:49:30Z`,
    /// with 3, 6 or 9 fraction digits when the time has them).
    #[inline]
    pub const fn rfc3339(&self) -> Rfc3339 {
        Rfc3339(*self)
    }
}

/// Prints a [`Timestamp`] as RFC 3339 UTC; see [`Timestamp::rfc3339`].
#[derive(Clone, Copy, Debug)]
pub struct Rfc3339(Timestamp);

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.0.to_civil();
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            c.year, c.month, c.day, c.hour, c.minute, c.second
        )?;
        match fraction(c.nanos) {
            (_, 0) => {}
            (value, digits) => write!(f, ".{value:0digits$}")?,
        }
        f.write_str("Z")
    }
}

/// The fraction of a second as RFC 3339 output writes it: (value, digits), with no digits for a
/// whole second, else the fewest of 3, 6 or 9 that hold `nanos` exactly (at most 999,999,999).
pub(crate) const fn fraction(nanos: u32) -> (u32, usize) {
    let n = if nanos > 999_999_999 {
        999_999_999
    } else {
        nanos
    };
    if n == 0 {
        (0, 0)
    } else if n.is_multiple_of(1_000_000) {
        (n / 1_000_000, 3)
    } else if n.is_multiple_of(1_000) {
        (n / 1_000, 6)
    } else {
        (n, 9)
    }
}

/// A civil (calendar) date and time, without a zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Civil {
    /// Proleptic Gregorian year.
    pub year: i32,
    /// 1..=12
    pub month: u8,
    /// 1..=31
    pub day: u8,
    /// 0..=23
    pub hour: u8,
    /// 0..=59
    pub minute: u8,
    /// 0..=60 (60 is a leap second)
    pub second: u8,
    /// 0..1_000_000_000
    pub nanos: u32,
}

impl Civil {
    /// True when the fields name a real date and time.
    pub fn is_valid(&self) -> bool {
        (1..=12).contains(&self.month)
            && self.day >= 1
            && self.day <= days_in_month(self.year, self.month)
            && self.hour < 24
            && self.minute < 60
            && self.second <= 60
            && self.nanos < 1_000_000_000
            && (-9999..=9999).contains(&self.year)
    }
}

/// True for a Gregorian leap year.
#[inline]
pub(crate) const fn is_leap_year(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Days in `month` (1..=12) of `year`; 0 for a month out of range.
pub(crate) const fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (era arithmetic: 400-year cycles).
pub const fn days_from_civil(year: i32, month: u8, day: u8) -> i64 {
    let y = year as i64 - if month <= 2 { 1 } else { 0 };
    let era = y.div_euclid(400);
    let yoe = y - era * 400; // 0..=399
    let m = month as i64;
    let mp = (m + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + day as i64 - 1; // 0..=365
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // 0..=146096
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
pub(crate) const fn civil_from_days(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = (yoe + era * 400 + if month <= 2 { 1 } else { 0 }) as i32;
    (year, month, day)
}

/// Completes a year-less civil time (`civil.year` is ignored) with the year that puts it nearest
/// to `reference`, trying the reference's own year and the ones either side. `offset` is the
/// writer's zone, seconds east of UTC. `None` when no candidate year makes a valid date (a
/// Feb 29 near no leap year, or garbage).
pub(crate) fn infer_year(civil: &Civil, offset: i32, reference: Timestamp) -> Option<Timestamp> {
    let ref_year = Timestamp::from_secs(reference.secs.saturating_add(i64::from(offset)))
        .to_civil()
        .year;
    // Within half a year of the reference, the reference's own year is the nearest: the other
    // candidates are at least half a year further away. This is the common case.
    if let Some(ts) = Timestamp::from_civil(
        &Civil {
            year: ref_year,
            ..*civil
        },
        offset,
    ) && ts.secs.abs_diff(reference.secs) <= 182 * DAY as u64
    {
        return Some(ts);
    }
    let mut best: Option<(u64, Timestamp)> = None;
    for year in [
        ref_year.saturating_sub(1),
        ref_year,
        ref_year.saturating_add(1),
    ] {
        let candidate = Civil { year, ..*civil };
        if let Some(ts) = Timestamp::from_civil(&candidate, offset) {
            let distance = ts.secs.abs_diff(reference.secs);
            if best.is_none_or(|(d, _)| distance < d) {
                best = Some((distance, ts));
            }
        }
    }
    best.map(|(_, ts)| ts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn civil(y: i32, mo: u8, d: u8, h: u8, mi: u8, s: u8) -> Civil {
        Civil {
            year: y,
            month: mo,
            day: d,
            hour: h,
            minute: mi,
            second: s,
            nanos: 0,
        }
    }

    #[test]
    fn civil_round_trip_over_many_days() {
        for days in (-800_000i64..800_000).step_by(37) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn known_timestamp() {
        let ts = Timestamp::from_civil(&civil(2026, 11, 28, 6, 49, 30), 0).unwrap();
        assert_eq!(ts.secs, 1_795_848_570);
        assert_eq!(format!("{}", ts.rfc3339()), "2026-11-28T06:49:30Z");
        let ts = Timestamp {
            nanos: 434_531_000,
            ..ts
        };
        assert_eq!(format!("{}", ts.rfc3339()), "2026-11-28T06:49:30.434531Z");
    }

    #[test]
    fn offset_is_subtracted() {
        let utc = Timestamp::from_civil(&civil(2026, 11, 28, 6, 0, 0), 0).unwrap();
        let cet = Timestamp::from_civil(&civil(2026, 11, 28, 7, 0, 0), 3600).unwrap();
        assert_eq!(utc, cet);
    }

    #[test]
    fn december_line_read_in_january_is_last_year() {
        let reference = Timestamp::from_civil(&civil(2027, 1, 2, 0, 0, 0), 0).unwrap();
        let ts = infer_year(&civil(0, 12, 31, 23, 59, 0), 0, reference).unwrap();
        assert_eq!(ts.to_civil().year, 2026);
        let ts = infer_year(&civil(0, 1, 1, 0, 1, 0), 0, reference).unwrap();
        assert_eq!(ts.to_civil().year, 2027);
    }

    #[test]
    fn january_line_read_in_december_is_next_year() {
        let reference = Timestamp::from_civil(&civil(2026, 12, 31, 23, 59, 0), 0).unwrap();
        let ts = infer_year(&civil(0, 1, 1, 0, 0, 5), 0, reference).unwrap();
        assert_eq!(ts.to_civil().year, 2027);
    }

    #[test]
    fn feb_29_picks_a_leap_year_or_none() {
        let reference = Timestamp::from_civil(&civil(2028, 3, 1, 0, 0, 0), 0).unwrap();
        let ts = infer_year(&civil(0, 2, 29, 12, 0, 0), 0, reference).unwrap();
        assert_eq!(ts.to_civil().year, 2028);
        let reference = Timestamp::from_civil(&civil(2026, 6, 1, 0, 0, 0), 0).unwrap();
        assert_eq!(infer_year(&civil(0, 2, 29, 12, 0, 0), 0, reference), None);
    }

    #[test]
    fn micros_round_trip() {
        let ts = Timestamp::from_micros(1_795_848_570_434_531);
        assert_eq!(ts.secs, 1_795_848_570);
        assert_eq!(ts.nanos, 434_531_000);
        assert_eq!(ts.as_micros(), 1_795_848_570_434_531);
    }
}
