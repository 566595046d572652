//! STIX identifiers (STIX 2.1 §2.9): `object-type--UUID`.

use std::fmt;

/// A parsed STIX identifier `type--uuid`.
///
/// STIX 2.1 §2.9: the type part MUST be the object's `type`, the UUID part MUST be an RFC 4122
/// UUID (version 4 for SDOs/SROs and version 5 for SCOs are only SHOULDs, so any RFC 4122
/// version 1–5 is accepted).
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
    /// The UUID part is not an RFC 4122 UUID (lower case, RFC 4122 variant, version 1–5).
    #[error(
        "identifier UUID part {0:?} is not an RFC 4122 UUID (lower case, variant 10xx, version 1-5)"
    )]
    Uuid(String),
}

impl StixId {
    /// Parses `type--uuid`. The UUID must be written in lower-case hyphenated form.
    pub fn parse(text: &str) -> Result<StixId, IdError> {
        let ty = id_type(text)?;
        let uuid = uuid::Uuid::try_parse(&text[ty.len() + 2..])
            .map_err(|_| IdError::Uuid(text[ty.len() + 2..].to_owned()))?;
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
    // RFC 4122 defines the variant and versions 1-5; STIX 2.1 §2.9 requires an RFC 4122
    // UUID (and the OASIS validator refuses other version nibbles).
    let ok = u.len() == 36
        && !u.bytes().any(|c| c.is_ascii_uppercase())
        && uuid::Uuid::try_parse(u).is_ok_and(|x| {
            x.get_variant() == uuid::Variant::RFC4122 && (1..=5).contains(&x.get_version_num())
        });
    if ok {
        Ok(ty)
    } else {
        Err(IdError::Uuid(u.to_owned()))
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
