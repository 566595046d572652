//! STIX timestamps (STIX 2.1 §3.2): RFC 3339, UTC with a literal `Z`, any number of fraction
//! digits up to nanoseconds, kept exactly as written.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A STIX 2.1 `timestamp` that remembers how it was written.
///
/// Ordering and equality compare the instant (nanoseconds since the Unix epoch), so
/// `2016-01-01T00:00:00Z` equals `2016-01-01T00:00:00.000Z`; [`Timestamp::as_str`] and
/// `Display` give back the original text, so `.000Z` stays `.000Z` and nanoseconds stay.
///
/// Range: 1677-09-21 to 2262-04-11 (what fits in `i64` nanoseconds); other years are
/// rejected with [`TimestampError::OutOfRange`].
#[derive(Clone, Debug)]
pub struct Timestamp {
    unix_nanos: i64,
    text: Box<str>,
}

/// Why a string is not a STIX timestamp. Each variant names the rule of STIX 2.1 §3.2 broken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// Not of the form `YYYY-MM-DDTHH:MM:SS[.s+]Z`.
    #[error("not an RFC 3339 timestamp of the form YYYY-MM-DDTHH:MM:SS[.fraction]Z")]
    Syntax,
    /// An offset other than a literal `Z` (STIX 2.1 §3.2: timestamps MUST be in UTC with `Z`).
    #[error("timestamp must be in UTC and end in 'Z'")]
    NotUtc,
    /// More than nine fraction digits (finer than nanoseconds).
    #[error("more than 9 fraction digits (finer than nanoseconds) are not supported")]
    TooPrecise,
    /// A date or time that does not exist, such as 30 February or hour 25.
    #[error("no such date or time: {0}")]
    NoSuchDate(String),
    /// Outside 1677-09-21..2262-04-11.
    #[error("timestamp outside the supported range 1677-09-21..2262-04-11")]
    OutOfRange,
}

impl Timestamp {
    /// Parses a STIX timestamp. See [`TimestampError`] for what is refused.
    pub fn parse(text: &str) -> Result<Timestamp, TimestampError> {
        let b = text.as_bytes();
        let digits = |r: std::ops::Range<usize>| -> Result<i32, TimestampError> {
            let s = b.get(r).ok_or(TimestampError::Syntax)?;
            if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
                return Err(TimestampError::Syntax);
            }
            Ok(s.iter().fold(0i32, |n, d| n * 10 + i32::from(d - b'0')))
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
        let mut nanos: i64 = 0;
        if rest.first() == Some(&b'.') {
            let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 {
                return Err(TimestampError::Syntax);
            }
            if n > 9 {
                return Err(TimestampError::TooPrecise);
            }
            for (i, d) in rest[1..=n].iter().enumerate() {
                nanos += i64::from(d - b'0') * 10i64.pow(8 - i as u32);
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
        let dt = jiff::civil::DateTime::new(
            i16::try_from(year).map_err(|_| TimestampError::OutOfRange)?,
            month as i8,
            day as i8,
            hour as i8,
            minute as i8,
            second as i8,
            0,
        )
        .map_err(|e| TimestampError::NoSuchDate(e.to_string()))?;
        let ts = jiff::tz::Offset::UTC
            .to_timestamp(dt)
            .map_err(|e| TimestampError::NoSuchDate(e.to_string()))?;
        let unix_nanos = i64::try_from(ts.as_nanosecond())
            .ok()
            .and_then(|n| n.checked_add(nanos))
            .ok_or(TimestampError::OutOfRange)?;
        Ok(Timestamp {
            unix_nanos,
            text: text.into(),
        })
    }

    /// A timestamp from nanoseconds since the Unix epoch, written with `digits` fraction
    /// digits (0..=9; 3 gives the millisecond form STIX requires of `created`/`modified`).
    pub fn from_unix_nanos(unix_nanos: i64, digits: u8) -> Timestamp {
        let digits = digits.min(9);
        let ts = jiff::Timestamp::from_nanosecond(i128::from(unix_nanos))
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let dt = jiff::tz::Offset::UTC.to_datetime(ts);
        let mut text = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            dt.year(),
            dt.month(),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second()
        );
        if digits > 0 {
            let frac = format!("{:09}", dt.subsec_nanosecond());
            text.push('.');
            text.push_str(&frac[..usize::from(digits)]);
        }
        text.push('Z');
        // Truncate the instant to what was written so that parse(text) == self.
        let unit = 10i64.pow(9 - u32::from(digits));
        let unix_nanos = unix_nanos - unix_nanos.rem_euclid(unit);
        Timestamp {
            unix_nanos,
            text: text.into(),
        }
    }

    /// The current time, with microsecond precision (what TAXII clients in Python can parse).
    pub fn now_micros() -> Timestamp {
        let n = i64::try_from(jiff::Timestamp::now().as_nanosecond()).unwrap_or(i64::MAX);
        Timestamp::from_unix_nanos(n, 6)
    }

    /// Nanoseconds since 1970-01-01T00:00:00Z.
    pub fn unix_nanos(&self) -> i64 {
        self.unix_nanos
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
}

impl PartialEq for Timestamp {
    fn eq(&self, other: &Self) -> bool {
        self.unix_nanos == other.unix_nanos
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
        self.unix_nanos.cmp(&other.unix_nanos)
    }
}
impl std::hash::Hash for Timestamp {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.unix_nanos.hash(state);
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

    #[test]
    fn refuses_what_stix_forbids() {
        use TimestampError::*;
        assert_eq!(Timestamp::parse("2016-04-06T20:03:48+00:00"), Err(NotUtc));
        assert_eq!(Timestamp::parse("2016-04-06T20:03:48.000"), Err(NotUtc));
        assert_eq!(Timestamp::parse("2016-04-06T20:03:48"), Err(NotUtc));
        assert_eq!(Timestamp::parse("2016-04-06T20:03:4"), Err(Syntax));
        assert_eq!(Timestamp::parse("2016-04-06 20:03:48Z"), Err(Syntax));
        assert_eq!(
            Timestamp::parse("2016-04-06T20:03:48.1234567891Z"),
            Err(TooPrecise)
        );
        assert!(matches!(
            Timestamp::parse("2016-02-30T00:00:00Z"),
            Err(NoSuchDate(_))
        ));
        assert_eq!(Timestamp::parse("2016-04-06T20:03:48.Z"), Err(Syntax));
    }

    #[test]
    fn from_unix_nanos_round_trips() {
        let t = Timestamp::from_unix_nanos(1_700_000_000_123_456_789, 6);
        assert_eq!(t.as_str(), "2023-11-14T22:13:20.123456Z");
        assert_eq!(Timestamp::parse(t.as_str()).unwrap(), t);
    }
}
