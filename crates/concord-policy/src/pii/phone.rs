//! Telephone numbers (ITU-T E.164), international (`+86 138 1234 5678`, `00966 …`) and
//! national (`010 6552 9988`, `050 123 4567`) formats.
//!
//! A regular expression finds runs of digits with the separators people write (space, hyphen,
//! no-break and thin spaces, parentheses); the runs are cut into windows at the separators and
//! each window is validated by `phonenumber`, the Rust port of Google's libphonenumber, whose
//! metadata knows every country's numbering plan. International numbers are valid on their
//! own; a national number is accepted if it is valid in one of the configured regions (the
//! first is the default region).

use std::sync::LazyLock;

use phonenumber::{Mode, country};
use regex::Regex;

use super::text::{self, DIGIT, NoiseMask};
use super::{Category, Finding};

static RUN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"[+(]{{0,2}}{DIGIT}(?:[\x20\-.\x{{A0}}\x{{2009}}\x{{202F}}()]{{0,3}}{DIGIT})*\)?"
    ))
    .expect("phone regex")
});

/// E.164 allows 15 digits; a national trunk prefix or `00` adds up to two.
const MIN_DIGITS: usize = 7;
const MAX_DIGITS: usize = 17;

/// Appends the phone numbers of `text` to `out`. A window that overlaps a finding already in
/// `out` (every other detector runs first and has the stronger evidence, so the overlap
/// would lose anyway) is not validated: libphonenumber is the costliest step of a scan.
pub(crate) fn find(text: &str, regions: &[country::Id], mask: &NoiseMask, out: &mut Vec<Finding>) {
    let claimed: Vec<std::ops::Range<usize>> = out.iter().map(|f| f.start..f.end).collect();
    for m in RUN.find_iter(text) {
        let groups = text::groups(text, m.range());
        let accept = |w: &str| {
            // `w` is a slice of `text`: its offset is the distance between their pointers.
            let start = w.as_ptr() as usize - text.as_ptr() as usize;
            let end = start + w.len();
            if claimed.iter().any(|c| c.start < end && start < c.end) {
                return None;
            }
            validate(w, regions)
        };
        for (r, (e164, rule)) in text::best_windows(text, &groups, mask, accept) {
            out.push(Finding {
                category: Category::Phone,
                start: r.start,
                end: r.end,
                value: text[r].to_string(),
                normalized: e164,
                rule,
            });
        }
    }
}

