//! Peak memory of converting one MISP event with N attributes (default 100,000) to STIX 2.1.
//!
//! ```sh
//! CARGO_TARGET_DIR=target/misp-helper cargo run --release -p concord-misp --example misp_100k [N]
//! ```
//!
//! Writes the event to a temporary file (streamed, tags after the attributes as MISP does),
//! converts it with a sink that validates and counts each STIX object, and prints the file
//! size, the object count, the time and the peak resident set (VmHWM of /proc/self/status).

use std::io::{BufWriter, Write};
use std::time::Instant;

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(100_000);
    let dir = std::env::temp_dir().join(format!("concord-misp-100k-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("event.json");
    {
        let mut w = BufWriter::new(std::fs::File::create(&path)?);
        write!(
            w,
            r#"{{"Event": {{"uuid": "0b5c2f7e-1d1e-4a4b-9c7a-000000000001", "info": "100k", "date": "2024-01-01", "timestamp": "1704067200", "Orgc": {{"name": "Bench", "uuid": "0b5c2f7e-1d1e-4a4b-9c7a-000000000002"}}, "Attribute": ["#
        )?;
        for i in 0..n {
            if i > 0 {
                w.write_all(b",")?;
            }
            let (t, v) = match i % 4 {
                0 => (
                    "ip-dst",
                    format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255),
                ),
                1 => ("domain", format!("host{i}.example.org")),
                2 => ("md5", format!("{i:032x}")),
                _ => ("url", format!("http://host{i}.example.org/a'b\\c")),
            };
            let v = serde_json::to_string(&v)?;
            write!(
                w,
                r#"{{"uuid": "00000000-0000-4000-8000-{i:012x}", "type": "{t}", "category": "Network activity", "value": {v}, "to_ids": {}, "timestamp": "1704067200", "comment": "generated"}}"#,
                i % 2 == 0
            )?;
        }
        write!(w, r#"], "Tag": [{{"name": "tlp:amber"}}]}}}}"#)?;
        w.flush()?;
    }
    let size = std::fs::metadata(&path)?.len();
    let before = vm_hwm_kib();
    let start = Instant::now();
    let mut objects = 0usize;
    let mut invalid = 0usize;
    let report = concord_misp::to_stix(
        &mut || std::fs::File::open(&path),
        concord_misp::ToStixOptions::default(),
        &mut |o| {
            objects += 1;
            if concord_stix::validate_object(&o).is_err() {
                invalid += 1;
            }
            Ok(())
        },
    )?;
    let elapsed = start.elapsed();
    println!(
        "attributes: {n}\nevent file: {:.1} MiB\nSTIX objects: {objects} ({invalid} invalid)\n\
         converted in {:.2} s\nVmHWM before conversion: {before} KiB\nVmHWM after conversion: {} KiB",
        size as f64 / 1048576.0,
        elapsed.as_secs_f64(),
        vm_hwm_kib()
    );
    assert_eq!(report.attributes, n);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
