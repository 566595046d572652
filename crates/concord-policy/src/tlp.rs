//! Traffic Light Protocol markings: TLP 1.0 as STIX 2.1 §7.2.1.4 defines it (four marking
//! definitions with fixed ids) and TLP 2.0 as FIRST defines it, carried in STIX by the
//! marking definitions of the `tlp_2_0` property extension
//! (`extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d`, OASIS cti-stix-common-objects).

use serde_json::Value;

/// A TLP level, ordered from the least to the most restrictive. TLP 1.0 WHITE is CLEAR.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tlp {
    /// TLP:CLEAR (TLP 1.0: WHITE): no limit on disclosure.
    Clear,
    /// TLP:GREEN: the community.
    Green,
    /// TLP:AMBER: the recipient organisation and those who need to know.
    Amber,
    /// TLP:AMBER+STRICT (TLP 2.0 only): the recipient organisation alone.
    AmberStrict,
    /// TLP:RED: the named recipients only — on a Concord node: never leaves the node.
    Red,
}

/// The fixed ids of the TLP marking definitions: TLP 1.0 (STIX 2.1 §7.2.1.4) and TLP 2.0.
const MARKINGS: &[(&str, Tlp)] = &[
    (
        "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",
        Tlp::Clear,
    ), // 1.0 WHITE
    (
        "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
        Tlp::Green,
    ), // 1.0 GREEN
    (
        "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
        Tlp::Amber,
    ), // 1.0 AMBER
    (
        "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
        Tlp::Red,
    ), // 1.0 RED
    (
        "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
        Tlp::Clear,
    ), // 2.0 CLEAR
    (
        "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
        Tlp::Green,
    ), // 2.0 GREEN
    (
        "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
        Tlp::Amber,
    ), // 2.0 AMBER
    (
        "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
        Tlp::AmberStrict,
    ), // 2.0 AMBER+STRICT
    (
        "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
        Tlp::Red,
    ), // 2.0 RED
];

impl Tlp {
    /// The level a marking definition id stands for, when it is one of the TLP definitions.
    pub fn from_marking_id(id: &str) -> Option<Tlp> {
        MARKINGS.iter().find(|(m, _)| *m == id).map(|(_, t)| *t)
    }

    /// The label as TLP 2.0 writes it (`TLP:AMBER+STRICT`); never translated.
    pub fn label(self) -> &'static str {
        match self {
            Tlp::Clear => "TLP:CLEAR",
            Tlp::Green => "TLP:GREEN",
            Tlp::Amber => "TLP:AMBER",
            Tlp::AmberStrict => "TLP:AMBER+STRICT",
            Tlp::Red => "TLP:RED",
        }
    }

    /// Parses `clear`, `white`, `green`, `amber`, `amber+strict`, `red` (any case, with or
    /// without the `TLP:` prefix).
    pub fn parse(text: &str) -> Option<Tlp> {
        let t = text.trim().to_ascii_lowercase();
        match t.strip_prefix("tlp:").unwrap_or(&t) {
            "clear" | "white" => Some(Tlp::Clear),
            "green" => Some(Tlp::Green),
            "amber" => Some(Tlp::Amber),
            "amber+strict" => Some(Tlp::AmberStrict),
            "red" => Some(Tlp::Red),
            _ => None,
        }
    }

    /// Whether this is one of the TLP marking definitions themselves (public, shareable).
    pub fn is_tlp_definition(id: &str) -> bool {
        Tlp::from_marking_id(id).is_some()
    }
}

/// The id of the STIX extension definition of TLP 2.0 (property extension `tlp_2_0`), from
/// the OASIS cti-stix-common-objects repository.
pub const TLP_2_0_EXTENSION: &str = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d";

