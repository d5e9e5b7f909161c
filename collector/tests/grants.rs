//! What decoding a body asks the byte budget for, against what it really holds: the heap
//! measured by a counting allocator (dhat) while [`collector::ingest::decode_body_within`] runs.
// A failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use collector::ingest::{Body, Encoding, Reserve, decode_body_within};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const FIXTURE: &str =
    include_str!("../../agent-core/testdata/debian12-traditional/sshd.expected.ndjson");

/// Records what is granted: now and at the most.
#[derive(Default)]
struct Recorder {
    now: u64,
    peak: u64,
}

impl Reserve for Recorder {
    fn grow(&mut self, bytes: u64) -> bool {
        self.now += bytes;
        self.peak = self.peak.max(self.now);
        true
    }
    fn release(&mut self, bytes: u64) {
        self.now = self
            .now
            .checked_sub(bytes)
            .expect("released more than granted");
    }
    fn could_ever_grow(&self, _: u64) -> bool {
        true
    }
}

/// About `size` bytes of real events, zstd-compressed; with `distinct`, each with its own user
/// and source address (so the rows' string table grows with the batch).
fn batch(size: usize, distinct: bool) -> Vec<u8> {
    let lines: Vec<&str> = FIXTURE.lines().filter(|l| l.starts_with('{')).collect();
    let mut out = String::with_capacity(size + 4096);
    let mut i = 0u32;
    while out.len() < size {
        let mut event: serde_json::Value =
            serde_json::from_str(lines[i as usize % lines.len()]).unwrap();
        if distinct {
            event["user"] = serde_json::json!({ "name": format!("u{i}") });
            event["source"] = serde_json::json!({
                "ip": format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255)
            });
        }
        out.push_str(&event.to_string());
        out.push('\n');
        i += 1;
    }
    zstd::bulk::compress(out.as_bytes(), 1).unwrap()
}

/// [`batch`] as a compact body (`agent_core::batch`), zstd-compressed.
fn compact_batch(size: usize, distinct: bool) -> Vec<u8> {
    let ndjson = zstd::bulk::decompress(&batch(size, distinct), 64 << 20).unwrap();
    let mut compact = Vec::new();
    agent_core::batch::encode(&ndjson, &mut compact).unwrap();
    zstd::bulk::compress(&compact, 1).unwrap()
}

/// Decodes `body`; the peak heap since the profiler started and the peak grant.
fn decode(body: Vec<u8>) -> (usize, u64, u64) {
    decode_as(Body::Ndjson, body)
}

/// [`decode`] of a body of kind `kind`.
fn decode_as(kind: Body, body: Vec<u8>) -> (usize, u64, u64) {
    let mut recorder = Recorder::default();
    let batch =
        decode_body_within(Encoding::Zstd, kind, body, 64 << 20, None, &mut recorder).unwrap();
    let held = dhat::HeapStats::get().max_bytes as u64;
    eprintln!(
        "{} events: heap at the most {} KiB, granted at the most {} KiB",
        batch.event_count,
        held >> 10,
        recorder.peak >> 10
    );
    (batch.event_count, held, recorder.peak)
}

/// One profiler at a time: the tests take turns.
static PROFILER: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn decoding_is_granted_what_it_holds_and_not_much_more() {
    let _turn = PROFILER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // The bodies are made before the profiler starts: it counts what decoding allocates.
    let (few, many) = (batch(8 << 20, false), batch(16 << 20, true));
    let _profiler = dhat::Profiler::builder().testing().build();
    // Events sharing a few strings: the rows are small beside the body.
    let (events, held, granted) = decode(few);
    assert!(events > 10_000, "{events}");
    assert!(granted >= held, "held {held} bytes, granted only {granted}");
    // The rows' grant is measured, not the decompressed body's size again.
    assert!(
        granted <= held + held / 8,
        "granted {granted} bytes for a peak of {held}: more than an eighth too much"
    );
    // Events with their own strings: the rows' table can pass the body's size. (The second
    // body is larger, so the profiler's peak is its own.)
    let (events, held, granted) = decode(many);
    assert!(events > 20_000, "{events}");
    assert!(granted >= held, "held {held} bytes, granted only {granted}");
    assert!(
        granted <= held + held / 8,
        "granted {granted} bytes for a peak of {held}: more than an eighth too much"
    );
}

#[test]
fn decoding_a_compact_body_is_granted_what_it_holds_and_not_much_more() {
    let _turn = PROFILER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (few, many) = (compact_batch(8 << 20, false), compact_batch(16 << 20, true));
    let _profiler = dhat::Profiler::builder().testing().build();
    for (body, least) in [(few, 10_000), (many, 20_000)] {
        let (events, held, granted) = decode_as(Body::Compact, body);
        assert!(events > least, "{events}");
        assert!(granted >= held, "held {held} bytes, granted only {granted}");
        // The decoder's tables are granted at their bound (`agent_core::batch::decode_bytes`)
        // and the rendering is held one document at a time: the bound's slack (4 of 25 MiB for
        // the second body) is a larger share of the peak than when the whole rendering was
        // held, granted exactly.
        assert!(
            granted <= held + held / 4,
            "granted {granted} bytes for a peak of {held}: more than a quarter too much"
        );
    }
}

#[test]
fn the_writer_holds_no_more_than_is_granted_for_it() {
    let _turn = PROFILER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    let mut store = collector::store::Store::open(&dir.path().join("authtrail.db")).unwrap();
    for (seq, distinct) in [(1, false), (2, true)] {
        let body = batch(16 << 20, distinct);
        let mut batch = decode_body_within(
            Encoding::Zstd,
            Body::Ndjson,
            body,
            64 << 20,
            None,
            &mut Recorder::default(),
        )
        .unwrap();
        batch.stream = "s".to_owned();
        let granted = collector::store::writer_bytes(&batch);
        // SQLite's own copies are allocated by the C library, which this allocator does not
        // see: what is left of the grant is what the Rust side may hold.
        let rust = granted - 2 * (batch.body.len() + batch.rows.len()) as u64;
        let profiler = dhat::Profiler::builder().testing().build();
        store.insert(uuid::Uuid::new_v4(), seq, &batch, 0).unwrap();
        let held = dhat::HeapStats::get().max_bytes as u64;
        drop(profiler);
        eprintln!(
            "{} events, distinct strings {distinct}: the writer held at the most {} KiB, \
             granted {} KiB for it",
            batch.event_count,
            held >> 10,
            rust >> 10
        );
        assert!(held <= rust, "the writer held {held} bytes, granted {rust}");
        assert!(
            rust <= 2 * held + (1 << 20),
            "granted {rust} bytes for the writer, which held {held}"
        );
    }
}
