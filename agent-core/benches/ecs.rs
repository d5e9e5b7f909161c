//! ECS NDJSON rendering throughput: every event of a generated, realistic auth log (RFC 3339
//! headers, 1,000,000 lines by default) written with the envelope the agent stamps on it (host,
//! agent, sequence, log path and offset, the original line as `message`), against copying each
//! event's line into the same buffer in the same run (the ratio is what to quote: the machines
//! are noisy). `cargo bench -p agent-core --bench ecs`; `AUTHTRAIL_BENCH_LINES` changes the size.

use std::hint::black_box;

use agent_core::ecs::{Envelope, write_event};
use agent_core::syslog::Context;
use agent_core::{LoginEvent, Parsed, Text, Timestamp, parse_line};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

mod common;

/// One parsed event with where its line was.
struct Line<'a> {
    event: LoginEvent<'a>,
    offset: u64,
    line: &'a [u8],
}

/// Parses `data` once, up front: the bench measures rendering only.
fn events<'a>(data: &'a [u8], ctx: &Context) -> Vec<Line<'a>> {
    let mut out = Vec::new();
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', data) {
        let line = &data[start..end];
        if let Parsed::Event(event) = parse_line(line, ctx) {
            out.push(Line {
                event,
                offset: start as u64,
                line,
            });
        }
        start = end + 1;
    }
    out
}

/// The envelope the agent's pipeline stamps on a file source's event.
fn envelope<'a>(l: &Line<'a>, sequence: u64) -> Envelope<'a> {
    Envelope {
        hostname: Some(Text(b"agent-host")),
        host_id: Some("4c4c4544003957108052b4c04f384833"),
        agent_id: Some("0b7a3c52-6f43-4d2a-9a51-3f1f5c2e8d10"),
        agent_version: Some("0.1.0"),
        provider: Some("file"),
        sequence: Some(sequence),
        log_path: Some(Text(b"/var/log/auth.log")),
        log_offset: Some(l.offset),
        message: Some(Text(l.line)),
        original_timestamp: None,
    }
}

/// Renders every event into one reused buffer, as the pipeline does; returns the bytes written.
fn render_all(lines: &[Line<'_>], json: &mut String) -> usize {
    let mut bytes = 0;
    for (seq, l) in lines.iter().enumerate() {
        json.clear();
        write_event(json, &l.event, &envelope(l, seq as u64)).expect("a String takes anything");
        bytes += black_box(json.as_bytes()).len();
    }
    bytes
}

/// The baseline: copy each event's raw line into the same buffer, nothing else.
fn copy_lines(lines: &[Line<'_>], buf: &mut Vec<u8>) -> usize {
    let mut bytes = 0;
    for l in lines {
        buf.clear();
        buf.extend_from_slice(l.line);
        bytes += black_box(buf.as_slice()).len();
    }
    bytes
}

fn bench(c: &mut Criterion) {
    let lines = loggen::bench_lines(1_000_000);
    let ctx = Context::new(Timestamp::from_secs(loggen::DEFAULT_START + 86_400));
    let data = common::two_host_log(lines);
    let events = events(&data, &ctx);
    let mut group = c.benchmark_group("ecs_events");
    group.sample_size(10);
    group.throughput(Throughput::Elements(events.len() as u64));
    let mut buf = Vec::with_capacity(4096);
    group.bench_function("copy_line", |b| {
        b.iter(|| black_box(copy_lines(black_box(&events), &mut buf)))
    });
    let mut json = String::with_capacity(4096);
    group.bench_function("write_event", |b| {
        b.iter(|| black_box(render_all(black_box(&events), &mut json)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
