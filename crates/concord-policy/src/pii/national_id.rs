//! National identity numbers with check digits.
//!
//! - **PRC resident identity number** (公民身份号码), GB 11643-1999: six digits of
//!   administrative division (GB/T 2260), eight of birth date `YYYYMMDD`, three of sequence
//!   (odd for men), and a check character computed with ISO 7064 MOD 11-2 (`0`–`9` or `X`).
//!   Accepted written as 18 characters or grouped 6-8-4 with spaces.
//! - **UAE Emirates ID** (رقم الهوية), as printed by the Federal Authority for Identity and
//!   Citizenship: `784-YYYY-NNNNNNN-C`, where 784 is the ISO 3166-1 numeric code of the UAE,
//!   `YYYY` the holder's birth year and `C` a Luhn check digit (ISO/IEC 7812-1 Annex B) over
//!   the fifteen digits. Accepted with hyphens, spaces or no separators.

use std::sync::LazyLock;

use regex::Regex;

use super::checksum::{iso7064_mod11_2, luhn_valid};
use super::text::{self, DIGIT, NoiseMask};
use super::{Category, Finding};

static PRC: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"{DIGIT}{{6}}\x20?{DIGIT}{{8}}\x20?{DIGIT}{{3}}[{DIGIT_BODY}Xx\x{{FF38}}]",
        DIGIT_BODY = &DIGIT[1..DIGIT.len() - 1]
    ))
    .expect("prc id regex")
});

static UAE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"784[\x20-]?{DIGIT}{{4}}[\x20-]?{DIGIT}{{7}}[\x20-]?{DIGIT}"
    ))
    .expect("uae id regex")
});

/// First two digits of the GB/T 2260 division code: provinces, autonomous regions,
/// municipalities, and 71/81/82/83 used for Taiwan, Hong Kong and Macao residents.
const PRC_PROVINCES: &[u8] = &[
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52,
    53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83,
];

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        _ => 0,
    }
}

/// Whether `s` (ASCII digits and a final `X`, no separators) is a valid PRC resident
/// identity number: known province, a real calendar date between 1900 and 2099, and the
/// GB 11643-1999 / ISO 7064 MOD 11-2 check character.
pub fn prc_resident_id_valid(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let num = |r: std::ops::Range<usize>| s[r].parse::<u32>().unwrap_or(0);
    if !PRC_PROVINCES.contains(&(num(0..2) as u8)) {
        return false;
    }
    let (year, month, day) = (num(6..10), num(10..12), num(12..14));
    if !(1900..=2099).contains(&year) || day == 0 || day > days_in_month(year, month) {
        return false;
    }
    iso7064_mod11_2(&s[..17]) == Some(char::from(b[17]).to_ascii_uppercase())
}

/// Whether `s` (15 ASCII digits, no separators) is a valid UAE Emirates ID number: prefix
/// 784, a birth year between 1900 and 2099, and a Luhn check digit.
pub fn uae_emirates_id_valid(s: &str) -> bool {
    s.len() == 15
        && s.starts_with("784")
        && s[3..7]
            .parse::<u32>()
            .is_ok_and(|y| (1900..=2099).contains(&y))
        && luhn_valid(s)
}

pub(crate) fn find(text: &str, mask: &NoiseMask, out: &mut Vec<Finding>) {
    for m in PRC.find_iter(text) {
        let r = m.range();
        if !text::left_ok(text, r.start) || !text::right_ok(text, r.end) || mask.overlaps(&r) {
            continue;
        }
        let last = m.as_str().chars().next_back().unwrap_or('0');
        let mut id = text::ascii_digits(m.as_str());
        if matches!(last, 'X' | 'x' | '\u{FF38}') {
            id.push('X');
        }
        if prc_resident_id_valid(&id) {
            out.push(Finding {
                category: Category::NationalId,
                start: r.start,
                end: r.end,
                value: m.as_str().to_string(),
                normalized: id,
                rule: "prc-resident-id",
            });
        }
    }
    for m in UAE.find_iter(text) {
        let r = m.range();
        if !text::left_ok(text, r.start) || !text::right_ok(text, r.end) || mask.overlaps(&r) {
            continue;
        }
        let id = text::ascii_digits(m.as_str());
        if uae_emirates_id_valid(&id) {
            out.push(Finding {
                category: Category::NationalId,
                start: r.start,
                end: r.end,
                value: m.as_str().to_string(),
                normalized: id,
                rule: "uae-emirates-id",
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(t: &str) -> Vec<String> {
        let mut v = Vec::new();
        find(t, &NoiseMask::new(t), &mut v);
        v.into_iter().map(|f| f.normalized).collect()
    }

    #[test]
    fn prc_check_character() {
        // GB 11643-1999 Annex A example.
        assert!(prc_resident_id_valid("11010519491231002X"));
        assert!(prc_resident_id_valid(
            "11010519491231002x".to_uppercase().as_str()
        ));
        assert!(!prc_resident_id_valid("110105194912310021"));
        // Worked in checksum.rs: 44052419800101001 -> 3.
        assert!(prc_resident_id_valid("440524198001010013"));
        for wrong in '0'..='9' {
            if wrong != '3' {
                assert!(!prc_resident_id_valid(&format!("44052419800101001{wrong}")));
            }
        }
    }

    #[test]
    fn prc_plausibility() {
        // Valid check characters, impossible contents.
        let with_check = |body: &str| format!("{body}{}", iso7064_mod11_2(body).unwrap());
        assert!(!prc_resident_id_valid(&with_check("99010519491231002"))); // province 99
        assert!(!prc_resident_id_valid(&with_check("11010518491231002"))); // 1849
        assert!(!prc_resident_id_valid(&with_check("11010519490230002"))); // 30 February
        assert!(!prc_resident_id_valid(&with_check("11010519491300002"))); // month 13
        assert!(prc_resident_id_valid(&with_check("11010520000229002"))); // leap day 2000
        assert!(!prc_resident_id_valid(&with_check("11010519000229002"))); // 1900 not leap
    }

    #[test]
    fn prc_in_text() {
        assert_eq!(ids("身份证号11010519491231002X，"), ["11010519491231002X"]);
        assert_eq!(ids("ID: 110105 19491231 002x"), ["11010519491231002X"]);
        assert!(ids("身份证号110105194912310021").is_empty());
        assert!(ids("order 211010519491231002X9").is_empty());
    }

    #[test]
    fn uae() {
        // 784-1990-1234567-C: Luhn over the 14 digits gives C.
        let body = "78419901234567";
        let c = (0..10).find(|d| luhn_valid(&format!("{body}{d}"))).unwrap();
        let id = format!("{body}{c}");
        assert!(uae_emirates_id_valid(&id));
        assert!(!uae_emirates_id_valid(&format!("{body}{}", (c + 1) % 10)));
        assert_eq!(
            ids(&format!("الهوية 784-1990-1234567-{c} شكرا")),
            std::slice::from_ref(&id)
        );
        assert!(!uae_emirates_id_valid("784180012345678")); // 1800 is not a birth year
    }
}
