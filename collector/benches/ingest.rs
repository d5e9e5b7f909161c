//! The collector's work per event, without the network: decoding a batch (zstd, NDJSON, the
//! indexed fields) and storing it (one transaction per group of batches, as the writer does),
//! over the ECS NDJSON the agent sends for a generated auth log (100,000 lines by default;
//! `AUTHTRAIL_BENCH_LINES` changes it). Baseline in the same run: `zstd::bulk::decompress` of
//! the same bodies. `cargo bench -p collector --bench ingest`.

use std::hint::black_box;

use agent_core::ecs::{Envelope, write_event};
use agent_core::syslog::Context;
use agent_core::wire::Body;
use agent_core::{Parsed, Text, Timestamp, parse_line};
use collector::alerts::{Alerts, AlertsThread};
use collector::fleet::FleetConfig;
use collector::ingest::{Encoding, decode, decode_as};
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
    // The same batches as compact bodies (`agent_core::batch`), as an authtrail agent sends
    // them: the whole decode, and its parts (zstd, the compact decoding alone).
    let compact: Vec<Vec<u8>> = bodies
        .iter()
        .map(|body| {
            let ndjson = zstd::bulk::decompress(body, 64 << 20).expect("zstd");
            let mut out = Vec::new();
            agent_core::batch::encode(&ndjson, &mut out).expect("encodes");
            zstd::bulk::compress(&out, 1).expect("zstd")
        })
        .collect();
    group.bench_function("compact_zstd_decompress", |b| {
        b.iter(|| {
            for body in &compact {
                black_box(zstd::bulk::decompress(body, 64 << 20).expect("zstd"));
            }
        })
    });
    let raw_compact: Vec<Vec<u8>> = compact
        .iter()
        .map(|b| zstd::bulk::decompress(b, 64 << 20).expect("zstd"))
        .collect();
    group.bench_function("compact_render", |b| {
        b.iter(|| {
            for body in &raw_compact {
                let mut out = Vec::new();
                black_box(agent_core::batch::decode(body, 64 << 20, &mut out).expect("decodes"));
                black_box(out);
            }
        })
    });
    group.bench_function("compact_decode", |b| {
        b.iter(|| {
            for body in &compact {
                black_box(
                    decode_as(Encoding::Zstd, Body::Compact, body.clone(), 64 << 20, None)
                        .expect("decodes"),
                );
            }
        })
    });
    let batches: Vec<_> = bodies
        .iter()
        .map(|b| decode(Encoding::Zstd, b.clone(), 64 << 20, None).expect("decodes"))
        .collect();
    let agents: Vec<uuid::Uuid> = (0..8).map(|_| uuid::Uuid::new_v4()).collect();
    // Four batches per transaction: what four agent connections in flight give.
    let store_all = |store: &mut Store, after_group: &mut dyn FnMut(&mut Store)| {
        for (g, group) in batches.chunks(4).enumerate() {
            let jobs: Vec<_> = group
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    let n = g * 4 + i;
                    (agents[n % agents.len()], n as i64, b, 0)
                })
                .collect();
            for r in store.insert_group(&jobs) {
                r.expect("stored");
            }
            after_group(store);
        }
    };
    group.bench_function("store", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("temp dir");
                let store = Store::open(&dir.path().join("bench.db")).expect("store");
                (dir, store)
            },
            |(dir, mut store)| {
                store_all(&mut store, &mut |_| {});
                (store, dir)
            },
            BatchSize::PerIteration,
        )
    });
    // The writer as `serve` runs it: the fleet detections on their own thread, woken after
    // each group (they finish after the timed part, which is the ingest path).
    group.bench_function("store_fleet_thread", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().join("bench.db");
                let store = Store::open(&path).expect("store");
                let mut alerts_store = Store::open(&path).expect("store");
                let alerts =
                    Alerts::open(&mut alerts_store, &FleetConfig::default(), 0).expect("alerts");
                let thread = AlertsThread::spawn(alerts, alerts_store).expect("thread");
                (dir, store, Stopping(Some(thread)))
            },
            |(dir, mut store, thread)| {
                store_all(&mut store, &mut |_| {
                    if let Some(t) = &thread.0 {
                        t.notify();
                    }
                });
                (thread, store, dir)
            },
            BatchSize::PerIteration,
        )
    });
    // The detections' own cost: run in line after each group, as if on the writer.
    group.bench_function("store_fleet_inline", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("temp dir");
                let mut store = Store::open(&dir.path().join("bench.db")).expect("store");
                let alerts = Alerts::open(&mut store, &FleetConfig::default(), 0).expect("alerts");
                (dir, store, alerts)
            },
            |(dir, mut store, mut alerts)| {
                store_all(&mut store, &mut |s| {
                    alerts.after_commit(s).expect("fleet detections");
                });
                alerts.stop(&mut store).expect("fleet detections");
                (store, dir)
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// Stops the fleet detections' thread when dropped (after the timed part, before its store's
/// directory goes).
struct Stopping(Option<AlertsThread>);

impl Drop for Stopping {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.stop();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
