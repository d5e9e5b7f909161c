//! Parser throughput over a generated, realistic 1,000,000-line auth log, against a plain
//! memchr line count over the same bytes in the same run (the ratio is what to quote: the
//! machines are noisy); and parse + detect (the default edge detector on every event, as the
//! agent runs it) against parse alone. `cargo bench -p agent-core --bench parse`; `cargo xtask bench` prints the
//! ratios. `AUTHTRAIL_BENCH_LINES` changes the size.

use std::hint::black_box;

use agent_core::detect::{DefaultDetector, DetectConfig};
use agent_core::syslog::Context;
use agent_core::{Parsed, Timestamp, parse_line};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn log(format: loggen::Format, lines: u64) -> Vec<u8> {
    let opts = loggen::Options {
        lines,
        seed: 1,
        format,
        ..loggen::Options::default()
    };
    let mut out = Vec::with_capacity(lines as usize * 120);
    loggen::generate(&mut out, &opts).expect("writing to a Vec cannot fail");
    out
}

/// Parses every line; returns the number of events so the work cannot be optimised away.
fn parse_all(data: &[u8], ctx: &Context) -> usize {
    let mut events = 0;
    for line in memchr::memchr_iter(b'\n', data).scan(0usize, |start, end| {
        let line = &data[*start..end];
        *start = end + 1;
        Some(line)
    }) {
        if let Parsed::Event(e) = parse_line(line, ctx) {
            events += e.count as usize;
        }
    }
    events
}

/// Parses every line and feeds every event to a fresh default detector; returns events plus
/// alerts.
fn parse_and_detect(data: &[u8], ctx: &Context) -> usize {
    let mut detector = Box::new(DefaultDetector::new(DetectConfig::default()));
    let mut alerts = agent_core::detect::Alerts::new();
    let mut n = 0;
    let mut seq = 0;
    for line in memchr::memchr_iter(b'\n', data).scan(0usize, |start, end| {
        let line = &data[*start..end];
        *start = end + 1;
        Some(line)
    }) {
        // Borrowed in place: moving the event out of `Parsed` copies it on every line, which
        // `parse_all` (reading `count` only) does not pay and the detector does not cause.
        let parsed = parse_line(line, ctx);
        if let Parsed::Event(e) = &parsed {
            detector.observe_into(e, seq, &mut alerts);
            n += e.count as usize + alerts.len();
            seq += 1;
        }
    }
    n
}

/// The baseline: find every line, touch nothing else.
fn count_lines(data: &[u8]) -> usize {
    memchr::memchr_iter(b'\n', data).count()
}

fn bench(c: &mut Criterion) {
    let lines = loggen::bench_lines(1_000_000);
    let ctx = Context::new(Timestamp::from_secs(loggen::DEFAULT_START + 86_400));
    for (name, format) in [
        ("rfc3164", loggen::Format::Rfc3164),
        ("rfc3339", loggen::Format::Rfc3339),
    ] {
        let data = log(format, lines);
        let mut group = c.benchmark_group(format!("auth_log_{name}"));
        group.sample_size(10);
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_function("memchr_line_count", |b| {
            b.iter(|| black_box(count_lines(black_box(&data))))
        });
        group.bench_function("parse_line", |b| {
            b.iter(|| black_box(parse_all(black_box(&data), &ctx)))
        });
        group.bench_function("parse_and_detect", |b| {
            b.iter(|| black_box(parse_and_detect(black_box(&data), &ctx)))
        });
        group.finish();
        let mut group = c.benchmark_group(format!("auth_log_{name}_lines"));
        group.sample_size(10);
        group.throughput(Throughput::Elements(lines));
        group.bench_function("parse_line", |b| {
            b.iter(|| black_box(parse_all(black_box(&data), &ctx)))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
