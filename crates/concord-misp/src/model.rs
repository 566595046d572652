//! The parts of the MISP core format (MISP RFC draft "MISP core format", and PyMISP's
//! `schema-lax.json`) that the converters read and write.
//!
//! MISP writes most scalars as strings (`"timestamp": "1603642920"`, `"to_ids": "1"` in older
//! exports) and sometimes as numbers or booleans; the deserialisers here accept both forms.
//! Unknown keys are ignored on read.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// A tag (`{"name": "tlp:green", "colour": …}`); only the name carries meaning here.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct Tag {
    /// The tag name, e.g. `tlp:amber+strict` or `misp-galaxy:threat-actor="Sofacy"`.
    pub name: String,
}

/// An organisation (`Org` / `Orgc`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct Org {
    /// Organisation UUID.
    #[serde(default)]
    pub uuid: String,
    /// Organisation name.
    #[serde(default)]
    pub name: String,
}

/// A MISP sighting (MISP core format §2.5): `type` 0 is a sighting, 1 a false positive,
/// 2 an expiration.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct Sighting {
    /// Sighting UUID.
    #[serde(default)]
    pub uuid: String,
    /// `0`, `1` or `2` (as a string in MISP exports).
    #[serde(default, rename = "type", deserialize_with = "lenient_string")]
    pub kind: String,
    /// Epoch seconds (string in exports).
    #[serde(default, deserialize_with = "lenient_string")]
    pub date_sighting: String,
    /// Where it was sighted.
    #[serde(default, rename = "Organisation", alias = "Org")]
    pub org: Option<Org>,
    /// Free-text source.
    #[serde(default, deserialize_with = "lenient_string")]
    pub source: String,
}

/// A galaxy cluster (MISP galaxy format): one threat actor, technique, malware family…
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct GalaxyCluster {
    /// Cluster UUID (stable across MISP instances).
    #[serde(default)]
    pub uuid: String,
    /// The galaxy type, e.g. `mitre-attack-pattern`, `threat-actor`.
    #[serde(default, rename = "type")]
    pub kind: String,
    /// Display value, e.g. `Sofacy`.
    #[serde(default)]
    pub value: String,
    /// The tag that attaches it, e.g. `misp-galaxy:threat-actor="Sofacy"`.
    #[serde(default)]
    pub tag_name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Free-form metadata (synonyms, refs, external_id, kill_chain…).
    #[serde(default)]
    pub meta: Option<Value>,
}

/// A galaxy with the clusters attached to an event or attribute.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct Galaxy {
    /// Galaxy UUID.
    #[serde(default)]
    pub uuid: String,
    /// Galaxy name, e.g. `Attack Pattern`.
    #[serde(default)]
    pub name: String,
    /// Galaxy type, e.g. `mitre-attack-pattern`.
    #[serde(default, rename = "type")]
    pub kind: String,
    /// The attached clusters.
    #[serde(default, rename = "GalaxyCluster")]
    pub clusters: Vec<GalaxyCluster>,
}

/// A MISP attribute (MISP core format §2.3).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct Attribute {
    /// Attribute UUID.
    #[serde(default)]
    pub uuid: String,
    /// MISP attribute type, e.g. `ip-dst`, `filename|sha1` (describeTypes.json).
    #[serde(default, rename = "type")]
    pub kind: String,
    /// Category, e.g. `Network activity`.
    #[serde(default)]
    pub category: String,
    /// The value; composite types join their parts with `|`.
    #[serde(default, deserialize_with = "lenient_string")]
    pub value: String,
    /// Whether the value is an indicator for detection.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub to_ids: bool,
    /// Comment.
    #[serde(default, deserialize_with = "lenient_string")]
    pub comment: String,
    /// Last change, epoch seconds.
    #[serde(default, deserialize_with = "lenient_string")]
    pub timestamp: String,
    /// First seen (ISO 8601), optional.
    #[serde(default, deserialize_with = "lenient_string")]
    pub first_seen: String,
    /// Last seen (ISO 8601), optional.
    #[serde(default, deserialize_with = "lenient_string")]
    pub last_seen: String,
    /// Relation within a MISP object (`object_relation`), empty for event attributes.
    #[serde(default, deserialize_with = "lenient_string")]
    pub object_relation: String,
    /// Tags.
    #[serde(default, rename = "Tag")]
    pub tags: Vec<Tag>,
    /// Galaxies attached to the attribute.
    #[serde(default, rename = "Galaxy")]
    pub galaxies: Vec<Galaxy>,
    /// Sightings of the attribute.
    #[serde(default, rename = "Sighting")]
    pub sightings: Vec<Sighting>,
    /// Base64 payload of `attachment` / `malware-sample` attributes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

