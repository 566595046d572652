//! The STIX patterning language (`concord_pattern::parse`): lexer, parser and the checks
//! beyond the grammar. A pattern that parses is printed and parsed again. Any panic is a
//! crash; an `Err` is a correct answer.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(pattern) = concord_pattern::parse(text) {
        let _ = concord_pattern::parse(&pattern.to_string());
    }
});