/// What a marking definition stands for, read from its *content*, whatever its id: the
/// strictest of every TLP signal it carries, so that a producer's own id for TLP:RED is
/// TLP:RED (fail closed). Signals: the TLP 1.0 form of STIX 2.1 §7.2.1.4
/// (`definition_type: "tlp"`, `definition: {"tlp": "red"}`), the TLP 2.0 property extension
/// (`extensions.{TLP_2_0_EXTENSION or any other}.tlp_2_0: "red"`), a `name` of the form
/// `TLP:RED`. Returns `Ok(None)` for a marking that says nothing of TLP (a statement),
/// `Err(reason)` when it claims to be TLP but names no level this node knows (undecidable).
pub fn definition_tlp(definition: &Value) -> Result<Option<Tlp>, String> {
    let id = definition.get("id").and_then(Value::as_str).unwrap_or("?");
    let mut levels: Vec<Tlp> = Tlp::from_marking_id(id).into_iter().collect();
    let mut level_of = |what: &str, v: Option<&Value>| -> Result<(), String> {
        match v.and_then(Value::as_str).and_then(Tlp::parse) {
            Some(t) => {
                levels.push(t);
                Ok(())
            }
            None => Err(format!(
                "marking definition {id}: {what} names no TLP level ({})",
                v.map_or_else(|| "missing".to_owned(), Value::to_string)
            )),
        }
    };
    if definition.get("definition_type").and_then(Value::as_str) == Some("tlp") {
        level_of(
            "definition.tlp",
            definition.get("definition").and_then(|d| d.get("tlp")),
        )?;
    }
    if let Some(Value::Object(exts)) = definition.get("extensions") {
        for (name, ext) in exts {
            if let Some(v) = ext.get("tlp_2_0") {
                level_of(&format!("extensions.{name}.tlp_2_0"), Some(v))?;
            } else if name == TLP_2_0_EXTENSION {
                level_of(&format!("extensions.{name}.tlp_2_0"), None)?;
            }
        }
    }
    if let Some(name) = definition.get("name").and_then(Value::as_str)
        && name.trim().to_ascii_lowercase().starts_with("tlp:")
    {
        level_of("name", definition.get("name"))?;
    }
    Ok(levels.into_iter().max())
}

/// The strictest TLP among an object's `object_marking_refs` that are the fixed TLP ids
/// (STIX 2.1 §7.2.2), or `None` when it carries none. Markings under other ids need their
/// definitions: see [`crate::egress::Markings`].
pub fn object_tlp(object: &Value) -> Option<Tlp> {
    object
        .get("object_marking_refs")?
        .as_array()?
        .iter()
        .filter_map(|r| r.as_str().and_then(Tlp::from_marking_id))
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_order() {
        assert_eq!(
            Tlp::from_marking_id("marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003"),
            Some(Tlp::AmberStrict)
        );
        assert!(
            Tlp::Clear < Tlp::Green && Tlp::Amber < Tlp::AmberStrict && Tlp::AmberStrict < Tlp::Red
        );
        let o = serde_json::json!({"object_marking_refs": [
            "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
            "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
            "marking-definition--fa42a846-8d90-4e51-bc29-71d5b4802168"]});
        assert_eq!(object_tlp(&o), Some(Tlp::Red));
        assert_eq!(object_tlp(&serde_json::json!({})), None);
        assert_eq!(Tlp::parse("TLP:AMBER+STRICT"), Some(Tlp::AmberStrict));
        assert_eq!(Tlp::parse("white"), Some(Tlp::Clear));
    }

    #[test]
    fn tlp_by_content_under_any_id() {
        let own = "marking-definition--0a1b2c3d-0000-4000-8000-000000000001";
        let v1 = serde_json::json!({"id": own, "type": "marking-definition",
            "definition_type": "tlp", "definition": {"tlp": "red"}});
        assert_eq!(definition_tlp(&v1), Ok(Some(Tlp::Red)));
        let v2 = serde_json::json!({"id": own, "type": "marking-definition",
            "extensions": {TLP_2_0_EXTENSION: {"extension_type": "property-extension",
            "tlp_2_0": "amber+strict"}}});
        assert_eq!(definition_tlp(&v2), Ok(Some(Tlp::AmberStrict)));
        let named = serde_json::json!({"id": own, "name": "TLP:GREEN",
            "definition_type": "statement", "definition": {"statement": "x"}});
        assert_eq!(definition_tlp(&named), Ok(Some(Tlp::Green)));
        // Mixed signals: the strictest wins.
        let mixed = serde_json::json!({"id": own, "name": "TLP:CLEAR",
            "definition_type": "tlp", "definition": {"tlp": "red"}});
        assert_eq!(definition_tlp(&mixed), Ok(Some(Tlp::Red)));
        let statement = serde_json::json!({"id": own, "definition_type": "statement",
            "definition": {"statement": "Copyright"}});
        assert_eq!(definition_tlp(&statement), Ok(None));
        let bad = serde_json::json!({"id": own, "definition_type": "tlp",
            "definition": {"tlp": "purple"}});
        assert!(definition_tlp(&bad).unwrap_err().contains("definition.tlp"));
    }
}
