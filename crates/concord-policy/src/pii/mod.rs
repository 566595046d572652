//! Personal-information detectors over text and over STIX objects.
//!
//! [`Detectors`] is built once from a [`DetectorConfig`] and is then cheap to share between
//! threads (`Send + Sync`, no interior mutability). [`Detectors::scan_text`] finds personal
//! data in any string; [`Detectors::scan_object`] walks a STIX object (or a whole bundle) and
//! reports every finding with the JSON path of the property it sits in, plus what the
//! structure of the object itself says is personal (the name of an individual, a user
//! account, an e-mail address object). Text is read after NFKC and re-fanging (`view`),
//! and the walk scans dictionary keys and integers too, so `ｅｖｅ＠corp.cn`,
//! `45[.]33[.]32[.]158`, `{"grace@corp.cn": …}` and `"x_phone": 8613800138001` are found.
//!
//! | category | what | standard / source of truth |
//! |---|---|---|
//! | [`Category::Email`] | `local@domain.tld` | RFC 5322 §3.4.1 dot-atom, RFC 1035 host names |
//! | [`Category::Phone`] | `+86 138 1234 5678`, `(010) 6552-9988` | ITU-T E.164, libphonenumber metadata |
//! | [`Category::IpAddress`] | IPv4, IPv6 outside the infrastructure ranges | RFC 791, RFC 4291 §2.2, RFC 4632 |
//! | [`Category::NationalId`] | PRC resident identity number; UAE Emirates ID | GB 11643-1999 + ISO 7064 MOD 11-2; Luhn |
//! | [`Category::PaymentCard`] | 13–19 digits, known IIN, Luhn | ISO/IEC 7812-1 |
//! | [`Category::Iban`] | `GB82 WEST 1234 5698 7654 32` | ISO 13616-1, ISO 7064 MOD 97-10 |
//! | [`Category::PersonName`] | `name` of an `identity` of class `individual` | STIX 2.1 §4.5 |
//! | [`Category::UserAccount`] | `user_id`, `account_login`, `display_name`, `credential` of a `user-account` | STIX 2.1 §6.16 |
//! | [`Category::EmailAddressObject`] | `value`, `display_name` of an `email-addr` | STIX 2.1 §6.5 |

mod card;
pub mod checksum;
mod email;
mod iban;
mod ip;
mod national_id;
mod object;
mod phone;
mod text;
mod view;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use card::card_scheme;
pub use iban::{iban_length, iban_valid};
pub use ip::{Cidr, CidrError};
pub use national_id::{prc_resident_id_valid, uae_emirates_id_valid};
pub(crate) use object::push_key;
pub use object::{ObjectFinding, PatternLiteral};

/// A kind of personal data. The first six are found in text; the last three come from the
/// structure of STIX objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// An e-mail address in text (RFC 5322 `addr-spec`).
    Email,
    /// A telephone number (ITU-T E.164), international or national format.
    Phone,
    /// An IPv4 or IPv6 address outside the configured infrastructure ranges.
    IpAddress,
    /// A national identity number with a valid check digit.
    NationalId,
    /// A payment card number (ISO/IEC 7812-1, Luhn-valid, known IIN).
    PaymentCard,
    /// An International Bank Account Number (ISO 13616).
    Iban,
    /// The `name` of a STIX `identity` whose `identity_class` is `individual`.
    PersonName,
    /// An identifying property of a STIX `user-account` object.
    UserAccount,
    /// The `value` or `display_name` of a STIX `email-addr` object.
    EmailAddressObject,
}

impl Category {
    /// Every category, in the order of the enum.
    pub const ALL: [Category; 9] = [
        Category::Email,
        Category::Phone,
        Category::IpAddress,
        Category::NationalId,
        Category::PaymentCard,
        Category::Iban,
        Category::PersonName,
        Category::UserAccount,
        Category::EmailAddressObject,
    ];

