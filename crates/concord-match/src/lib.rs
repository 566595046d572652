//! Matching logs against many STIX 2.1 indicators at line rate (issue 4).
//!
//! Shape (both `concord match` and `POST /api/match` are thin layers over it):
//!
//! - [`ioc_list`]: plain IOC lists to indicators with deterministic ids.
//! - [`input`]: readers that turn a log (JSON lines: Suricata `eve.json`, Zeek JSON; Zeek TSV;
//!   plain observables; CSV) into [`Record`]s of STIX object paths and values, through a
//!   [`FieldMap`] (built-in or TOML).
//! - [`IndicatorSet`]: indicator objects compiled into indexes.
//! - [`Matcher`]: records in, [`Hit`]s out, plus per-indicator [`Aggregate`]s for sightings.
//! - [`sighting`]: the sightings that come back, counted per indicator ([`sighting::Tally`]).

pub mod classify;
pub mod fieldmap;
pub mod input;
pub mod ioc_list;
mod matcher;
pub mod record;
mod set;
pub mod sighting;

pub use fieldmap::{FieldMap, FieldMapError};
pub use input::{Format, InputError, Malformed, RecordReader, open};
pub use matcher::{Aggregate, Hit, MatchStats, Matcher, RunSummary, match_reader};
pub use record::{Field, FieldValue, Record};
pub use set::{IndicatorSet, ReferenceMatcher, SetBuilder, SetStats, Skipped};
