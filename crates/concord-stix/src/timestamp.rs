//! STIX timestamps (STIX 2.1 §3.2): RFC 3339 (§5.6), UTC with a literal `Z`, any number of
//! fraction digits, kept exactly as written and compared at nanoseconds; every year from 0001 to 9999,
//! and leap seconds (`23:59:60`, RFC 3339 §5.7).

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A STIX 2.1 `timestamp` that remembers how it was written.
///
/// Ordering and equality compare the instant, so `2016-01-01T00:00:00Z` equals
/// `2016-01-01T00:00:00.000Z`; [`Timestamp::as_str`] and `Display` give back the original
/// text, so `.000Z` stays `.000Z` and nanoseconds stay.
///
/// Range: `0001-01-01T00:00:00Z` to `9999-12-31T23:59:60.999999999Z`, the whole range of
/// RFC 3339 §5.6 (a four-digit year; year 0000 is refused) — so the "never expires"
/// `valid_until: "9999-12-31T23:59:59Z"` of real feeds is a timestamp like any other. A leap
/// second (RFC 3339 §5.7: `23:59:60` on the last day of a month, UTC) sorts after `23:59:59`
/// and everything in it, and before the next day's `00:00:00`.
///
/// The instant is kept as whole seconds since the Unix epoch (`i64`, enough for ±292 billion
/// years) plus nanoseconds; a leap second counts as its minute's `:59` second with 1 s added
/// to the nanoseconds (`1_000_000_000..=1_999_999_999`), which gives the order above without
/// a table of leap seconds. Nanoseconds since 1970 in an `i64` (the earlier representation)
/// only reach 1677–2262, and have no place for a leap second.
#[derive(Clone, Debug)]
pub struct Timestamp {
    /// Seconds since 1970-01-01T00:00:00Z of the civil second (`:59` for a leap second).
    secs: i64,
    /// Nanoseconds into it; 1 s more in a leap second.
    nanos: u32,
    text: Box<str>,
}

/// Why a string is not a STIX timestamp. Each variant names the rule of STIX 2.1 §3.2 /
/// RFC 3339 §5.6 broken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// Not of the form `YYYY-MM-DDTHH:MM:SS[.s+]Z`.
    #[error("not an RFC 3339 timestamp of the form YYYY-MM-DDTHH:MM:SS[.fraction]Z")]
    Syntax,
    /// An offset other than a literal `Z` (STIX 2.1 §3.2: timestamps MUST be in UTC with `Z`).
    #[error("timestamp must be in UTC and end in 'Z'")]
    NotUtc,
    /// A date or time that does not exist, such as 30 February, hour 25, or second 60 other
    /// than at `23:59:60` on the last day of a month (RFC 3339 §5.7).
    #[error("no such date or time: {0}")]
    NoSuchDate(String),
    /// Year 0000 (RFC 3339 §5.6 has four-digit years; STIX and ISO 8601 without expansion
    /// start at 0001).
    #[error("year 0000 is outside the supported range 0001..9999")]
    OutOfRange,
}

/// Days from 1970-01-01 to the civil date (proleptic Gregorian calendar; Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count from 1970-01-01 (inverse of [`days_from_civil`]).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

const NANOS_PER_SEC: u32 = 1_000_000_000;

