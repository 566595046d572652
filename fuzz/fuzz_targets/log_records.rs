//! Log readers (`concord match`, `POST /api/match`): the same bytes read as each `Format`
//! (Suricata eve, Zeek JSON/TSV, JSON lines and CSV with the default field map, plain
//! observables), every record turned into observations as the matcher does. Any panic is a
//! crash; a malformed line or an `Err` is a correct answer.
#![no_main]

use concord_match::{Format, Record, RecordReader};
use libfuzzer_sys::fuzz_target;

const FORMATS: [Format; 5] = [
    Format::Eve,
    Format::Zeek,
    Format::Json,
    Format::Lines,
    Format::Csv,
];

fuzz_target!(|data: &[u8]| {
    for format in FORMATS {
        let input = Box::new(std::io::Cursor::new(data.to_vec()));
        let mut reader = RecordReader::new("fuzz", input, format, None);
        let mut record = Record::default();
        while let Ok(true) = reader.next_into(&mut record) {
            let _ = record.observations(0);
        }
        let _ = reader.malformed();
    }
});
