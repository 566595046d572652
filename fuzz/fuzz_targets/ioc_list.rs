//! IOC lists (`concord import --format ioc`, web UI import): one observable per line into
//! indicators; each indicator made is validated and its pattern parsed, as ingest does.
//! Any panic is a crash; a rejected line is a correct answer.
#![no_main]

use concord_match::ioc_list::{IocOptions, read_ioc_list};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let options = IocOptions {
        default_description: Some("fuzz".to_owned()),
        ..IocOptions::new("2026-01-01T00:00:00.000Z")
    };
    let Ok(list) = read_ioc_list(data, "fuzz", &options) else {
        return;
    };
    for indicator in &list.indicators {
        let _ = concord_stix::validate_object(indicator);
        if let Some(pattern) = indicator.get("pattern").and_then(|p| p.as_str()) {
            let _ = concord_pattern::parse(pattern);
        }
    }
});
