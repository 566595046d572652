//! Any input: the parser returns Ok or Err, never panics or overflows the stack; an accepted
//! pattern prints to a canonical form that parses back to the same AST (the printer and
//! parser agree), and evaluating it against a small observation never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(pattern) = concord_pattern::parse_syntax(text) {
        let printed = pattern.to_string();
        let again = concord_pattern::parse_syntax(&printed)
            .unwrap_or_else(|e| panic!("printed form does not parse: {printed:?}: {e}"));
        assert_eq!(pattern, again, "round trip changed the AST: {printed:?}");
    }
    if let Ok(pattern) = concord_pattern::parse(text) {
        let observation = serde_json::json!({
            "type": "bundle", "id": "bundle--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d11",
            "objects": [
                {"type": "observed-data", "spec_version": "2.1",
                 "id": "observed-data--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d11",
                 "created": "2020-01-01T00:00:00.000Z", "modified": "2020-01-01T00:00:00.000Z",
                 "first_observed": "2020-01-01T00:00:00Z", "last_observed": "2020-01-01T00:00:00Z",
                 "number_observed": 2,
                 "object_refs": ["ipv4-addr--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d11",
                                 "file--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d11"]},
                {"type": "ipv4-addr", "id": "ipv4-addr--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d11", "value": "198.51.100.7"},
                {"type": "file", "id": "file--6ab2e0d1-8ff6-4a8b-9c2f-6e5a3b1f0d11", "name": "a.exe", "size": 1024,
                 "hashes": {"MD5": "d41d8cd98f00b204e9800998ecf8427e"}}
            ]
        });
        let _ = concord_pattern::evaluate(&pattern, std::slice::from_ref(&observation));
    }
});
