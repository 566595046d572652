//! MISP `tlp:*` tags and the TLP marking definitions they become.
//!
//! One conversion writes one TLP version (issue 24, item 3: misp-stix mixes them, RED as
//! TLP 1.0 beside CLEAR and AMBER+STRICT as TLP 2.0), chosen by [`TlpVersion`]:
//!
//! - TLP 2.0 (the default): every tag becomes the FIRST TLP 2.0 marking definition
//!   (`tlp_2_0` property extension, `extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d`);
//!   `tlp:white` is TLP 2.0 CLEAR.
//! - TLP 1.0: every tag becomes a TLP 1.0 marking definition of STIX 2.1 §7.2.1.4;
//!   `tlp:clear` is TLP 1.0 WHITE. TLP 1.0 has no AMBER+STRICT, and neither AMBER (looser)
//!   nor RED (another meaning) may stand for it: `tlp:amber+strict` alone stays TLP 2.0.
//!
//! The ids are the fixed ones that concord-policy's TLP gate knows.

use serde_json::{Value, json};

/// A TLP tag's level, ordered from the least to the most restrictive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// CLEAR / WHITE.
    Clear,
    /// GREEN.
    Green,
    /// AMBER.
    Amber,
    /// AMBER+STRICT.
    AmberStrict,
    /// RED.
    Red,
}

/// One TLP marking: its tag, level, marking-definition id and body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marking {
    /// The MISP tag, lower case (`tlp:amber+strict`).
    pub tag: &'static str,
    /// Its level.
    pub level: Level,
    /// The marking-definition id.
    pub id: &'static str,
    /// `true` for TLP 2.0, `false` for TLP 1.0.
    tlp2: bool,
    /// The TLP word in the definition.
    word: &'static str,
}

const MARKINGS: &[Marking] = &[
    Marking {
        tag: "tlp:white",
        level: Level::Clear,
        id: "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",
        tlp2: false,
        word: "white",
    },
    Marking {
        tag: "tlp:green",
        level: Level::Green,
        id: "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
        tlp2: false,
        word: "green",
    },
    Marking {
        tag: "tlp:amber",
        level: Level::Amber,
        id: "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
        tlp2: false,
        word: "amber",
    },
    Marking {
        tag: "tlp:red",
        level: Level::Red,
        id: "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
        tlp2: false,
        word: "red",
    },
    Marking {
        tag: "tlp:clear",
        level: Level::Clear,
        id: "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
        tlp2: true,
        word: "clear",
    },
    Marking {
        tag: "tlp:amber+strict",
        level: Level::AmberStrict,
        id: "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
        tlp2: true,
        word: "amber+strict",
    },
    // TLP 2.0 GREEN, AMBER, RED: read back from STIX only (MISP tags of those are 1.0 above).
    Marking {
        tag: "tlp:green",
        level: Level::Green,
        id: "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
        tlp2: true,
        word: "green",
    },
    Marking {
        tag: "tlp:amber",
        level: Level::Amber,
        id: "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
        tlp2: true,
        word: "amber",
    },
    Marking {
        tag: "tlp:red",
        level: Level::Red,
        id: "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
        tlp2: true,
        word: "red",
    },
];

/// The TLP version that MISP tags become in STIX (see the module documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlpVersion {
    /// TLP 1.0, the marking definitions of STIX 2.1 §7.2.1.4.
    V1,
    /// FIRST TLP 2.0, through its STIX extension (the default).
    #[default]
    V2,
}

impl std::str::FromStr for TlpVersion {
    type Err = String;
    /// `"1.0"` or `"2.0"`.
    fn from_str(s: &str) -> Result<TlpVersion, String> {
        match s {
            "1.0" => Ok(TlpVersion::V1),
            "2.0" => Ok(TlpVersion::V2),
            other => Err(format!("TLP version {other:?}: must be \"1.0\" or \"2.0\"")),
        }
    }
}

/// The marking of a MISP tag in `version` (see the module documentation), if it is a TLP tag.
pub fn from_tag_as(version: TlpVersion, tag: &str) -> Option<Marking> {
    let level = from_tag(tag)?.level;
    let want_v2 = version == TlpVersion::V2 || level == Level::AmberStrict;
    MARKINGS
        .iter()
        .find(|m| m.level == level && m.tlp2 == want_v2)
        .copied()
}

/// The strictest TLP among `tags`, as a marking of `version`.
pub fn strictest_as<'a>(
    version: TlpVersion,
    tags: impl IntoIterator<Item = &'a str>,
) -> Option<Marking> {
    tags.into_iter()
        .filter_map(|t| from_tag_as(version, t))
        .max_by_key(|m| m.level)
}

/// The marking of a MISP tag (`tlp:AMBER+STRICT` and `tlp:amber+strict` alike), if it is a
/// TLP tag: the first of the table (TLP 1.0 where it has the level; for reading tags back).
pub fn from_tag(tag: &str) -> Option<Marking> {
    let t = tag.trim().to_ascii_lowercase();
    MARKINGS.iter().find(|m| m.tag == t).copied()
}

/// The marking of a marking-definition id, if it is one of the nine TLP definitions.
pub fn from_id(id: &str) -> Option<Marking> {
    MARKINGS.iter().find(|m| m.id == id).copied()
}

/// The strictest TLP among `tags` (as [`from_tag`]).
pub fn strictest<'a>(tags: impl IntoIterator<Item = &'a str>) -> Option<Marking> {
    tags.into_iter()
        .filter_map(from_tag)
        .max_by_key(|m| m.level)
}

impl Marking {
    /// The marking-definition object, exactly as STIX 2.1 §7.2.1.4 (TLP 1.0) or the FIRST
    /// TLP 2.0 extension (as misp-stix and the OASIS common objects write it) defines it.
    pub fn definition(&self) -> Value {
        if self.tlp2 {
            json!({
                "type": "marking-definition", "spec_version": "2.1", "id": self.id,
                "created": "2022-10-01T00:00:00.000Z",
                "name": format!("TLP:{}", self.word.to_ascii_uppercase()),
                "extensions": {"extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d": {
                    "extension_type": "property-extension", "tlp_2_0": self.word}}
            })
        } else {
            json!({
                "type": "marking-definition", "spec_version": "2.1", "id": self.id,
                "created": "2017-01-20T00:00:00.000Z", "definition_type": "tlp",
                "name": format!("TLP:{}", self.word.to_ascii_uppercase()),
                "definition": {"tlp": self.word}
            })
        }
    }
}
