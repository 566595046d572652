//! STIX identifiers (STIX 2.1 §2.9): `object-type--UUID`.

use std::fmt;

/// A parsed STIX identifier `type--uuid`.
///
/// STIX 2.1 §2.9: the type part MUST be the object's `type`, the UUID part MUST be an RFC 4122
/// UUID (version 4 for SDOs/SROs and version 5 for SCOs are only SHOULDs). RFC 9562
/// obsoletes RFC 4122 and defines versions 1 to 8 (6, 7 and 8 are new: reordered time,
/// Unix-time-ordered, custom), all with the variant `10xx`; every one of them is accepted.
/// The rest — versions 0 and 9–15, another variant, and the Nil and Max UUIDs of RFC 9562
/// §5.9–5.10, which are not versions — is refused, naming the rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StixId {
    object_type: String,
    uuid: uuid::Uuid,
}

/// Why a string is not a STIX identifier.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// No `--` separator.
    #[error("identifier must have the form 'object-type--UUID'")]
    Form,
    /// The type part is not a valid STIX type name.
    #[error("identifier type part {0:?} is not a valid object type name")]
    Type(String),
    /// The UUID part is not a UUID of RFC 9562 (which obsoletes RFC 4122): lower case,
    /// hyphenated, variant `10xx` and a version from 1 to 8. The string is the UUID part and
    /// what is wrong with it.
    #[error(
        "identifier UUID part {0}: must be an RFC 9562 UUID (lower-case hex, variant 10xx, \
         version 1 to 8; STIX 2.1 §2.9)"
    )]
    Uuid(String),
}

impl StixId {
    /// Parses `type--uuid`. The UUID must be written in lower-case hyphenated form.
    pub fn parse(text: &str) -> Result<StixId, IdError> {
        let ty = id_type(text)?;
        let uuid = uuid::Uuid::try_parse(&text[ty.len() + 2..])
            .map_err(|_| IdError::Uuid(format!("{:?}", &text[ty.len() + 2..])))?;
        Ok(StixId {
            object_type: ty.to_owned(),
            uuid,
        })
    }

    /// The type part, e.g. `indicator`.
    pub fn object_type(&self) -> &str {
        &self.object_type
    }

    /// The UUID part.
    pub fn uuid(&self) -> uuid::Uuid {
        self.uuid
    }
}

impl fmt::Display for StixId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}--{}", self.object_type, self.uuid)
    }
}

/// Checks `type--uuid` without allocating and returns the type part: the check behind
/// [`StixId::parse`], for hot paths that only need to know the id is well formed.
pub fn id_type(text: &str) -> Result<&str, IdError> {
    let (ty, u) = text.rsplit_once("--").ok_or(IdError::Form)?;
    if !is_type_name(ty) {
        return Err(IdError::Type(ty.to_owned()));
    }
    // STIX 2.1 §2.9 requires an RFC 4122 UUID; RFC 9562 obsoletes RFC 4122 and defines the
    // variant `10xx` with versions 1 to 8 (issue 24, item 6: UUIDv7 ids were refused).
    let why = if u.len() != 36 || u.bytes().any(|c| c.is_ascii_uppercase()) {
        Some("not 36 characters of lower-case hex and hyphens".to_owned())
    } else {
        match uuid::Uuid::try_parse(u) {
            Err(_) => Some("not hyphenated hex".to_owned()),
            Ok(x) if x.get_variant() != uuid::Variant::RFC4122 => {
                Some("variant is not 10xx".to_owned())
            }
            Ok(x) if !(1..=8).contains(&x.get_version_num()) => Some(format!(
                "version {} is not one RFC 9562 defines",
                x.get_version_num()
            )),
            Ok(_) => None,
        }
    };
    match why {
        None => Ok(ty),
        Some(why) => Err(IdError::Uuid(format!("{u:?} ({why})"))),
    }
}

/// STIX 2.1 §3.1 (type): 3–250 characters, only lower-case ASCII letters, digits and hyphens,
/// starting with a letter... the spec says "MUST only contain the characters a–z, 0–9 and
/// hyphen", "MUST NOT contain a double hyphen", and "SHOULD be 3–250 characters".
pub fn is_type_name(ty: &str) -> bool {
    (3..=250).contains(&ty.len())
        && ty
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && !ty.contains("--")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 24, item 6: every version RFC 9562 defines (1 to 8), and nothing else.
    #[test]
    fn uuid_versions_of_rfc_9562() {
        for v in 1..=8u8 {
            let id = format!("indicator--0190a2b4-3c5d-{v}e6f-8a9b-0c1d2e3f4a5b");
            assert_eq!(id_type(&id), Ok("indicator"), "version {v}");
            assert_eq!(
                StixId::parse(&id).unwrap().uuid().get_version_num(),
                usize::from(v)
            );
        }
        for (u, why) in [
            (
                "0190a2b4-3c5d-0e6f-8a9b-0c1d2e3f4a5b",
                "version 0 is not one RFC 9562 defines",
            ),
            (
                "0190a2b4-3c5d-9e6f-8a9b-0c1d2e3f4a5b",
                "version 9 is not one RFC 9562 defines",
            ),
            (
                "0190a2b4-3c5d-fe6f-8a9b-0c1d2e3f4a5b",
                "version 15 is not one RFC 9562 defines",
            ),
            (
                "0190a2b4-3c5d-7e6f-ca9b-0c1d2e3f4a5b",
                "variant is not 10xx",
            ),
            (
                "00000000-0000-0000-0000-000000000000",
                "variant is not 10xx",
            ),
            (
                "ffffffff-ffff-ffff-ffff-ffffffffffff",
                "variant is not 10xx",
            ),
            ("0190A2B4-3C5D-7E6F-8A9B-0C1D2E3F4A5B", "lower-case"),
        ] {
            let e = id_type(&format!("indicator--{u}")).unwrap_err().to_string();
            assert!(
                e.contains(u) && e.contains(why) && e.contains("RFC 9562"),
                "{e}"
            );
        }
    }
}