    /// The name used in configuration and JSON (`ip_address`, `payment_card`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Email => "email",
            Category::Phone => "phone",
            Category::IpAddress => "ip_address",
            Category::NationalId => "national_id",
            Category::PaymentCard => "payment_card",
            Category::Iban => "iban",
            Category::PersonName => "person_name",
            Category::UserAccount => "user_account",
            Category::EmailAddressObject => "email_address_object",
        }
    }

    /// When text detectors overlap, the lower rank wins: a check-digit match is stronger
    /// evidence than a phone-number shape.
    fn rank(self) -> u8 {
        match self {
            Category::Email => 0,
            Category::Iban => 1,
            Category::NationalId => 2,
            Category::PaymentCard => 3,
            Category::IpAddress => 4,
            Category::Phone => 5,
            Category::PersonName | Category::UserAccount | Category::EmailAddressObject => 6,
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One piece of personal data found in a string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What kind of data it is.
    pub category: Category,
    /// Byte offset of the first byte in the scanned string.
    pub start: usize,
    /// Byte offset just past the last byte (`&text[start..end] == value`).
    pub end: usize,
    /// The text as written.
    pub value: String,
    /// A canonical form, equal for equal data however it was written, for keyed
    /// pseudonymisation: E.164 for phones, digits only for cards and ids, the compact
    /// upper-case IBAN, the `std` text form of an IP address, a lower-case e-mail domain.
    pub normalized: String,
    /// The rule that matched, for explanations: `e164`, `national`, `visa`, `prc-resident-id`,
    /// `iso13616`, `ipv4`, `identity-individual`, …
    pub rule: &'static str,
}

/// How to build [`Detectors`]; deserialisable from the policy section of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectorConfig {
    /// Regions (ISO 3166-1 alpha-2, e.g. `CN`, `SA`) whose national phone formats are
    /// recognised; the first is the default region. A number written in international form
    /// (`+…` or `00…`) is recognised whatever this list holds. Empty by default: without a
    /// region, `010 6552 9988` is ambiguous and is not reported.
    pub phone_regions: Vec<String>,
    /// Infrastructure ranges in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`): addresses
    /// inside them are not personal data and are not reported. Empty: report every address.
    pub infrastructure: Vec<String>,
    /// The categories to detect. All by default.
    pub categories: Vec<Category>,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            phone_regions: Vec::new(),
            infrastructure: Vec::new(),
            categories: Category::ALL.to_vec(),
        }
    }
}

impl DetectorConfig {
    /// The default configuration with `region` as the default phone region.
    pub fn with_default_region(region: &str) -> DetectorConfig {
        DetectorConfig {
            phone_regions: vec![region.to_string()],
            ..DetectorConfig::default()
        }
    }
}

/// Why a [`DetectorConfig`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A phone region is not an ISO 3166-1 alpha-2 code known to the numbering metadata.
    #[error("unknown phone region {0:?} (expected an ISO 3166-1 alpha-2 code such as CN)")]
    UnknownRegion(String),
    /// An infrastructure range is not in CIDR notation.
    #[error(transparent)]
    Cidr(#[from] CidrError),
    /// Another key of the policy is refused; the message names it.
    #[error("{0}")]
    Invalid(String),
}

/// The detectors, configured. Build once, share freely.
#[derive(Debug, Clone)]
pub struct Detectors {
    regions: Vec<phonenumber::country::Id>,
    infrastructure: Vec<Cidr>,
    enabled: u16,
}

impl Detectors {
    /// Checks and compiles a configuration.
    pub fn new(config: &DetectorConfig) -> Result<Detectors, ConfigError> {
        let regions = config
            .phone_regions
            .iter()
            .map(|r| {
                r.trim()
                    .to_ascii_uppercase()
                    .parse()
                    .map_err(|_| ConfigError::UnknownRegion(r.clone()))
            })
            .collect::<Result<_, _>>()?;
        let infrastructure = config
            .infrastructure
            .iter()
            .map(|c| c.parse())
            .collect::<Result<_, _>>()?;
        let enabled = config.categories.iter().fold(0, |m, c| m | c.bit());
        Ok(Detectors {
            regions,
            infrastructure,
            enabled,
        })
    }

    /// Whether `category` is switched on.
    pub fn is_enabled(&self, category: Category) -> bool {
        self.enabled & category.bit() != 0
    }