impl Timestamp {
    /// Parses a STIX timestamp. See [`TimestampError`] for what is refused.
    pub fn parse(text: &str) -> Result<Timestamp, TimestampError> {
        let b = text.as_bytes();
        let digits = |r: std::ops::Range<usize>| -> Result<u32, TimestampError> {
            let s = b.get(r).ok_or(TimestampError::Syntax)?;
            if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
                return Err(TimestampError::Syntax);
            }
            Ok(s.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')))
        };
        if b.len() < 19
            || b[4] != b'-'
            || b[7] != b'-'
            || !(b[10] == b'T' || b[10] == b't')
            || b[13] != b':'
            || b[16] != b':'
        {
            return Err(TimestampError::Syntax);
        }
        let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
        let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
        let mut rest = &b[19..];
        let mut nanos: u32 = 0;
        if rest.first() == Some(&b'.') {
            let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 {
                return Err(TimestampError::Syntax);
            }
            // STIX 2.1 §3.2 and RFC 3339 §5.6 allow any number of fraction digits (issue 24,
            // item 4: a real `valid_from` had ten). The text keeps them all; the instant
            // keeps the first nine (nanoseconds), so digits past them never change an order
            // or an equality, nor the store's sort key.
            for (i, d) in rest[1..=n].iter().take(9).enumerate() {
                nanos += u32::from(d - b'0') * 10u32.pow(8 - i as u32);
            }
            rest = &rest[n + 1..];
        }
        match rest {
            b"Z" => {}
            b"" => return Err(TimestampError::NotUtc),
            b"z" => return Err(TimestampError::NotUtc),
            [b'+' | b'-', ..] => return Err(TimestampError::NotUtc),
            _ => return Err(TimestampError::Syntax),
        }
        if year == 0 {
            return Err(TimestampError::OutOfRange);
        }
        let year = i64::from(year);
        let no_such = |what: String| Err(TimestampError::NoSuchDate(what));
        if !(1..=12).contains(&month) {
            return no_such(format!("month {month:02}"));
        }
        if day == 0 || day > days_in_month(year, month) {
            return no_such(format!("day {day:02} of {year:04}-{month:02}"));
        }
        if hour > 23 || minute > 59 || second > 60 {
            return no_such(format!("time {hour:02}:{minute:02}:{second:02}"));
        }
        let leap = second == 60;
        if leap && (hour, minute, day) != (23, 59, days_in_month(year, month)) {
            // RFC 3339 §5.7: in UTC a leap second is the last second of a month.
            return no_such(format!(
                "second 60 at {hour:02}:{minute:02} on {year:04}-{month:02}-{day:02}: a leap \
                 second (RFC 3339 §5.7) is 23:59:60 UTC on the last day of a month"
            ));
        }
        let secs = days_from_civil(year, month, day) * 86_400
            + i64::from(hour * 3600 + minute * 60 + second.min(59));
        Ok(Timestamp {
            secs,
            nanos: nanos + if leap { NANOS_PER_SEC } else { 0 },
            text: text.into(),
        })
    }

    /// A timestamp from nanoseconds since the Unix epoch (every `i64` is in range: 1677 to
    /// 2262), written with `digits` fraction digits (0..=9; 3 gives the millisecond form
    /// STIX requires of `created`/`modified`).
    pub fn from_unix_nanos(unix_nanos: i64, digits: u8) -> Timestamp {
        let digits = digits.min(9);
        let secs = unix_nanos.div_euclid(1_000_000_000);
        let nanos = unix_nanos.rem_euclid(1_000_000_000) as u32;
        // Truncate the instant to what is written so that parse(text) == self.
        let unit = 10u32.pow(9 - u32::from(digits));
        let nanos = nanos - nanos % unit;
        let mut t = Timestamp {
            secs,
            nanos,
            text: "".into(),
        };
        t.text = t.format(usize::from(digits)).into();
        t
    }

    /// The current time, with microsecond precision (what TAXII clients in Python can parse).
    pub fn now_micros() -> Timestamp {
        let n = i64::try_from(jiff::Timestamp::now().as_nanosecond()).unwrap_or(i64::MAX);
        Timestamp::from_unix_nanos(n, 6)
    }

