//! Payment card numbers (primary account numbers, ISO/IEC 7812-1): 13 to 19 digits, written
//! together or in groups separated by spaces or hyphens, with a Luhn check digit
//! (ISO/IEC 7812-1 Annex B) and an issuer identification number (IIN) prefix of a known
//! scheme with a length that scheme issues.

use std::sync::LazyLock;

use regex::Regex;

use super::checksum::luhn_valid;
use super::text::{self, DIGIT, NoiseMask};
use super::{Category, Finding};

static RUN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"{DIGIT}(?:[\x20\-\x{{A0}}]?{DIGIT})*")).expect("card regex")
});

/// One IIN range: `lo..=hi` over the first `digits` digits, and the lengths issued.
struct Iin {
    scheme: &'static str,
    digits: usize,
    lo: u32,
    hi: u32,
    lengths: &'static [usize],
}

const fn iin(
    scheme: &'static str,
    digits: usize,
    lo: u32,
    hi: u32,
    lengths: &'static [usize],
) -> Iin {
    Iin {
        scheme,
        digits,
        lo,
        hi,
        lengths,
    }
}

const L16_19: &[usize] = &[16, 17, 18, 19];

/// The schemes' published IIN ranges (as of 2024).
const IINS: &[Iin] = &[
    iin("visa", 1, 4, 4, &[13, 16, 19]),
    iin("mastercard", 2, 51, 55, &[16]),
    iin("mastercard", 4, 2221, 2720, &[16]),
    iin("amex", 2, 34, 34, &[15]),
    iin("amex", 2, 37, 37, &[15]),
    iin("discover", 4, 6011, 6011, L16_19),
    iin("discover", 3, 644, 649, L16_19),
    iin("discover", 2, 65, 65, L16_19),
    iin("jcb", 4, 3528, 3589, L16_19),
    iin("diners", 3, 300, 305, &[14, 15, 16, 17, 18, 19]),
    iin("diners", 4, 3095, 3095, &[14, 15, 16, 17, 18, 19]),
    iin("diners", 2, 36, 36, &[14, 15, 16, 17, 18, 19]),
    iin("diners", 2, 38, 39, &[16, 17, 18, 19]),
    iin("unionpay", 2, 62, 62, L16_19),
    iin("maestro", 4, 5018, 5018, &[13, 14, 15, 16, 17, 18, 19]),
    iin("maestro", 4, 5020, 5020, &[13, 14, 15, 16, 17, 18, 19]),
    iin("maestro", 4, 5038, 5038, &[13, 14, 15, 16, 17, 18, 19]),
    iin("maestro", 4, 5893, 5893, &[13, 14, 15, 16, 17, 18, 19]),
    iin("maestro", 4, 6304, 6304, &[13, 14, 15, 16, 17, 18, 19]),
    iin("maestro", 4, 6759, 6759, &[13, 14, 15, 16, 17, 18, 19]),
    iin("maestro", 4, 6761, 6763, &[13, 14, 15, 16, 17, 18, 19]),
    iin("mir", 4, 2200, 2204, L16_19),
    iin("verve", 6, 506099, 506198, &[16, 19]),
    iin("troy", 4, 9792, 9792, &[16]),
];

/// The scheme of a card number (ASCII digits only) if it has a known IIN, a length that
/// scheme issues and a valid Luhn check digit.
pub fn card_scheme(digits: &str) -> Option<&'static str> {
    if !(13..=19).contains(&digits.len()) || !luhn_valid(digits) {
        return None;
    }
    IINS.iter()
        .find(|i| {
            digits[..i.digits]
                .parse::<u32>()
                .is_ok_and(|p| (i.lo..=i.hi).contains(&p))
                && i.lengths.contains(&digits.len())
        })
        .map(|i| i.scheme)
}

/// Groups as printed on cards: 4-4-4-4(-3), Amex 4-6-5, Diners 4-6-4, or no separators.
fn grouping_ok(groups: &[usize]) -> bool {
    match groups {
        [_] => true,
        [4, 6, 5] | [4, 6, 4] => true,
        [init @ .., last] => init.iter().all(|&g| g == 4) && (1..=4).contains(last),
        [] => false,
    }
}

pub(crate) fn find(text: &str, mask: &NoiseMask, out: &mut Vec<Finding>) {
    for m in RUN.find_iter(text) {
        let groups = text::groups(text, m.range());
        let found = text::best_windows(text, &groups, mask, |w| {
            let lens: Vec<usize> = text::groups(w, 0..w.len())
                .iter()
                .map(|g| w[g.clone()].chars().count())
                .collect();
            if !grouping_ok(&lens) {
                return None;
            }
            let digits = text::ascii_digits(w);
            card_scheme(&digits).map(|s| (digits, s))
        });
        for (r, (digits, scheme)) in found {
            out.push(Finding {
                category: Category::PaymentCard,
                start: r.start,
                end: r.end,
                value: text[r].to_string(),
                normalized: digits,
                rule: scheme,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cards(t: &str) -> Vec<(String, &'static str)> {
        let mut v = Vec::new();
        find(t, &NoiseMask::new(t), &mut v);
        v.into_iter().map(|f| (f.normalized, f.rule)).collect()
    }

    #[test]
    fn schemes() {
        // Test numbers the schemes publish for sandboxes.
        assert_eq!(card_scheme("4111111111111111"), Some("visa"));
        assert_eq!(card_scheme("4222222222222"), Some("visa"));
        assert_eq!(card_scheme("5555555555554444"), Some("mastercard"));
        assert_eq!(card_scheme("2223003122003222"), Some("mastercard"));
        assert_eq!(card_scheme("378282246310005"), Some("amex"));
        assert_eq!(card_scheme("6011111111111117"), Some("discover"));
        assert_eq!(card_scheme("3530111333300000"), Some("jcb"));
        assert_eq!(card_scheme("30569309025904"), Some("diners"));
        assert_eq!(card_scheme("6200000000000005"), Some("unionpay"));
        // Luhn-valid but no scheme, or a scheme's wrong length.
        assert_eq!(card_scheme("1234567812345670"), None);
        assert_eq!(card_scheme("411111111111110"), None); // 15-digit "visa"
        assert_eq!(card_scheme("4111111111111112"), None); // Luhn
    }

    #[test]
    fn in_text() {
        assert_eq!(
            cards("卡号 4111 1111 1111 1111。"),
            [("4111111111111111".into(), "visa")]
        );
        assert_eq!(
            cards("amex 3782-822463-10005"),
            [("378282246310005".into(), "amex")]
        );
        assert_eq!(
            cards("بطاقة 5555555555554444 منتهية"),
            [("5555555555554444".into(), "mastercard")]
        );
        // A number followed by an expiry year is still found.
        assert_eq!(cards("4111 1111 1111 1111 2027").len(), 1);
    }

    #[test]
    fn not_cards() {
        for t in [
            "4111 1111 1111 1112",
            "41 1111 1111 1111 11",
            "order 4111111111111111abc",
            "sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709",
            "ts 1617235200000",
        ] {
            assert!(cards(t).is_empty(), "{t}");
        }
    }
}
