//! What the OTLP sink spends at send time on a batch, against what the collector sink spends on
//! the same batch in the same run (the ratio is what to quote: the machines are noisy).
//!
//! The batch is 5,000 events (the default `batch-max-events`) of real ECS lines: the expected
//! output of agent-core's captured fixtures (`testdata/debian12-traditional`), repeated.
//! - `collector`: zstd-compress the NDJSON (done once, at commit; sending it costs nothing more);
//! - `otlp-protobuf`, `otlp-json`: that, plus what the OTLP sink does per send: decompress the
//!   spooled body, map each event to a LogRecord, encode the request, compress it.
//!
//! `cargo bench -p agent --bench otlp`.

use std::hint::black_box;
use std::path::Path;

use agent::host::HostFacts;
use agent::ship::batch::{AgentIdentity, BodyEncoder, Codec as _, Encoding};
use agent::ship::otlp::{LogMapper, OtlpProtocol};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const EVENTS: usize = 5000;

fn ndjson() -> Vec<u8> {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent-core/testdata/debian12-traditional");
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("the fixtures") {
        let path = entry.expect("a fixture").path();
        if path.to_string_lossy().ends_with(".expected.ndjson") {
            let text = std::fs::read_to_string(&path).expect("a fixture");
            lines.extend(
                text.lines()
                    .filter(|l| l.starts_with('{'))
                    .map(str::to_owned),
            );
        }
    }
    let mut out = Vec::new();
    for l in lines.iter().cycle().take(EVENTS) {
        out.extend_from_slice(l.as_bytes());
        out.push(b'\n');
    }
    out
}

fn mapper(protocol: OtlpProtocol) -> LogMapper {
    LogMapper::new(
        protocol,
        &AgentIdentity {
            agent_id: "0b7a3c52-6f43-4d2a-9a51-3f1f5c2e8d10".into(),
            version: "0.1.0".into(),
            facts: HostFacts {
                hostname: Some("agent-host".into()),
                os_name: None,
                os_version: None,
                kernel: None,
                arch: "x86_64".into(),
                boot_time: None,
                host_id: Some("4c4c4544003957108052b4c04f384833".into()),
            },
        },
    )
}

fn bench(c: &mut Criterion) {
    let ndjson = ndjson();
    let mut g = c.benchmark_group("batch-send-cost");
    g.throughput(Throughput::Elements(EVENTS as u64));
    g.sample_size(20);
    let mut zstd = BodyEncoder::new(Encoding::Zstd, None);
    g.bench_function("collector", |b| {
        b.iter(|| black_box(zstd.encode(black_box(&ndjson)).expect("zstd")));
    });
    let spooled = Encoding::Zstd.encode(&ndjson).expect("zstd");
    for (name, protocol) in [
        ("otlp-protobuf", OtlpProtocol::Protobuf),
        ("otlp-json", OtlpProtocol::Json),
    ] {
        let m = mapper(protocol);
        g.bench_function(name, |b| {
            b.iter(|| {
                let body = zstd.encode(black_box(&ndjson)).expect("zstd");
                let plain = Encoding::Zstd.decode(&spooled, 64 << 20).expect("unzstd");
                let request = m.encode(&plain, 1);
                black_box((body, zstd.encode(&request).expect("zstd")))
            });
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