/// A reference from a MISP object to another object or attribute.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct ObjectReference {
    /// UUID of the referenced object or attribute.
    #[serde(default)]
    pub referenced_uuid: String,
    /// e.g. `related-to`, `drops`.
    #[serde(default)]
    pub relationship_type: String,
}

/// A MISP object (MISP core format §2.4): attributes grouped by an object template.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct MispObject {
    /// Object UUID.
    #[serde(default)]
    pub uuid: String,
    /// Template name, e.g. `file`, `domain-ip`.
    #[serde(default)]
    pub name: String,
    /// Template meta-category, e.g. `file`, `network`.
    #[serde(default, rename = "meta-category")]
    pub meta_category: String,
    /// Comment.
    #[serde(default, deserialize_with = "lenient_string")]
    pub comment: String,
    /// Last change, epoch seconds.
    #[serde(default, deserialize_with = "lenient_string")]
    pub timestamp: String,
    /// The object's attributes.
    #[serde(default, rename = "Attribute")]
    pub attributes: Vec<Attribute>,
    /// References to other objects or attributes.
    #[serde(default, rename = "ObjectReference")]
    pub references: Vec<ObjectReference>,
}

/// Everything of an event except its attributes and objects, which are streamed.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct EventMeta {
    /// Event UUID.
    #[serde(default)]
    pub uuid: String,
    /// Title.
    #[serde(default, deserialize_with = "lenient_string")]
    pub info: String,
    /// `YYYY-MM-DD`.
    #[serde(default, deserialize_with = "lenient_string")]
    pub date: String,
    /// Last change, epoch seconds.
    #[serde(default, deserialize_with = "lenient_string")]
    pub timestamp: String,
    /// Publication, epoch seconds.
    #[serde(default, deserialize_with = "lenient_string")]
    pub publish_timestamp: String,
    /// Whether published.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub published: bool,
    /// `1`–`4`.
    #[serde(default, deserialize_with = "lenient_string")]
    pub threat_level_id: String,
    /// `0`–`2`.
    #[serde(default, deserialize_with = "lenient_string")]
    pub analysis: String,
    /// `0`–`5`.
    #[serde(default, deserialize_with = "lenient_string")]
    pub distribution: String,
    /// The creating organisation.
    #[serde(default, rename = "Orgc")]
    pub orgc: Option<Org>,
    /// Tags.
    #[serde(default, rename = "Tag")]
    pub tags: Vec<Tag>,
    /// Galaxies attached to the event.
    #[serde(default, rename = "Galaxy")]
    pub galaxies: Vec<Galaxy>,
    /// Event-level sightings (some exports list them here, with `attribute_uuid`).
    #[serde(default, rename = "Sighting")]
    pub sightings: Vec<Value>,
}

/// A string, number or boolean as a string; `null` as empty.
pub(crate) fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s,
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    })
}

/// `true`, `1`, `"1"`, `"true"`, `"True"` as true.
pub(crate) fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => b,
        Value::Number(n) => n.as_i64() == Some(1),
        Value::String(s) => matches!(s.as_str(), "1" | "true" | "True"),
        _ => false,
    })
}
