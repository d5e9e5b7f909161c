//! The parse path allocates nothing: a counting global allocator watches `parse_line` and the
//! ECS writer (into a pre-sized buffer) over a realistic generated log and every captured fixture.

#![allow(
    clippy::unwrap_used,
    reason = "a test that cannot read its input should fail loudly"
)]

use agent_core::syslog::Context;
use agent_core::{Parsed, Timestamp, parse_line};

// dhat's allocator counts every allocation; no unsafe code of ours is needed for it.
#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn input() -> Vec<u8> {
    let mut data = Vec::new();
    for format in [loggen::Format::Rfc3164, loggen::Format::Rfc3339] {
        let opts = loggen::Options {
            lines: 50_000,
            seed: 7,
            format,
            ..loggen::Options::default()
        };
        loggen::generate(&mut data, &opts).unwrap();
    }
    let testdata = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata");
    for entry in walk(std::path::Path::new(testdata)) {
        if entry.extension().is_some_and(|e| e == "log") {
            data.extend(std::fs::read(&entry).unwrap());
            data.push(b'\n');
        }
    }
    data
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn parse_and_ecs_writer_do_not_allocate_per_line() {
    let data = input();
    let lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    let ctx = Context::new(Timestamp::from_secs(loggen::DEFAULT_START));
    let mut json = String::with_capacity(1 << 20);
    let mut events = 0usize;

    let _profiler = dhat::Profiler::builder().testing().build();
    let before = dhat::HeapStats::get().total_blocks;
    for line in &lines {
        match parse_line(line, &ctx) {
            Parsed::Event(ev) => {
                events += 1;
                json.clear();
                agent_core::ecs::write_event(&mut json, &ev, &Default::default()).unwrap();
            }
            // `authtrail parse`'s fallback for bare sshd messages.
            Parsed::Malformed(_) => {
                if let Some(ev) = agent_core::parse_headerless_sshd(line) {
                    json.clear();
                    agent_core::ecs::write_event(&mut json, &ev, &Default::default()).unwrap();
                }
            }
            _ => {}
        }
    }
    let allocations = dhat::HeapStats::get().total_blocks - before;

    assert!(
        events > 50_000,
        "only {events} events: the input is not realistic"
    );
    assert_eq!(
        allocations,
        0,
        "{allocations} allocations over {} lines",
        lines.len()
    );
}
