//! International Bank Account Numbers, ISO 13616-1:2020: two letters of ISO 3166-1 country
//! code, two check digits, and a BBAN whose length is fixed per country by the IBAN registry
//! that SWIFT keeps as the ISO 13616 registration authority. Accepted in the electronic form
//! (`DE89370400440532013000`) and the print form (groups of four separated by spaces).

use std::sync::LazyLock;

use regex::Regex;

use super::checksum::iban_mod97;
use super::text::{self, NoiseMask};
use super::{Category, Finding};

/// IBAN length per country, from the SWIFT IBAN registry (release 99, 2024).
const LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BI", 27),
    ("BR", 29),
    ("BY", 28),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DJ", 27),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FK", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HN", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LC", 32),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("LY", 25),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MN", 20),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NI", 28),
    ("NL", 18),
    ("NO", 15),
    ("OM", 23),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("RU", 33),
    ("SA", 24),
    ("SC", 31),
    ("SD", 18),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("SO", 23),
    ("ST", 25),
    ("SV", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
    ("YE", 30),
];

/// The registered IBAN length of a country (ISO 3166-1 alpha-2), if it uses IBANs.
pub fn iban_length(country: &str) -> Option<usize> {
    LENGTHS
        .binary_search_by(|(c, _)| (*c).cmp(country))
        .ok()
        .map(|i| LENGTHS[i].1)
}

/// Whether `s` (electronic form: upper-case letters and digits, no spaces) is a valid IBAN:
/// a registered country, that country's length, and ISO 7064 MOD 97-10 remainder 1.
pub fn iban_valid(s: &str) -> bool {
    s.len() >= 4
        && s.is_char_boundary(2)
        && iban_length(&s[..2]) == Some(s.len())
        && s.as_bytes()[2..4].iter().all(u8::is_ascii_digit)
        && iban_mod97(s) == Some(1)
}

static START: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[A-Z]{2}[0-9]{2}").expect("iban regex"));

/// Whether `text` may hold an IBAN: two capital letters followed by two digits somewhere.
pub(crate) fn may_contain(text: &str) -> bool {
    START.is_match(text)
}

pub(crate) fn find(text: &str, mask: &NoiseMask, out: &mut Vec<Finding>) {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(m) = START.find_at(text, from) {
        from = m.start() + 1;
        if !text::left_ok(text, m.start()) {
            continue;
        }
        let Some(len) = iban_length(&m.as_str()[..2]) else {
            continue;
        };
        // Take exactly `len` alphanumerics, allowing single spaces between groups of four.
        let mut compact = String::with_capacity(len);
        let mut i = m.start();
        while compact.len() < len && i < bytes.len() {
            let b = bytes[i];
            if b.is_ascii_digit() || b.is_ascii_uppercase() {
                compact.push(char::from(b));
                i += 1;
            } else if b == b' ' && compact.len().is_multiple_of(4) && i + 1 < bytes.len() {
                i += 1;
            } else {
                break;
            }
        }
        let r = m.start()..i;
        if compact.len() == len
            && text::right_ok(text, i)
            && !mask.overlaps(&r)
            && iban_valid(&compact)
        {
            out.push(Finding {
                category: Category::Iban,
                start: r.start,
                end: r.end,
                value: text[r.clone()].to_string(),
                normalized: compact,
                rule: "iso13616",
            });
            from = r.end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ibans(t: &str) -> Vec<String> {
        let mut v = Vec::new();
        find(t, &NoiseMask::new(t), &mut v);
        v.into_iter().map(|f| f.normalized).collect()
    }

    #[test]
    fn registry_table_is_sorted() {
        assert!(LENGTHS.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(iban_length("DE"), Some(22));
        assert_eq!(iban_length("US"), None);
    }

    #[test]
    fn valid_and_invalid() {
        // ISO 13616 / registry examples.
        for ok in [
            "GB82WEST12345698765432",
            "DE89370400440532013000",
            "FR1420041010050500013M02606",
            "SA0380000000608010167519",
            "AE070331234567890123456",
            "NL91ABNA0417164300",
        ] {
            assert!(iban_valid(ok), "{ok}");
        }
        assert!(!iban_valid("GB82WEST12345698765431")); // check digits
        assert!(!iban_valid("DE8937040044053201300")); // one short
        assert!(!iban_valid("US12345678901234567890")); // no IBAN country
    }

    #[test]
    fn in_text() {
        assert_eq!(
            ibans("账户 GB82 WEST 1234 5698 7654 32，谢谢"),
            ["GB82WEST12345698765432"]
        );
        assert_eq!(
            ibans("الآيبان SA0380000000608010167519 للتحويل"),
            ["SA0380000000608010167519"]
        );
        // A following upper-case word is not swallowed.
        assert_eq!(
            ibans("DE89 3704 0044 0532 0130 00 AND MORE"),
            ["DE89370400440532013000"]
        );
        assert!(ibans("XDE89370400440532013000").is_empty());
        assert!(ibans("DE89370400440532013001").is_empty());
    }
}
