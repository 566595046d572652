//! STIX identifiers (STIX 2.1 §2.9): `object-type--UUID`.

use std::fmt;

/// A parsed STIX identifier `type--uuid`.
///
/// STIX 2.1 §2.9: the type part MUST be the object's `type`, the UUID part MUST be an RFC 4122
/// UUID (version 4 for SDOs/SROs, version 5 recommended for SCOs; any RFC 4122 variant is
/// accepted here, as the spec only says SHOULD for the version).
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
    /// The UUID part is not an RFC 4122 UUID.
    #[error("identifier UUID part {0:?} is not an RFC 4122 UUID")]
    Uuid(String),
}

impl StixId {
    /// Parses `type--uuid`. The UUID must be written in lower-case hyphenated form.
    pub fn parse(text: &str) -> Result<StixId, IdError> {
        let (ty, u) = text.rsplit_once("--").ok_or(IdError::Form)?;
        if !is_type_name(ty) {
            return Err(IdError::Type(ty.to_owned()));
        }
        let uuid = uuid::Uuid::try_parse(u).map_err(|_| IdError::Uuid(u.to_owned()))?;
        if u.len() != 36 || u.bytes().any(|c| c.is_ascii_uppercase()) {
            return Err(IdError::Uuid(u.to_owned()));
        }
        if uuid.get_variant() != uuid::Variant::RFC4122 {
            return Err(IdError::Uuid(u.to_owned()));
        }
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
