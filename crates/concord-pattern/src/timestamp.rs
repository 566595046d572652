//! STIX timestamps as they appear in patterns (`t'…'`) and in observed data.
//!
//! The pattern grammar (STIX 2.1 §9.2, `TimestampLiteral` in `STIXPattern.g4`) fixes the shape
//! `YYYY-MM-DDTHH:MM:SS[.fraction]Z` with upper-case `T` and `Z`; §3.2 makes timestamps UTC.
//! The grammar bounds each field (month 01–12, day 01–31, second 00–60) but not the calendar:
//! Concord additionally requires the day to exist in its month (no 30 February).

use std::fmt;

/// A timestamp literal: the text as written plus its instant in nanoseconds since the Unix
/// epoch. Equality is on the text, so the AST prints back exactly what was parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timestamp {
    text: String,
    nanos: i128,
}

/// Why a timestamp string was rejected, with the byte offset of the offending field relative
/// to the start of the timestamp text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TimestampError {
    pub(crate) offset: usize,
    pub(crate) message: String,
}

impl Timestamp {
    /// Parses `YYYY-MM-DDTHH:MM:SS[.fraction]Z`. With `calendar` the day must exist in its
    /// month; without it only the grammar's field ranges are enforced.
    pub(crate) fn parse(s: &str, calendar: bool) -> Result<Timestamp, TimestampError> {
        let b = s.as_bytes();
        let err = |offset: usize, message: &str| TimestampError {
            offset,
            message: message.to_string(),
        };
        let digits = |at: usize, n: usize, what: &str| -> Result<u32, TimestampError> {
            let mut v = 0u32;
            for i in at..at + n {
                match b.get(i) {
                    Some(c) if c.is_ascii_digit() => v = v * 10 + u32::from(c - b'0'),
                    _ => {
                        return Err(err(
                            i.min(b.len()),
                            &format!("expected {n} digits of the {what} (YYYY-MM-DDTHH:MM:SSZ)"),
                        ));
                    }
                }
            }
            Ok(v)
        };
        let sep = |at: usize, c: u8| -> Result<(), TimestampError> {
            if b.get(at) == Some(&c) {
                Ok(())
            } else {
                Err(err(
                    at.min(b.len()),
                    &format!(
                        "expected `{}` in timestamp (YYYY-MM-DDTHH:MM:SSZ, upper-case T and Z)",
                        c as char
                    ),
                ))
            }
        };
        let year = digits(0, 4, "year")?;
        sep(4, b'-')?;
        let month = digits(5, 2, "month")?;
        if !(1..=12).contains(&month) {
            return Err(err(5, "month must be 01 to 12"));
        }
        sep(7, b'-')?;
        let day = digits(8, 2, "day")?;
        if !(1..=31).contains(&day) {
            return Err(err(8, "day must be 01 to 31"));
        }
        if calendar && day > days_in_month(year, month) {
            return Err(err(
                8,
                &format!("day {day:02} does not exist in {year:04}-{month:02}"),
            ));
        }
        sep(10, b'T')?;
        let hour = digits(11, 2, "hour")?;
        if hour > 23 {
            return Err(err(11, "hour must be 00 to 23"));
        }
        sep(13, b':')?;
        let minute = digits(14, 2, "minute")?;
        if minute > 59 {
            return Err(err(14, "minute must be 00 to 59"));
        }
        sep(16, b':')?;
        let second = digits(17, 2, "second")?;
        if second > 60 {
            return Err(err(17, "second must be 00 to 60"));
        }
        let mut at = 19;
        let mut frac_nanos: i128 = 0;
        if b.get(at) == Some(&b'.') {
            at += 1;
            let start = at;
            let mut scale = 100_000_000i128;
            while let Some(c) = b.get(at).filter(|c| c.is_ascii_digit()) {
                // Digits past nanoseconds are kept in the text but do not change the instant.
                frac_nanos += i128::from(c - b'0') * scale;
                scale /= 10;
                at += 1;
            }
            if at == start {
                return Err(err(at, "expected digits after `.` in timestamp"));
            }
        }
        sep(at, b'Z')?;
        if at + 1 != b.len() {
            return Err(err(at + 1, "unexpected text after `Z` in timestamp"));
        }
        let days = days_from_civil(i64::from(year), month, day);
        // A leap second (:60) is taken as the first instant of the next minute.
        let secs = days as i128 * 86_400
            + i128::from(hour) * 3600
            + i128::from(minute) * 60
            + i128::from(second);
        Ok(Timestamp {
            text: s.to_string(),
            nanos: secs * 1_000_000_000 + frac_nanos,
        })
    }

    /// The timestamp text as written, without `t'` and `'`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Nanoseconds since 1970-01-01T00:00:00Z.
    pub fn nanos(&self) -> i128 {
        self.nanos
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn is_leap(y: u32) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_and_leap_years() {
        assert_eq!(
            Timestamp::parse("1970-01-01T00:00:00Z", true)
                .unwrap()
                .nanos(),
            0
        );
        assert_eq!(
            Timestamp::parse("2000-03-01T00:00:00.5Z", true)
                .unwrap()
                .nanos(),
            951_868_800_500_000_000
        );
        assert!(Timestamp::parse("2000-02-29T00:00:00Z", true).is_ok());
        assert!(Timestamp::parse("1900-02-29T00:00:00Z", true).is_err());
        assert!(Timestamp::parse("1900-02-29T00:00:00Z", false).is_ok());
        assert_eq!(
            Timestamp::parse("2024-02-30T00:00:00Z", true)
                .unwrap_err()
                .offset,
            8
        );
        assert!(Timestamp::parse("2010-05-21t13:21:43Z", true).is_err());
        assert!(Timestamp::parse("2010-05-21T13:21:43z", true).is_err());
    }
}