    /// Nanoseconds since 1970-01-01T00:00:00Z, for arithmetic with clocks, `date_added` and
    /// log times (which are `i64` nanoseconds). Not exact over the whole range, but exact in
    /// comparisons with any instant that is such an `i64` and not in a leap second:
    ///
    /// - before 1677-09-21T00:12:43.145224192Z it is `i64::MIN`, after
    ///   2262-04-11T23:47:16.854775807Z `i64::MAX` (so `9999-12-31T23:59:59Z` is later than
    ///   every log time, and `0001-01-01T00:00:00Z` earlier);
    /// - a leap second `23:59:60.f` is the last nanosecond before the next day,
    ///   `23:59:59.999999999`: what is later than it is what is at or after `00:00:00`.
    ///
    /// Exact order between timestamps is [`Ord`]; as stored text, [`Timestamp::sort_key`].
    pub fn unix_nanos(&self) -> i64 {
        let nanos = if self.nanos >= NANOS_PER_SEC {
            NANOS_PER_SEC - 1
        } else {
            self.nanos
        };
        let n = i128::from(self.secs) * 1_000_000_000 + i128::from(nanos);
        n.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// The key under which the store keeps and orders this instant: the timestamp in
    /// ISO 8601 basic format, UTC, always nine fraction digits, e.g.
    /// `20161231T235960.500000000Z` — 26 ASCII bytes, so byte order (SQLite's `memcmp`,
    /// PostgreSQL's `"C"` collation) is time order over the whole range 0001–9999, a leap
    /// second included (`…T235960…` after `…T235959.999999999Z`, before the next day's
    /// `…T000000…`); equal instants (`…00Z`, `…00.000Z`) have equal keys.
    ///
    /// Why text and not a number: `i64` nanoseconds since 1970 stop at 2262 and have no room
    /// for a leap second; `i128` is not a column type of SQLite or PostgreSQL, and two
    /// columns (seconds, nanoseconds) would make every keyset comparison and index longer.
    /// The basic format (no `-` or `:`) keeps it free of the `:` that separates the parts of
    /// TAXII `next` tokens. [`Timestamp::from_sort_key`] reads it back.
    pub fn sort_key(&self) -> String {
        let mut s = String::with_capacity(26);
        let (y, mo, d, h, mi, sec) = self.civil();
        use std::fmt::Write;
        let _ = write!(
            s,
            "{y:04}{mo:02}{d:02}T{h:02}{mi:02}{sec:02}.{:09}Z",
            self.nanos % NANOS_PER_SEC
        );
        s
    }

    /// The timestamp of a [`Timestamp::sort_key`] (its text is the extended RFC 3339 form
    /// with nine fraction digits). Errors: as [`Timestamp::parse`], or
    /// [`TimestampError::Syntax`] for text that is not a sort key.
    pub fn from_sort_key(key: &str) -> Result<Timestamp, TimestampError> {
        let b = key.as_bytes();
        if b.len() != 26 || b[8] != b'T' || b[15] != b'.' || b[25] != b'Z' {
            return Err(TimestampError::Syntax);
        }
        let k = |r: std::ops::Range<usize>| key.get(r).ok_or(TimestampError::Syntax);
        Timestamp::parse(&format!(
            "{}-{}-{}T{}:{}:{}.{}Z",
            k(0..4)?,
            k(4..6)?,
            k(6..8)?,
            k(9..11)?,
            k(11..13)?,
            k(13..15)?,
            k(16..25)?
        ))
    }

    /// (year, month, day, hour, minute, second) in UTC; second 60 in a leap second.
    fn civil(&self) -> (i64, u32, u32, u32, u32, u32) {
        let days = self.secs.div_euclid(86_400);
        let tod = self.secs.rem_euclid(86_400) as u32;
        let (y, m, d) = civil_from_days(days);
        let leap = u32::from(self.nanos >= NANOS_PER_SEC);
        (y, m, d, tod / 3600, tod / 60 % 60, tod % 60 + leap)
    }

    /// RFC 3339 text with `digits` fraction digits.
    fn format(&self, digits: usize) -> String {
        let (y, mo, d, h, mi, sec) = self.civil();
        let mut text = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{sec:02}");
        if digits > 0 {
            let frac = format!("{:09}", self.nanos % NANOS_PER_SEC);
            text.push('.');
            text.push_str(&frac[..digits]);
        }
        text.push('Z');
        text
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Number of fraction digits as written (0 for none).
    pub fn fraction_digits(&self) -> usize {
        match self.text.find('.') {
            Some(dot) => self.text.len() - dot - 2,
            None => 0,
        }
    }

    /// Whether this is a leap second (`23:59:60`, RFC 3339 §5.7).
    pub fn is_leap_second(&self) -> bool {
        self.nanos >= NANOS_PER_SEC
    }
}

impl PartialEq for Timestamp {
    fn eq(&self, other: &Self) -> bool {
        (self.secs, self.nanos) == (other.secs, other.nanos)
    }
}
impl Eq for Timestamp {}
impl PartialOrd for Timestamp {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Timestamp {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.secs, self.nanos).cmp(&(other.secs, other.nanos))
    }
}
impl std::hash::Hash for Timestamp {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (self.secs, self.nanos).hash(state);
    }
}
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}
impl FromStr for Timestamp {
    type Err = TimestampError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timestamp::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_precision_and_compares_instants() {
        let a = Timestamp::parse("2016-04-06T20:03:48.000Z").unwrap();
        let b = Timestamp::parse("2016-04-06T20:03:48Z").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.as_str(), "2016-04-06T20:03:48.000Z");
        assert_eq!(a.fraction_digits(), 3);
        let n = Timestamp::parse("2016-04-06T20:03:48.123456789Z").unwrap();
        assert_eq!(n.unix_nanos() - b.unix_nanos(), 123_456_789);
        assert_eq!(n.to_string(), "2016-04-06T20:03:48.123456789Z");
    }

    /// Issue 24, item 4: any number of fraction digits, kept byte for byte, compared (and
    /// keyed in the store) at nanoseconds.
    #[test]
    fn any_number_of_fraction_digits() {
        let ten = Timestamp::parse("2016-04-06T20:03:48.1234567891Z").unwrap();
        assert_eq!(ten.as_str(), "2016-04-06T20:03:48.1234567891Z");
        assert_eq!(ten.to_string(), "2016-04-06T20:03:48.1234567891Z");
        assert_eq!(ten.fraction_digits(), 10);
        let nine = Timestamp::parse("2016-04-06T20:03:48.123456789Z").unwrap();
        assert_eq!(ten, nine);
        assert_eq!(ten.sort_key(), nine.sort_key());
        assert_eq!(ten.sort_key(), "20160406T200348.123456789Z");
        let long = format!("2016-04-06T20:03:48.{}Z", "9".repeat(40));
        let long = Timestamp::parse(&long).unwrap();
        assert_eq!(long.fraction_digits(), 40);
        assert!(long < Timestamp::parse("2016-04-06T20:03:49Z").unwrap());
        assert!(long > Timestamp::parse("2016-04-06T20:03:48.999999998Z").unwrap());
        assert_eq!(long.unix_nanos() % 1_000_000_000, 999_999_999);
        // In a leap second too.
        let leap = Timestamp::parse("2016-12-31T23:59:60.5000000001Z").unwrap();
        assert!(leap.is_leap_second());
        assert_eq!(leap, Timestamp::parse("2016-12-31T23:59:60.5Z").unwrap());
    }

    #[test]
    fn refuses_what_stix_forbids() {
        use TimestampError::*;
        assert_eq!(Timestamp::parse("2016-04-06T20:03:48+00:00"), Err(NotUtc));
        assert_eq!(Timestamp::parse("2016-04-06T20:03:48.000"), Err(NotUtc));
        assert_eq!(Timestamp::parse("2016-04-06T20:03:48"), Err(NotUtc));
        assert_eq!(Timestamp::parse("2016-04-06T20:03:4"), Err(Syntax));
        assert_eq!(Timestamp::parse("2016-04-06 20:03:48Z"), Err(Syntax));
        assert!(matches!(
            Timestamp::parse("2016-02-30T00:00:00Z"),
            Err(NoSuchDate(_))
        ));
        assert_eq!(Timestamp::parse("2016-04-06T20:03:48.Z"), Err(Syntax));
    }

    #[test]
    fn the_whole_range_and_leap_seconds() {
        let p = |s: &str| Timestamp::parse(s).unwrap();
        let texts = [
            "0001-01-01T00:00:00Z",
            "0001-01-01T00:00:00.000000001Z",
            "1066-10-14T09:00:00Z",
            "1677-09-21T00:12:43.145224191Z",
            "1970-01-01T00:00:00Z",
            "2016-12-31T23:59:59.999999999Z",
            "2016-12-31T23:59:60Z",
            "2016-12-31T23:59:60.5Z",
            "2017-01-01T00:00:00Z",
            "2262-04-11T23:47:16.854775808Z",
            "9999-12-31T23:59:59Z",
            "9999-12-31T23:59:59.999999999Z",
            "9999-12-31T23:59:60.999999999Z",
        ];
        for w in texts.windows(2) {
            let (a, b) = (p(w[0]), p(w[1]));
            assert!(a < b, "{a} < {b}");
            assert!(
                a.sort_key() < b.sort_key(),
                "{} < {}",
                a.sort_key(),
                b.sort_key()
            );
        }
        for t in texts {
            let ts = p(t);
            assert_eq!(ts.as_str(), t, "kept byte for byte");
            let back = Timestamp::from_sort_key(&ts.sort_key()).unwrap();
            assert_eq!(back, ts, "{t}");
            assert_eq!(back.sort_key(), ts.sort_key());
        }
        assert_eq!(
            p("9999-12-31T23:59:59Z").sort_key(),
            "99991231T235959.000000000Z"
        );
        assert_eq!(
            p("2016-12-31T23:59:60.5Z").sort_key(),
            "20161231T235960.500000000Z"
        );
        assert_eq!(
            p("0001-01-01T00:00:00Z").sort_key(),
            "00010101T000000.000000000Z"
        );
        assert_eq!(
            p("2016-12-31T23:59:60Z").sort_key(),
            p("2016-12-31T23:59:60.000Z").sort_key()
        );
        assert!(p("2016-12-31T23:59:60Z").is_leap_second());
        // Outside i64 nanoseconds: clamped, so comparisons with log times stay right.
        assert_eq!(p("9999-12-31T23:59:59Z").unix_nanos(), i64::MAX);
        assert_eq!(p("0001-01-01T00:00:00Z").unix_nanos(), i64::MIN);
        let leap = p("2016-12-31T23:59:60.5Z").unix_nanos();
        assert_eq!(leap, p("2017-01-01T00:00:00Z").unix_nanos() - 1);
        assert_eq!(
            p("2016-12-31T23:59:59.25Z").unix_nanos(),
            1_483_228_799_250_000_000
        );
    }

    #[test]
    fn leap_seconds_only_where_rfc_3339_puts_them() {
        use TimestampError::*;
        for ok in [
            "2016-12-31T23:59:60Z",
            "2015-06-30T23:59:60.123Z",
            "2024-02-29T23:59:60Z",
        ] {
            assert!(Timestamp::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "2016-12-30T23:59:60Z",
            "2016-12-31T23:58:60Z",
            "2016-12-31T12:59:60Z",
            "2016-12-31T23:59:61Z",
            "2023-02-29T00:00:00Z",
            "2016-13-01T00:00:00Z",
            "2016-12-31T24:00:00Z",
        ] {
            match Timestamp::parse(bad) {
                Err(NoSuchDate(why)) => assert!(!why.is_empty()),
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert_eq!(Timestamp::parse("0000-01-01T00:00:00Z"), Err(OutOfRange));
        let e = Timestamp::parse("2016-12-30T23:59:60Z")
            .unwrap_err()
            .to_string();
        assert!(e.contains("RFC 3339 §5.7"), "{e}");
    }

    #[test]
    fn from_unix_nanos_round_trips() {
        let t = Timestamp::from_unix_nanos(1_700_000_000_123_456_789, 6);
        assert_eq!(t.as_str(), "2023-11-14T22:13:20.123456Z");
        assert_eq!(Timestamp::parse(t.as_str()).unwrap(), t);
        for n in [i64::MIN, -1, 0, 1, i64::MAX] {
            let t = Timestamp::from_unix_nanos(n, 9);
            assert_eq!(t.unix_nanos(), n, "{t}");
            assert_eq!(Timestamp::parse(t.as_str()).unwrap(), t);
        }
        assert_eq!(
            Timestamp::from_unix_nanos(-1, 3).as_str(),
            "1969-12-31T23:59:59.999Z"
        );
    }
}
