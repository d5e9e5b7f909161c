//! One deterministic pass for instruction and cache counters, where timings are too noisy:
//! `detect_cost none` only generates the log (subtract its counts from the others),
//! `detect_cost parse` parses the 1,000,000-line benchmark log once, `detect_cost detect` parses
//! it and feeds every event to a fresh default detector. The difference of the two runs' counts
//! is the detector's cost:
//! `valgrind --tool=cachegrind --cache-sim=yes target/release/deps/detect_cost-* detect`, or
//! `perf stat -e instructions,cache-misses ...`. `AUTHTRAIL_BENCH_LINES` changes the size; a
//! second argument `rfc3164` takes that format of the log (default rfc3339).
//!
//! It also prints to stderr the CPU time of the parse (and detect) loop alone, without the
//! log's generation, from the thread's on-CPU nanoseconds in `/proc/thread-self/schedstat`
//! (Linux; nothing printed elsewhere): `loop-cpu-ms <ms>`. On a loaded machine run the two
//! modes in turn, many times, and compare medians.

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
    let start = thread_cpu_ns();
    for line in data.split(|&b| b == b'\n').filter(|_| parse) {
        // Borrowed in place, as in the parse bench (a move copies the event every line).
        let parsed = parse_line(black_box(line), &ctx);
        if let Parsed::Event(e) = &parsed {
            if detect {
                detector.observe_into(e, seq, &mut alerts);
                n += alerts.len();
            }
            n += e.count as usize;
            seq += 1;
        }
    }
    if let (Some(a), Some(b)) = (start, thread_cpu_ns()) {
        eprintln!("loop-cpu-ms {:.1}", (b - a) as f64 / 1e6);
    }
    println!("{n}");
}

/// The calling thread's time on a CPU so far, in nanoseconds (Linux).
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}
