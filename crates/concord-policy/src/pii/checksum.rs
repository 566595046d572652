//! Check-digit algorithms, exact and allocation-free, each with the standard that defines it.

/// The Luhn check (ISO/IEC 7812-1:2017 Annex B, "Luhn formula for computing modulus-10
/// double-add-double check digits") over ASCII digits: `true` when the last digit is the
/// check digit of the others. Any non-digit makes it `false`.
///
/// ```
/// use concord_policy::pii::checksum::luhn_valid;
/// assert!(luhn_valid("4111111111111111"));
/// assert!(!luhn_valid("4111111111111112"));
/// ```
pub fn luhn_valid(digits: &str) -> bool {
    if digits.is_empty() {
        return false;
    }
    let mut sum = 0u32;
    for (i, b) in digits.bytes().rev().enumerate() {
        if !b.is_ascii_digit() {
            return false;
        }
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum.is_multiple_of(10)
}

/// The ISO 7064 MOD 11-2 check character of a string of ASCII digits (the pure system with
/// radix 2 used by GB 11643-1999 for the PRC resident identity number): `'0'`–`'9'` or `'X'`
/// for 10. Returns `None` if `digits` holds a non-digit.
///
/// The weight of the digit at position *i* counted from the right, the check character being
/// position 1, is 2^(i−1) mod 11; the check character makes the weighted sum ≡ 1 (mod 11).
///
/// ```
/// use concord_policy::pii::checksum::iso7064_mod11_2;
/// // The example of GB 11643-1999 Annex A.
/// assert_eq!(iso7064_mod11_2("11010519491231002"), Some('X'));
/// ```
pub fn iso7064_mod11_2(digits: &str) -> Option<char> {
    let mut sum = 0u32;
    let mut weight = 2u32; // 2^1 mod 11 for the digit just left of the check character
    for b in digits.bytes().rev() {
        if !b.is_ascii_digit() {
            return None;
        }
        sum = (sum + u32::from(b - b'0') * weight) % 11;
        weight = weight * 2 % 11;
    }
    let check = (12 - sum % 11) % 11;
    Some(if check == 10 {
        'X'
    } else {
        char::from(b'0' + check as u8)
    })
}

/// The ISO 7064 MOD 97-10 remainder of an IBAN as ISO 13616-1:2020 §6.3 computes it: move
/// the first four characters to the end, replace each letter by two digits (A = 10 … Z = 35)
/// and take the number modulo 97. A valid IBAN gives 1. `None` for characters other than
/// ASCII digits and upper-case letters.
///
/// ```
/// use concord_policy::pii::checksum::iban_mod97;
/// assert_eq!(iban_mod97("GB82WEST12345698765432"), Some(1));
/// ```
pub fn iban_mod97(iban: &str) -> Option<u32> {
    if iban.len() < 4 {
        return None;
    }
    let (head, tail) = iban.split_at(4);
    let mut rem = 0u32;
    for b in tail.bytes().chain(head.bytes()) {
        match b {
            b'0'..=b'9' => rem = (rem * 10 + u32::from(b - b'0')) % 97,
            b'A'..=b'Z' => rem = (rem * 100 + u32::from(b - b'A' + 10)) % 97,
            _ => return None,
        }
    }
    Some(rem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_cases() {
        for ok in [
            "79927398713", // the classic example
            "4111111111111111",
            "5555555555554444",
            "378282246310005",
            "6011111111111117",
            "0",
        ] {
            assert!(luhn_valid(ok), "{ok}");
        }
        for bad in ["79927398710", "4111111111111121", "", "41x1"] {
            assert!(!luhn_valid(bad), "{bad}");
        }
        // Every single-digit error is caught.
        let good = b"4111111111111111";
        for i in 0..good.len() {
            for d in b'0'..=b'9' {
                if d == good[i] {
                    continue;
                }
                let mut s = good.to_vec();
                s[i] = d;
                assert!(!luhn_valid(std::str::from_utf8(&s).unwrap()));
            }
        }
    }

    #[test]
    fn mod11_2_cases() {
        // GB 11643-1999 Annex A example: 11010519491231002X.
        assert_eq!(iso7064_mod11_2("11010519491231002"), Some('X'));
        // Worked by hand: weights 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2.
        // 4 4 0 5 2 4 1 9 8 0 0 1 0 1 0 0 1 -> sum 196, 196 mod 11 = 9, check (12-9)%11 = 3.
        assert_eq!(iso7064_mod11_2("44052419800101001"), Some('3'));
        assert_eq!(iso7064_mod11_2("1101051949123100a"), None);
        // The check makes the full weighted sum 1 mod 11, for every check value.
        for n in 0..200u32 {
            let body = format!("{:017}", 11010519491231002u64 + u64::from(n) * 7919);
            let c = iso7064_mod11_2(&body).unwrap();
            let v = if c == 'X' {
                10
            } else {
                c.to_digit(10).unwrap()
            };
            let mut sum = v;
            for (i, b) in body.bytes().rev().enumerate() {
                sum += u32::from(b - b'0') * ((1u32 << (i + 1)) % 11);
            }
            assert_eq!(sum % 11, 1);
        }
    }

    #[test]
    fn mod97_cases() {
        assert_eq!(iban_mod97("GB82WEST12345698765432"), Some(1));
        assert_eq!(iban_mod97("DE89370400440532013000"), Some(1));
        assert_eq!(iban_mod97("SA0380000000608010167519"), Some(1));
        assert_ne!(iban_mod97("GB82WEST12345698765431"), Some(1));
        assert_eq!(iban_mod97("gb82"), None);
    }
}
