//! TAXII query strings: decoded into pairs as the server's extractor does
//! (application/x-www-form-urlencoded), parsed for every endpoint, and every value checked as
//! a `next` token. Any panic is a crash; a 400 (`Err`) is a correct answer.
#![no_main]

use concord_taxii::query::Endpoint;
use libfuzzer_sys::fuzz_target;

const ENDPOINTS: [Endpoint; 4] = [
    Endpoint::Objects,
    Endpoint::Object,
    Endpoint::Versions,
    Endpoint::Delete,
];

fuzz_target!(|data: &[u8]| {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(data)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    for endpoint in ENDPOINTS {
        let _ = concord_taxii::Query::parse(&pairs, endpoint);
    }
    for (_, value) in &pairs {
        let _ = concord_taxii::check_next(value);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = concord_taxii::check_next(text);
    }
});