    /// Finds personal data in `text`: the findings of every enabled text detector, without
    /// overlaps (where two overlap, the one with the stronger evidence wins: e-mail, IBAN,
    /// national id, card, IP address, phone, in that order, then the longer), sorted by
    /// `start`.
    ///
    /// The detectors read the text after Unicode compatibility normalisation (NFKC: the
    /// full-width `ｅｖｅ＠corp.cn`) and re-fanging of the defanged forms of CTI prose
    /// (`45[.]33[.]32[.]158`, `a[@]b.cn`, `a(at)b.cn`, `hxxp://`); a finding's `start..end`
    /// and `value` are always the span in `text` as written (the whole defanged or
    /// full-width form), its `normalized` the canonical form, so that every spelling of one
    /// address gets one pseudonym.
    pub fn scan_text(&self, text: &str) -> Vec<Finding> {
        let view = view::View::new(text);
        if view.is_identity() {
            return self.scan_plain(text);
        }
        let mut found = self.scan_plain(view.text(text));
        for f in &mut found {
            let r = view.original(f.start..f.end);
            f.start = r.start;
            f.end = r.end;
            f.value = text[r].to_owned();
        }
        found
    }

    /// Finds personal data in a JSON number (`"x_phone": 8613800138001`): its decimal text
    /// through [`Detectors::scan_text`] (a card or identity number stored as a number), and
    /// else, for 11 to 15 digits, as an international phone number written without its `+`.
    /// Only non-negative integers: a fraction or a negative number is no identifier.
    pub fn scan_number(&self, number: &serde_json::Number) -> Vec<Finding> {
        if !number.is_u64() {
            return Vec::new();
        }
        let digits = number.to_string();
        let found = self.scan_text(&digits);
        if !found.is_empty() || !self.is_enabled(Category::Phone) {
            return found;
        }
        match phone::international_digits(&digits) {
            Some(e164) => vec![Finding {
                category: Category::Phone,
                start: 0,
                end: digits.len(),
                value: digits,
                normalized: e164,
                rule: "e164-number",
            }],
            None => Vec::new(),
        }
    }

    /// [`Detectors::scan_text`] on text as the detectors read it.
    fn scan_plain(&self, text: &str) -> Vec<Finding> {
        let mut all = Vec::new();
        // A whole STIX identifier or timestamp holds no personal data (the noise mask would
        // drop every candidate in it anyway); they are a third of the strings of a bundle.
        if is_identifier_or_timestamp(text) {
            return all;
        }
        if self.is_enabled(Category::Email) && text.contains('@') {
            email::find(text, &mut all);
        }
        if self.is_enabled(Category::IpAddress) {
            ip::find(text, &self.infrastructure, &mut all);
        }
        // The numeric detectors need a run of at least seven digits (the shortest phone
        // number; cards and identity numbers are longer), an IBAN a country code and check
        // digits; most strings have neither, and then skip the noise mask and the scans.
        let numeric = [Category::Phone, Category::NationalId, Category::PaymentCard];
        let digit_run = numeric.iter().any(|&c| self.is_enabled(c)) && has_digit_run(text);
        let iban = self.is_enabled(Category::Iban) && iban::may_contain(text);
        if digit_run || iban {
            let mask = text::NoiseMask::new(text);
            if iban {
                iban::find(text, &mask, &mut all);
            }
            if digit_run && self.is_enabled(Category::NationalId) {
                national_id::find(text, &mask, &mut all);
            }
            if digit_run && self.is_enabled(Category::PaymentCard) {
                card::find(text, &mask, &mut all);
            }
            if digit_run && self.is_enabled(Category::Phone) {
                phone::find(text, &self.regions, &mask, &mut all);
            }
        }
        resolve_overlaps(all)
    }

    /// Finds personal data in a STIX object, or in any JSON value (a bundle, an envelope):
    /// every string at any depth, including custom properties and extensions, through
    /// [`Detectors::scan_text`]; the string literals of an `indicator`'s STIX pattern (parsed
    /// with [`concord_pattern::parse_syntax`]) instead of the pattern's raw text; and the
    /// structural detectors on every object that has a `type`. Findings come in the order of
    /// the walk (arrays in order, objects in the iteration order of `serde_json`'s map, which
    /// is key order unless its `preserve_order` feature is on), each with its JSON path (see
    /// [`ObjectFinding::path`]).
    pub fn scan_object(&self, object: &serde_json::Value) -> Vec<ObjectFinding> {
        let mut out = Vec::new();
        object::walk(self, object, &mut String::new(), &mut out);
        out
    }
}

