//! One STIX object's text: strict JSON (no repeated member names), the table-driven
//! validation of every STIX 2.1 MUST, and the pattern of an indicator. Any panic is a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(value) = concord_stix::parse_object(text) else {
        return;
    };
    let _ = concord_stix::validate_object(&value);
    if let Some(pattern) = value.get("pattern").and_then(|p| p.as_str()) {
        let _ = concord_pattern::parse(pattern);
    }
});
