//! The collector's work per event, without the network: decoding a batch (zstd, NDJSON, the
//! indexed fields) and storing it (one transaction per group of batches, as the writer does),
//! over the ECS NDJSON the agent sends for a generated auth log (100,000 lines by default;
//! `AUTHTRAIL_BENCH_LINES` changes it). Baseline in the same run: `zstd::bulk::decompress` of
//! the same bodies. `cargo bench -p collector --bench ingest`.

use std::hint::black_box;

use agent_core::ecs::{Envelope, write_event};
use agent_core::syslog::Context;
use agent_core::{Parsed, Text, Timestamp, parse_line};
use collector::ingest::{Encoding, decode};
use collector::store::Store;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

/// Batches as the agent closes them: about 1 MiB of NDJSON each, zstd level 1.
fn bodies(lines: u64) -> (Vec<Vec<u8>>, u64) {
    let opts = loggen::Options {
        lines,
        seed: 1,
        format: loggen::Format::Rfc3339,
        ..loggen::Options::default()
    };
    let mut log = Vec::new();
    loggen::generate(&mut log, &opts).expect("writing to a Vec cannot fail");
    let ctx = Context::new(Timestamp::from_secs(loggen::DEFAULT_START + 86_400));
    let (mut bodies, mut ndjson, mut json, mut events) = (Vec::new(), Vec::new(), String::new(), 0);
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', &log) {
        let line = &log[start..end];
        if let Parsed::Event(event) = parse_line(line, &ctx) {
            let envelope = Envelope {
                hostname: Some(Text(b"web1")),
                host_id: Some("4c4c4544003957108052b4c04f384833"),
                agent_id: Some("0b7a3c52-6f43-4d2a-9a51-3f1f5c2e8d10"),
                agent_version: Some("0.1.0"),
                provider: Some("file"),
                sequence: Some(events),
                log_path: Some(Text(b"/var/log/auth.log")),
                log_offset: Some(start as u64),
                message: Some(Text(line)),
                original_timestamp: None,
            };
            json.clear();
            write_event(&mut json, &event, &envelope).expect("a String takes anything");
            ndjson.extend_from_slice(json.as_bytes());
            ndjson.push(b'\n');
            events += 1;
            if ndjson.len() >= 1 << 20 {
                bodies.push(zstd::bulk::compress(&ndjson, 1).expect("zstd"));
                ndjson.clear();
            }
        }
        start = end + 1;
    }
    if !ndjson.is_empty() {
        bodies.push(zstd::bulk::compress(&ndjson, 1).expect("zstd"));
    }
    (bodies, events)
}

fn bench(c: &mut Criterion) {
    let lines = loggen::bench_lines(100_000);
    let (bodies, events) = bodies(lines);
    let mut group = c.benchmark_group("collector_ingest");
    group.sample_size(10);
    group.throughput(Throughput::Elements(events));
    group.bench_function("zstd_decompress", |b| {
        b.iter(|| {
            for body in &bodies {
                black_box(zstd::bulk::decompress(body, 64 << 20).expect("zstd"));
            }
        })
    });
    group.bench_function("decode", |b| {
        b.iter(|| {
            for body in &bodies {
                black_box(decode(Encoding::Zstd, body.clone(), 64 << 20, None).expect("decodes"));
            }
        })
    });
    let batches: Vec<_> = bodies
        .iter()
        .map(|b| decode(Encoding::Zstd, b.clone(), 64 << 20, None).expect("decodes"))
        .collect();
    let agent = uuid::Uuid::new_v4();
    group.bench_function("store", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("temp dir");
                let store = Store::open(&dir.path().join("bench.db")).expect("store");
                (dir, store)
            },
            |(dir, mut store)| {
                // Four batches per transaction: what four agent connections in flight give.
                for (g, group) in batches.chunks(4).enumerate() {
                    let jobs: Vec<_> = group
                        .iter()
                        .enumerate()
                        .map(|(i, b)| (agent, (g * 4 + i) as i64, b, 0))
                        .collect();
                    for r in store.insert_group(&jobs) {
                        r.expect("stored");
                    }
                }
                (dir, store)
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
