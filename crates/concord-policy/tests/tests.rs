//! Integration tests of the PII detectors, in one binary.

mod actions;
mod agreement;
mod attack;
mod labelled;
mod object;

use concord_policy::pii::{DetectorConfig, Detectors};

/// The regions whose national phone formats the labelled set uses.
pub const REGIONS: [&str; 8] = ["CN", "SA", "AE", "EG", "GB", "US", "DE", "FR"];

/// Detectors with every category on and the labelled sets' phone regions.
pub fn detectors() -> Detectors {
    Detectors::new(&DetectorConfig {
        phone_regions: REGIONS.iter().map(|r| r.to_string()).collect(),
        ..DetectorConfig::default()
    })
    .unwrap()
}
