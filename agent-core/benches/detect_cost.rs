//! One deterministic pass for instruction and cache counters, where timings are too noisy:
//! `detect_cost none` only generates the log (subtract its counts from the others),
//! `detect_cost parse` parses the 1,000,000-line benchmark log once, `detect_cost detect` parses
//! it and feeds every event to a fresh default detector. The difference of the two runs' counts
//! is the detector's cost:
//! `valgrind --tool=cachegrind --cache-sim=yes target/release/deps/detect_cost-* detect`, or
//! `perf stat -e instructions,cache-misses ...`. `AUTHTRAIL_BENCH_LINES` changes the size; a
//! second argument `rfc3164` takes that format of the log (default rfc3339).

use std::hint::black_box;

use agent_core::detect::{Alerts, DefaultDetector, DetectConfig};
use agent_core::syslog::Context;
use agent_core::{Parsed, Timestamp, parse_line};

fn main() {
    let (parse, detect) = match std::env::args().nth(1).as_deref() {
        Some("none") => (false, false),
        Some("parse") => (true, false),
        Some("detect") => (true, true),
        // `cargo bench` runs every bench target with `--bench`: nothing to do here.
        _ => return,
    };
    let format = match std::env::args().nth(2).as_deref() {
        Some("rfc3164") => loggen::Format::Rfc3164,
        _ => loggen::Format::Rfc3339,
    };
    let lines = loggen::bench_lines(1_000_000);
    let opts = loggen::Options {
        lines,
        seed: 1,
        format,
        ..loggen::Options::default()
    };
    let mut data = Vec::with_capacity(lines as usize * 120);
    loggen::generate(&mut data, &opts).expect("writing to a Vec cannot fail");
    let ctx = Context::new(Timestamp::from_secs(loggen::DEFAULT_START + 86_400));
    let mut detector = Box::new(DefaultDetector::new(DetectConfig::default()));
    let mut alerts = Alerts::new();
    let (mut n, mut seq) = (0usize, 0u64);
    for line in data.split(|&b| b == b'\n').filter(|_| parse) {
        if let Parsed::Event(e) = parse_line(black_box(line), &ctx) {
            if detect {
                detector.observe_into(&e, seq, &mut alerts);
                n += alerts.len();
            }
            n += e.count as usize;
            seq += 1;
        }
    }
    println!("{n}");
}