/// Whether `text` is, as a whole, a STIX identifier (`type--UUID`, STIX 2.1 §2.9) or a STIX
/// timestamp (§3.2).
fn is_identifier_or_timestamp(text: &str) -> bool {
    if text.len() < 20 {
        return false;
    }
    if text.as_bytes()[0].is_ascii_digit() {
        text.len() <= 40 && concord_stix::Timestamp::parse(text).is_ok()
    } else {
        text.contains("--") && concord_stix::id::id_type(text).is_ok()
    }
}

/// Whether `text` has a run of at least seven digits joined only by the separators people
/// write inside numbers (space, `-`, `.`, parentheses, `+`, no-break and thin spaces;
/// at most three in a row): the least that a phone number, payment card or identity number
/// needs. A letter or any other character ends a run, so the digits of `(Citation: X 2019)`
/// scattered through a description never add up.
fn has_digit_run(text: &str) -> bool {
    let (mut digits, mut separators) = (0usize, 0usize);
    for c in text.chars() {
        if text::digit_value(c).is_some() {
            digits += 1;
            separators = 0;
            if digits >= 7 {
                return true;
            }
        } else if matches!(
            c,
            ' ' | '-' | '.' | '(' | ')' | '+' | '\u{00A0}' | '\u{2009}' | '\u{202F}'
        ) && separators < 3
        {
            separators += 1;
        } else {
            digits = 0;
            separators = 0;
        }
    }
    false
}

fn resolve_overlaps(mut all: Vec<Finding>) -> Vec<Finding> {
    all.sort_by(|a, b| {
        (a.category.rank(), b.end - b.start, a.start).cmp(&(
            b.category.rank(),
            a.end - a.start,
            b.start,
        ))
    });
    // Accepted findings, disjoint, keyed by start.
    let mut taken: BTreeMap<usize, Finding> = BTreeMap::new();
    for f in all {
        let clash = taken
            .range(..f.end)
            .next_back()
            .is_some_and(|(_, g)| g.end > f.start);
        if !clash {
            taken.insert(f.start, f);
        }
    }
    taken.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors() {
        let mut c = DetectorConfig::with_default_region("ZZ");
        assert_eq!(
            Detectors::new(&c).unwrap_err(),
            ConfigError::UnknownRegion("ZZ".into())
        );
        c.phone_regions = vec!["cn".into()];
        c.infrastructure = vec!["10.0.0.0/40".into()];
        assert!(matches!(Detectors::new(&c), Err(ConfigError::Cidr(_))));
    }

    #[test]
    fn config_from_json() {
        let c: DetectorConfig = serde_json::from_str(
            r#"{"phone_regions": ["CN"], "categories": ["email", "ip_address"]}"#,
        )
        .unwrap();
        let d = Detectors::new(&c).unwrap();
        assert!(d.is_enabled(Category::Email) && !d.is_enabled(Category::Phone));
        let found = d.scan_text("a@b.org 13812345678 1.2.3.4");
        assert_eq!(found.len(), 2);
    }

    #[test]
    fn overlaps_prefer_stronger_evidence() {
        let d = Detectors::new(&DetectorConfig::with_default_region("CN")).unwrap();
        // A QQ-style address: the phone-shaped local part belongs to the e-mail.
        let f = d.scan_text("邮箱 13812345678@163.com");
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].category, Category::Email);
        // Sorted, disjoint.
        let f = d.scan_text("x 4111 1111 1111 1111 y 10.1.1.1 z +86 138 1234 5678");
        let cats: Vec<_> = f.iter().map(|f| f.category).collect();
        assert_eq!(
            cats,
            [Category::PaymentCard, Category::IpAddress, Category::Phone]
        );
    }

    #[test]
    fn detectors_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Detectors>();
    }
}
