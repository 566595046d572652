//! MISP event JSON in every shape MISP writes it (`concord import` of a MISP file, MISP
//! feeds): both passes of the streaming reader and the conversion to STIX, each converted
//! object validated as concord-ingest would. Any panic is a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = concord_misp::looks_like_misp(data);
    let mut open = || Ok::<_, std::io::Error>(data);
    let mut sink = |value: serde_json::Value| -> Result<(), String> {
        let _ = concord_stix::validate_object(&value);
        Ok(())
    };
    let _ = concord_misp::to_stix(&mut open, concord_misp::ToStixOptions::default(), &mut sink);
});
