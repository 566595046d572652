//! The `[policy]` section of concord.toml, read as `concord` reads it
//! (crates/concord/src/config.rs: `toml::Table`, then the section into
//! `concord_policy::actions::PolicyConfig`), then compiled (`Policy::new`: detectors, phone
//! regions, important-data markings) and versioned. Any panic is a crash; a refused
//! configuration is a correct answer.
#![no_main]

use concord_policy::actions::{Policy, PolicyConfig, PseudonymKeys};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(table) = toml::from_str::<toml::Table>(text) else {
        return;
    };
    let Some(section) = table.get("policy") else {
        return;
    };
    let Ok(config) = section.clone().try_into::<PolicyConfig>() else {
        return;
    };
    let _ = config.version();
    let _ = Policy::new(config, PseudonymKeys::default());
});
