//! Sightings as the producer of an indicator counts them (STIX 2.1 §5.7): what `concord
//! match` makes of hits ([`crate::Aggregate`]) comes back from partners as `sighting`
//! objects, and `concord indicator show|list` and the web UI's dashboard count them here,
//! one way: a false-positive report ([`is_false_positive`]) is counted apart, and a sighting
//! without `count` was seen once.

use serde_json::{Value, json};

/// The custom property that makes a sighting a false-positive report: OpenCTI's
/// (`StixSighting.x_opencti_negative`), which OpenCTI imports and shows as "False positive".
/// A custom property in the `x_SOURCE_NAME` form of STIX 2.1 §11.1, which validators
/// accept.
pub const FALSE_POSITIVE_PROPERTY: &str = "x_opencti_negative";

/// Whether `v` is a false-positive report: a `sighting` with `x_opencti_negative: true`.
pub fn is_false_positive(v: &Value) -> bool {
    v.get("type").and_then(Value::as_str) == Some("sighting")
        && v.get(FALSE_POSITIVE_PROPERTY).and_then(Value::as_bool) == Some(true)
}

/// How many times sighting `v` says its object was seen: `count` (STIX 2.1 §5.7, 0 to
/// 999,999,999), 1 when absent or not an integer.
pub fn times_seen(v: &Value) -> u64 {
    v.get("count").and_then(Value::as_u64).unwrap_or(1)
}

/// What the node holds about the sightings of one indicator (newest version of each
/// sighting, each counted once however many collections hold it).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    /// Sightings that are not false-positive reports.
    pub sightings: u64,
    /// The sum of their `count` (times seen).
    pub seen: u64,
    /// False-positive reports.
    pub false_positives: u64,
    /// The reports: sighting id, reporter (`created_by_ref`, else the first
    /// `where_sighted_refs`; `null` when the reporter's egress policy removed both),
    /// `received_from` (the peers and partners, `partner/NAME`, that brought it here: who
    /// reported it, whatever its policy left in the object), `description`, `created`.
    pub reports: Vec<Value>,
}

impl Tally {
    /// Counts sighting `v` (of this tally's indicator), received from `from` (the store's
    /// `received_from`; empty for one made here).
    pub fn add(&mut self, v: &Value, from: &[String]) {
        if is_false_positive(v) {
            self.false_positives += 1;
            let by = v
                .get("created_by_ref")
                .or_else(|| v.pointer("/where_sighted_refs/0"))
                .cloned()
                .unwrap_or(Value::Null);
            self.reports.push(json!({
                "sighting": v["id"], "by": by, "received_from": from,
                "description": v.get("description").cloned().unwrap_or(Value::Null),
                "created": v["created"],
            }));
        } else {
            self.sightings += 1;
            self.seen += times_seen(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_counts_reports_apart_from_sightings() {
        let me = "identity--22222222-2222-4222-8222-222222222222";
        let mut t = Tally::default();
        t.add(
            &json!({"type": "sighting", "id": "sighting--fp", "created_by_ref": me,
                    FALSE_POSITIVE_PROPERTY: true, "created": "2026-01-01T00:00:00Z"}),
            &["partner/b".to_owned()],
        );
        t.add(
            &json!({"type": "sighting", "id": "sighting--x", "count": 5}),
            &[],
        );
        t.add(&json!({"type": "sighting", "id": "sighting--y"}), &[]);
        assert_eq!((t.sightings, t.seen, t.false_positives), (2, 6, 1));
        assert_eq!(t.reports[0]["by"], me);
        assert_eq!(t.reports[0]["received_from"], json!(["partner/b"]));
    }

    #[test]
    fn only_a_negative_sighting_is_a_false_positive() {
        assert!(!is_false_positive(&json!({"type": "sighting"})));
        assert!(!is_false_positive(
            &json!({"type": "indicator", FALSE_POSITIVE_PROPERTY: true})
        ));
        assert!(!is_false_positive(
            &json!({"type": "sighting", FALSE_POSITIVE_PROPERTY: "true"})
        ));
        assert_eq!(times_seen(&json!({"count": 0})), 0);
        assert_eq!(times_seen(&json!({"count": "7"})), 1);
    }
}
