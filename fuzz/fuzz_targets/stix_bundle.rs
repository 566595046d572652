//! STIX bundles and TAXII envelopes as `concord import`, TAXII POST, sync pull and the web UI
//! import read them: the streaming reader, then each object through strict JSON, validation
//! and (for indicators) the pattern parser, as concord-ingest does. Any panic is a crash; an
//! `Err` is a correct answer.
#![no_main]

use libfuzzer_sys::fuzz_target;

fn object(raw: &str) {
    let Ok(value) = concord_stix::parse_object(raw) else {
        return;
    };
    if concord_stix::validate_object(&value).is_ok()
        && let Some(pattern) = value.get("pattern").and_then(|p| p.as_str())
    {
        let _ = concord_pattern::parse(pattern);
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = concord_stix::BundleReader::new(data).read(|_, raw| {
        object(raw.get());
        Ok::<(), String>(())
    });
    let _ = concord_stix::BundleReader::new(data).read_envelope(|_, raw| {
        object(raw.get());
        Ok::<(), String>(())
    });
});