/// A JSON number read as a phone number in international form without its `+`
/// (`8613800138001`, how databases often store E.164): 11 to 15 digits that libphonenumber
/// finds valid as `+DIGITS`. Returns the E.164 form.
pub(crate) fn international_digits(digits: &str) -> Option<String> {
    if !(11..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let number = phonenumber::parse(None, format!("+{digits}")).ok()?;
    number
        .is_valid()
        .then(|| number.format().mode(Mode::E164).to_string())
}

/// Validates one window; returns the E.164 form and the rule that accepted it.
fn validate(window: &str, regions: &[country::Id]) -> Option<(String, &'static str)> {
    // Parentheses must balance: `1234)` is the tail of something else.
    let open = window.matches('(').count();
    if open != window.matches(')').count() || window.starts_with(')') {
        return None;
    }
    let digits = text::ascii_digits(window);
    if !(MIN_DIGITS..=MAX_DIGITS).contains(&digits.len()) {
        return None;
    }
    // A last group of one digit is a check digit or a counter (`784-1985-1234567-4`).
    let last = window.rsplit([' ', '-', '.']).next().unwrap_or("");
    if text::ascii_digits(last).len() < 2 {
        return None;
    }
    let plus = window.trim_start_matches('(').starts_with('+');
    // Written numbers have at most five groups nationally (`01 42 68 53 00`), six with the
    // country code; more is a list (`0-23-65281-10-11-35-16`, a TLS fingerprint).
    let groups = window
        .split([' ', '-', '.'])
        .filter(|g| !g.is_empty())
        .count();
    if groups > if plus { 6 } else { 5 } {
        return None;
    }
    // Dots separate only the WHOIS form `+966.112345678`; elsewhere they are versions,
    // amounts and addresses.
    if window.contains('.') && !plus {
        return None;
    }
    let international = if plus {
        Some(digits.as_str())
    } else {
        digits.strip_prefix("00")
    };
    if let Some(rest) = international {
        let number = phonenumber::parse(None, format!("+{rest}")).ok()?;
        return number
            .is_valid()
            .then(|| (number.format().mode(Mode::E164).to_string(), "e164"));
    }
    // A national number must be written as the region writes it: with its trunk prefix
    // where the region uses one (`030 12345678`, `0501234567`), without where it does not
    // (`138 1234 5678`, `(202) 555-0143`). libphonenumber itself is lenient here and would
    // read `1234567890` as the German `01234 567890`.
    for region in regions {
        if let Ok(number) = phonenumber::parse(Some(*region), &digits)
            && number.is_valid()
            && text::ascii_digits(&number.format().mode(Mode::National).to_string()) == digits
        {
            return Some((number.format().mode(Mode::E164).to_string(), "national"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phones(t: &str, regions: &[&str]) -> Vec<(String, String)> {
        let regions: Vec<country::Id> = regions.iter().map(|r| r.parse().unwrap()).collect();
        let mut v = Vec::new();
        find(t, &regions, &NoiseMask::new(t), &mut v);
        v.into_iter().map(|f| (f.value, f.normalized)).collect()
    }

    #[test]
    fn international_numbers_need_no_region() {
        let got = phones("call +86 138 1234 5678 or +966 50 123 4567.", &[]);
        assert_eq!(
            got,
            [
                ("+86 138 1234 5678".into(), "+8613812345678".into()),
                ("+966 50 123 4567".into(), "+966501234567".into())
            ]
        );
        let got = phones("هاتف: 00971 50 123 4567", &[]);
        assert_eq!(got[0].1, "+971501234567");
    }

    #[test]
    fn national_numbers_use_the_regions() {
        assert!(phones("手机13812345678", &[]).is_empty());
        assert_eq!(phones("手机13812345678，", &["CN"])[0].1, "+8613812345678");
        // Written without its trunk prefix, a German or British number is not one.
        assert!(phones("uptime 1234567890 s", &["DE", "GB"]).is_empty());
        assert_eq!(phones("Berlin 030 12345678", &["DE"])[0].1, "+493012345678");
        assert_eq!(phones("whois +966.112345678", &[])[0].1, "+966112345678");
        assert_eq!(phones("(+44 7911 123456)", &[])[0].0, "+44 7911 123456");
        assert_eq!(phones("Tel (010) 6552-9988", &["CN"])[0].1, "+861065529988");
        assert_eq!(
            phones("جوال 0501234567", &["CN", "SA"])[0].1,
            "+966501234567"
        );
    }

    #[test]
    fn arabic_indic_digits() {
        let got = phones("رقم الجوال ٠٥٠١٢٣٤٥٦٧ للتواصل", &["SA"]);
        assert_eq!(got[0].1, "+966501234567");
    }

    #[test]
    fn a_number_is_cut_from_its_neighbours() {
        let got = phones("2023 13812345678 99", &["CN"]);
        assert_eq!(got, [("13812345678".into(), "+8613812345678".into())]);
    }

    #[test]
    fn not_phones() {
        let regions = ["CN", "SA", "US", "GB", "DE"];
        for t in [
            "released 2024-01-15 10:20:30",
            "indicator--12345678-1234-4123-8123-123456789012",
            "T1059.001 and CVE-2021-44228",
            "version 10.0.19041.1",
            "port 8080, pid 31337",
            "sha256 4b227777d4dd1fc61c6f884f48641d02b4d121d3fd328cb08b5531fcacdabf8a",
            "+86 138 1234 567", // too short for a mobile
            "T1234567890",
            "784-1985-1234567-4",
            "case 2024-000123 and years 2015-2025",
            "10.0.19041.1 or 1.2.3.4",
        ] {
            assert!(
                phones(t, &regions).is_empty(),
                "{t}: {:?}",
                phones(t, &regions)
            );
        }
    }
}
