//! # concord-misp: MISP events, feeds and warninglists to and from STIX 2.1
//!
//! Most CERTs run MISP. This crate takes what a MISP instance holds and gives back what a MISP
//! instance can subscribe to:
//!
//! - [`to_stix`]: MISP event JSON (one event, `{"Event": …}`, a list, `{"response": […]}`) to
//!   STIX 2.1 objects, following misp-stix's conventions; streamed in two passes over the
//!   input (see [`reader`]) so an event of 100,000 attributes is never held whole.
//! - [`from_stix`]: a `report`/`grouping` and the objects it refers to, back to one MISP event.
//! - [`export`]: a whole collection to MISP events or a feed in bounded memory: the
//!   export's objects spilled to a file, ids kept in memory, each event written as it is
//!   converted.
//! - [`feed`]: MISP feed directories (`manifest.json`, `<uuid>.json`, `hashes.csv`), read
//!   incrementally and written as PyMISP's feed generator writes them.
//! - [`warninglist`]: MISP warninglists, and a matcher for import and `concord match`.
//!
//! Every STIX object produced passes [`concord_stix::validate_object`], and every pattern is
//! printed by concord-pattern and passes [`concord_pattern::parse`]. No I/O beyond the files
//! and streams the caller hands in.

pub mod export;
pub mod feed;
pub mod from_stix;
pub mod model;
pub mod reader;
pub mod tlp;
pub mod to_stix;
pub mod types;
pub mod warninglist;

pub use from_stix::{FromStixError, to_misp_event};
pub use to_stix::{
    Container, ConversionReport, Issue, ToStixError, ToStixOptions, to_stix, to_stix_bundle,
};
pub use warninglist::{Warninglist, Warninglists};

/// Whether the start of a file is MISP event JSON rather than a STIX bundle: a top-level list,
/// or MISP's keys (`Event`, `response`, `Attribute`, `threat_level_id`) before any
/// `"type": "bundle"`.
pub fn looks_like_misp(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    let t = text.trim_start_matches('\u{feff}').trim_start();
    // A list is MISP only by the keys of its events: a JSON array of STIX objects must get
    // the STIX reader's "not a STIX bundle", not be read as events without attributes.
    let compact: String = t.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.contains("\"type\":\"bundle\"") {
        return false;
    }
    [
        "\"Event\":",
        "\"response\":",
        "\"Attribute\":",
        "\"threat_level_id\":",
        "\"orgc_id\":",
    ]
    .iter()
    .any(|k| compact.contains(k))
}
