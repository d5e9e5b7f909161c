//! Unit tests of the file source, driven synchronously through `poll_at`.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::mpsc::sync_channel;
use std::thread;

use super::*;
use crate::source::Payload;
use crate::source::checkpoint::{Checkpoints, EXPIRE_AFTER, MAX_STREAMS};

const MAX_LINE: usize = 64;

fn config(globs: &[&Path], read_from: ReadFrom) -> FileSourceConfig {
    FileSourceConfig {
        name: None,
        paths: globs
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect(),
        read_from,
        poll_interval: Duration::ZERO,
        partial_line_timeout: Duration::from_secs(3600),
        max_files: 16,
    }
}

fn source(cfg: &FileSourceConfig, start: &HashMap<StreamKey, Position>, first: bool) -> FileSource {
    FileSource::new(cfg, Arc::from("test"), start.clone(), MAX_LINE, first)
        .force_poll()
        .quiet()
}

fn append(path: &Path, bytes: &[u8]) {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

/// Polls until nothing more comes; records every chunk's end in `acked` like the pipeline would.
fn drain_at(
    src: &mut FileSource,
    now: Instant,
    acked: &mut HashMap<StreamKey, Position>,
) -> Vec<Chunk> {
    let mut all = Vec::new();
    for _ in 0..1000 {
        let got = src.poll_at(now);
        let done = got.is_empty() && !src.has_backlog();
        for c in &got {
            assert!(c.records.len() <= CHUNK_MAX_LINES);
            acked.insert(c.stream.clone(), c.end.clone());
        }
        all.extend(got);
        if done {
            return all;
        }
    }
    panic!("source never settles");
}

fn drain(src: &mut FileSource, acked: &mut HashMap<StreamKey, Position>) -> Vec<Chunk> {
    drain_at(src, Instant::now(), acked)
}

fn texts(chunks: &[Chunk]) -> Vec<String> {
    chunks
        .iter()
        .flat_map(|c| {
            c.records
                .iter()
                .map(|r| String::from_utf8_lossy(c.bytes(r)).into_owned())
        })
        .collect()
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn a_fresh_one_line_file_found_later_is_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    let cfg = config(&[&log], ReadFrom::End);
    let mut acked = HashMap::new();
    let mut src = source(&cfg, &HashMap::new(), true);
    assert!(drain(&mut src, &mut acked).is_empty());
    append(&log, b"Nov 28 06:49:30 host sshd[1]: one\n");
    let got = drain(&mut src, &mut acked);
    assert_eq!(texts(&got), strs(&["Nov 28 06:49:30 host sshd[1]: one"]));
    let c = &got[0];
    assert_eq!(c.payload, Payload::SyslogLines);
    assert_eq!(c.end, Position::Offset(34));
    assert_eq!(c.records[0].offset, Some(0));
    assert_eq!(c.path.as_deref().map(PathBuf::as_path), Some(log.as_path()));
    assert_eq!(&*c.source, "test");
}

#[test]
fn first_start_read_from_end_skips_old_lines_but_not_a_line_being_written() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    append(&log, b"old 1\nold 2\nhalf of a li");
    let cfg = config(&[&log], ReadFrom::End);
    let mut acked = HashMap::new();
    let mut src = source(&cfg, &HashMap::new(), true);
    assert!(drain(&mut src, &mut acked).is_empty());
    append(&log, b"ne\nnew\n");
    assert_eq!(
        texts(&drain(&mut src, &mut acked)),
        strs(&["half of a line", "new"])
    );
}

#[test]
fn first_start_read_from_beginning_reads_everything() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    append(&log, b"old 1\nold 2\n");
    let cfg = config(&[&log], ReadFrom::Beginning);
    let mut src = source(&cfg, &HashMap::new(), true);
    assert_eq!(
        texts(&drain(&mut src, &mut HashMap::new())),
        strs(&["old 1", "old 2"])
    );
}

#[test]
fn not_a_first_start_an_unknown_file_is_read_from_zero_even_with_read_from_end() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    append(&log, b"written while the agent was down\n");
    let cfg = config(&[&log], ReadFrom::End);
    let mut src = source(&cfg, &HashMap::new(), false);
    assert_eq!(
        texts(&drain(&mut src, &mut HashMap::new())),
        strs(&["written while the agent was down"])
    );
}

#[test]
fn restart_from_checkpoint_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    let cfg = config(&[&log], ReadFrom::Beginning);
    append(&log, b"a\nb\n");
    let mut acked = HashMap::new();
    let mut src = source(&cfg, &HashMap::new(), true);
    assert_eq!(texts(&drain(&mut src, &mut acked)), strs(&["a", "b"]));
    drop(src);
    append(&log, b"c\n");

    // Through the real checkpoint store, as the runtime does it.
    let state = tempfile::tempdir().unwrap();
    let mut cps = crate::source::checkpoint::Checkpoints::new(state.path());
    for (k, p) in &acked {
        cps.set(k.clone(), p.clone(), Some(&log));
    }
    cps.persist().unwrap();
    let (cps, warn) = crate::source::checkpoint::load(state.path());
    assert!(warn.is_none());
    let mut src = source(&cfg, &cps.positions(), cps.first_start());
    assert_eq!(texts(&drain(&mut src, &mut acked)), strs(&["c"]));
}

#[test]
fn rotation_by_rename_finishes_the_old_file_and_does_not_reread_it_as_dot_1() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    let glob = dir.path().join("auth.log*");
    let cfg = config(&[&glob], ReadFrom::Beginning);
    let mut acked = HashMap::new();
    let mut src = source(&cfg, &HashMap::new(), true);
    append(&log, b"first file line 1\nfirst file line 2\n");
    assert_eq!(drain(&mut src, &mut acked).len(), 1);
    append(&log, b"first file line 3\n");
    fs::rename(&log, dir.path().join("auth.log.1")).unwrap();
    append(&log, b"second file line 1\n");
    // rsyslog, not yet HUP'd, still writes into the renamed file.
    append(&dir.path().join("auth.log.1"), b"first file line 4\n");
    let got = drain(&mut src, &mut acked);
    assert_eq!(
        texts(&got),
        strs(&[
            "first file line 3",
            "first file line 4",
            "second file line 1"
        ])
    );
    let status = src.status().get();
    assert_eq!(status.files.len(), 2);
    assert!(status.files.iter().all(|f| !f.orphaned));
    assert!(status.files.iter().any(|f| f.path.ends_with("auth.log.1")));
    assert!(status.notes.iter().any(|n| n.contains("rotated")));

    // A restart finds auth.log.1 by its fingerprint: nothing is read again.
    drop(src);
    let mut src = source(&cfg, &acked, false);
    assert!(drain(&mut src, &mut acked).is_empty());
    append(&log, b"second file line 2\n");
    assert_eq!(
        texts(&drain(&mut src, &mut acked)),
        strs(&["second file line 2"])
    );
}

#[test]
fn rotation_by_rename_out_of_the_glob_reads_the_orphan_to_its_end_then_closes_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    let cfg = config(&[&log], ReadFrom::Beginning);
    let mut acked = HashMap::new();
    let mut src = source(&cfg, &HashMap::new(), true);
    append(&log, b"old 1\n");
    drain(&mut src, &mut acked);
    append(&log, b"old 2\n");
    let rotated = dir.path().join("auth.log.0");
    fs::rename(&log, &rotated).unwrap();
    append(&log, b"new 1\n");
    let t = Instant::now();
    let got = texts(&src.poll_at(t));
    assert_eq!(got, strs(&["old 2", "new 1"]));
    let st = src.status().get();
    assert_eq!(st.files.iter().filter(|f| f.orphaned).count(), 1);
    // Still written to before the HUP: still read.
    append(&rotated, b"old 3\n");
    assert_eq!(texts(&src.poll_at(t)), strs(&["old 3"]));
    for _ in 0..ORPHAN_IDLE_POLLS {
        assert!(src.poll_at(t).is_empty());
    }
    let st = src.status().get();
    assert_eq!(st.files.len(), 1, "{st:?}");
    assert!(!st.files[0].orphaned);
    assert_eq!(st.totals.lines_read, 4);
}

#[test]
fn an_orphan_is_kept_while_the_poll_interval_has_not_passed() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    let mut cfg = config(&[&log], ReadFrom::Beginning);
    cfg.poll_interval = Duration::from_secs(1);
    let mut src = source(&cfg, &HashMap::new(), true);
    append(&log, b"x\n");
    let t = Instant::now();
    assert_eq!(src.poll_at(t).len(), 1);
    fs::remove_file(&log).unwrap();
    for _ in 0..10 {
        src.poll_at(t + Duration::from_secs(2));
    }
    assert_eq!(src.status().get().files.len(), 1, "idle for 2 s only");
    src.poll_at(t + Duration::from_secs(3));
    assert_eq!(src.status().get().files.len(), 0);
}

#[test]
fn delete_while_open_finishes_reading_through_the_descriptor() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    let cfg = config(&[&log], ReadFrom::Beginning);
    let mut acked = HashMap::new();
    let mut src = source(&cfg, &HashMap::new(), true);
    append(&log, b"l1\n");
    assert_eq!(texts(&drain(&mut src, &mut acked)), strs(&["l1"]));
    let mut writer = OpenOptions::new().append(true).open(&log).unwrap();
    writer.write_all(b"l2\n").unwrap();
    fs::remove_file(&log).unwrap();
    writer.write_all(b"l3 after the unlink\n").unwrap();
    assert_eq!(
        texts(&drain(&mut src, &mut acked)),
        strs(&["l2", "l3 after the unlink"])
    );
    for _ in 0..ORPHAN_IDLE_POLLS {
        src.poll_once();
    }
    let st = src.status().get();
    assert!(
        st.notes.iter().any(|n| n.contains("deleted")),
        "{:?}",
        st.notes
    );
    assert!(st.files.is_empty(), "closed once idle");
}

#[test]
fn copytruncate_reads_the_rest_from_the_copy_and_the_new_content_from_zero() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    let glob = dir.path().join("auth.log*");
    let cfg = config(&[&glob], ReadFrom::Beginning);
    let mut acked = HashMap::new();
    let mut src = source(&cfg, &HashMap::new(), true);
    src.set_chunk_limits(1, 1);
    append(&log, b"before rotation 1\n");
    let t = Instant::now();
    assert_eq!(texts(&src.poll_at(t)), strs(&["before rotation 1"]));
    append(&log, b"before rotation 2\nbefore rotation 3\n");
    // logrotate copytruncate: copy, then truncate, with no write in between.
    fs::copy(&log, dir.path().join("auth.log.1")).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, b"after rotation 1\n");
    let got = drain_at(&mut src, t, &mut acked);
    let mut got = texts(&got);
    got.sort();
    assert_eq!(
        got,
        strs(&["after rotation 1", "before rotation 2", "before rotation 3"])
    );
    let st = src.status().get();
    assert_eq!(st.totals.truncations, 1);
    assert!(st.notes.iter().any(|n| n.contains("copytruncate")));

    // A restart re-reads neither.
    drop(src);
    let mut src = source(&cfg, &acked, false);
    assert!(drain(&mut src, &mut acked).is_empty());
}

#[test]
fn copytruncate_refilled_past_the_old_offset_is_caught_by_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    let cfg = config(&[&log], ReadFrom::Beginning);
    let mut acked = HashMap::new();
    let mut src = source(&cfg, &HashMap::new(), true);
    append(&log, b"short\n");
    drain(&mut src, &mut acked);
    OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, b"a much longer first line after truncation\n");
    assert_eq!(
        texts(&drain(&mut src, &mut acked)),
        strs(&["a much longer first line after truncation"])
    );
    assert_eq!(src.status().get().totals.truncations, 1);
}

#[test]
fn inode_reuse_is_a_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    let cfg = config(&[&log], ReadFrom::Beginning);
    let mut acked = HashMap::new();
    let mut src = source(&cfg, &HashMap::new(), true);
    append(&log, b"the old file's first line\nand a second one\n");
    drain(&mut src, &mut acked);
    drop(src);
    fs::remove_file(&log).unwrap();
    append(&log, b"new file\n");
    // Whether or not the filesystem reused the inode, the new file is read from 0.
    let mut src = source(&cfg, &acked, false);
    assert_eq!(texts(&drain(&mut src, &mut acked)), strs(&["new file"]));
}

#[test]
fn inode_reuse_built_at_the_fingerprint_level_is_not_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    append(&log, b"new file line one\nnew file line two\n");
    let md = fs::metadata(&log).unwrap();
    // A checkpoint for the same device and inode, but another first line, far into the file.
    let stale = Fingerprint {
        dev: md.dev(),
        ino: md.ino(),
        head: fingerprint::checksum(b"a deleted file's first line\n"),
    };
    let start = HashMap::from([(StreamKey::File { fingerprint: stale }, Position::Offset(18))]);
    let mut src = source(&config(&[&log], ReadFrom::End), &start, false);
    assert_eq!(
        texts(&drain(&mut src, &mut HashMap::new())),
        strs(&["new file line one", "new file line two"])
    );
    // While the real key resumes.
    let real = Fingerprint {
        head: fingerprint::checksum(b"new file line one\n"),
        ..stale
    };
    let start = HashMap::from([(StreamKey::File { fingerprint: real }, Position::Offset(18))]);
    let mut src = source(&config(&[&log], ReadFrom::End), &start, false);
    assert_eq!(
        texts(&drain(&mut src, &mut HashMap::new())),
        strs(&["new file line two"])
    );
}

#[test]
fn partial_line_is_held_until_its_newline() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    let mut cfg = config(&[&log], ReadFrom::Beginning);
    cfg.partial_line_timeout = Duration::from_secs(5);
    let mut src = source(&cfg, &HashMap::new(), true);
    let t = Instant::now();
    append(&log, b"whole\nhal");
    let got = src.poll_at(t);
    assert_eq!(texts(&got), strs(&["whole"]));
    assert_eq!(
        got[0].end,
        Position::Offset(6),
        "the held line is not past the position"
    );
    append(&log, b"f a li");
    assert!(src.poll_at(t + Duration::from_secs(4)).is_empty());
    append(&log, b"ne\n");
    let got = src.poll_at(t + Duration::from_secs(4));
    assert_eq!(texts(&got), strs(&["half a line"]));
    assert!(!got[0].records[0].truncated);
    assert_eq!(src.status().get().totals.partial_lines_flushed, 0);
}

#[test]
fn partial_line_is_flushed_flagged_after_the_timeout_and_its_rest_is_a_new_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    let mut cfg = config(&[&log], ReadFrom::Beginning);
    cfg.partial_line_timeout = Duration::from_secs(5);
    let mut src = source(&cfg, &HashMap::new(), true);
    let t = Instant::now();
    append(&log, b"ok\nno newline yet");
    assert_eq!(texts(&src.poll_at(t)), strs(&["ok"]));
    assert!(src.poll_at(t + Duration::from_secs(4)).is_empty());
    let got = src.poll_at(t + Duration::from_secs(5));
    assert_eq!(texts(&got), strs(&["no newline yet"]));
    assert!(got[0].records[0].truncated, "flagged");
    assert_eq!(got[0].end, Position::Offset(17));
    let st = src.status().get();
    assert_eq!(st.totals.partial_lines_flushed, 1);
    append(&log, b", now it has one\n");
    assert_eq!(
        texts(&src.poll_at(t + Duration::from_secs(6))),
        strs(&[", now it has one"])
    );
}

#[test]
fn a_partial_first_line_rekeys_and_a_restart_finds_the_old_key() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    let mut cfg = config(&[&log], ReadFrom::Beginning);
    cfg.partial_line_timeout = Duration::ZERO;
    let mut acked = HashMap::new();
    let mut src = source(&cfg, &HashMap::new(), true);
    append(&log, b"abc");
    let got = drain(&mut src, &mut acked);
    assert_eq!(texts(&got), strs(&["abc"]));
    let old_key = got[0].stream.clone();
    append(&log, b"def\nxyz\n");
    let got = drain(&mut src, &mut acked);
    assert_eq!(texts(&got), strs(&["def", "xyz"]));
    assert_ne!(got[0].stream, old_key, "re-keyed");
    // Crash before the new key was persisted: only the old key is known.
    let start = HashMap::from([(old_key, Position::Offset(3))]);
    let mut src = source(&cfg, &start, false);
    assert_eq!(texts(&drain(&mut src, &mut acked)), strs(&["def", "xyz"]));
}

#[test]
fn an_empty_file_gets_its_fingerprint_when_bytes_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    append(&log, b"");
    let cfg = config(&[&log], ReadFrom::Beginning);
    let mut src = source(&cfg, &HashMap::new(), false);
    assert!(drain(&mut src, &mut HashMap::new()).is_empty());
    assert_eq!(src.status().get().files[0].fingerprint.head, 0);
    append(&log, b"first\n");
    let got = drain(&mut src, &mut HashMap::new());
    let StreamKey::File { fingerprint } = &got[0].stream else {
        panic!()
    };
    assert_eq!(fingerprint.head, fingerprint::checksum(b"first\n"));
    assert_eq!(texts(&got), strs(&["first"]));
}

#[test]
fn glob_discovers_new_files_and_skips_compressed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&[&dir.path().join("*.log*")], ReadFrom::End);
    let mut src = source(&cfg, &HashMap::new(), true);
    assert!(drain(&mut src, &mut HashMap::new()).is_empty());
    append(&dir.path().join("b.log"), b"in b\n");
    append(&dir.path().join("c.log.gz"), b"\x1f\x8b binary\n");
    assert_eq!(
        texts(&drain(&mut src, &mut HashMap::new())),
        strs(&["in b"])
    );
}

#[test]
fn long_lines_are_cut_and_bytes_pass_through() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    let mut long = vec![b'x'; 10 * MAX_LINE];
    long.push(b'\n');
    append(&log, &long);
    append(&log, b"bad \xff\xfe utf8 and a \0 nul\n");
    let mut src = source(&config(&[&log], ReadFrom::Beginning), &HashMap::new(), true);
    let got = drain(&mut src, &mut HashMap::new());
    let recs: Vec<(&[u8], bool)> = got
        .iter()
        .flat_map(|c| c.records.iter().map(|r| (c.bytes(r), r.truncated)))
        .collect();
    assert_eq!(recs[0], (&long[..MAX_LINE], true));
    assert_eq!(recs[1], (&b"bad \xff\xfe utf8 and a \0 nul"[..], false));
    let st = src.status().get();
    assert_eq!(st.totals.lines_truncated, 1);
    assert_eq!(st.files[0].offset, st.files[0].size);
}

#[test]
fn chunks_and_polls_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    let mut text = Vec::new();
    for i in 0..(CHUNK_MAX_LINES * 6) {
        writeln!(text, "line {i}").unwrap();
    }
    append(&log, &text);
    let mut src = source(&config(&[&log], ReadFrom::Beginning), &HashMap::new(), true);
    let first = src.poll_once();
    assert_eq!(first.len(), MAX_CHUNKS_PER_POLL);
    assert!(first.iter().all(|c| c.records.len() <= CHUNK_MAX_LINES));
    assert!(src.has_backlog());
    let rest = drain(&mut src, &mut HashMap::new());
    assert_eq!(
        texts(&first).len() + texts(&rest).len(),
        CHUNK_MAX_LINES * 6
    );
    // Offsets chain: each chunk ends where the next one's first record starts.
    let all: Vec<&Chunk> = first.iter().chain(&rest).collect();
    for w in all.windows(2) {
        assert_eq!(w[0].end, Position::Offset(w[1].records[0].offset.unwrap()));
    }
}

#[test]
fn max_files_is_a_bound() {
    let dir = tempfile::tempdir().unwrap();
    for n in ["a.log", "b.log", "c.log"] {
        append(&dir.path().join(n), b"x\n");
    }
    let mut cfg = config(&[&dir.path().join("*.log")], ReadFrom::Beginning);
    cfg.max_files = 2;
    let mut src = source(&cfg, &HashMap::new(), true);
    assert_eq!(texts(&drain(&mut src, &mut HashMap::new())).len(), 2);
    let st = src.status().get();
    assert_eq!(st.files.len(), 2);
    assert_eq!(st.files_skipped, 1);
    assert!(st.notes.iter().any(|n| n.contains("max-files")));
}

#[test]
fn watch_dir_of_a_glob() {
    assert_eq!(literal_dir("/var/log/secure*"), PathBuf::from("/var/log"));
    assert_eq!(literal_dir("/var/log/auth.log"), PathBuf::from("/var/log"));
    assert_eq!(
        literal_dir("/var/log/*/auth.log"),
        PathBuf::from("/var/log")
    );
    assert_eq!(literal_dir("auth.log"), PathBuf::from("."));
}

fn run_source(
    src: FileSource,
) -> (
    std::sync::mpsc::Receiver<Chunk>,
    Arc<AtomicBool>,
    Waker,
    thread::JoinHandle<()>,
) {
    let (tx, rx) = sync_channel(4);
    let stop = Arc::new(AtomicBool::new(false));
    let waker = src.waker();
    let s2 = Arc::clone(&stop);
    let h = thread::spawn(move || src.run(tx, s2));
    (rx, stop, waker, h)
}

#[test]
fn events_wake_the_source_long_before_the_poll_interval_and_stop_is_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    append(&log, b"");
    let mut cfg = config(&[&log], ReadFrom::Beginning);
    cfg.poll_interval = Duration::from_secs(30);
    let src = FileSource::new(&cfg, Arc::from("t"), HashMap::new(), MAX_LINE, true).quiet();
    if src.status().get().mode != WatchMode::Events {
        eprintln!("inotify unavailable here; skipping");
        return;
    }
    let status = src.status();
    let (rx, stop, waker, h) = run_source(src);
    thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    append(&log, b"woken\n");
    let c = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("an event woke the source");
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(texts(&[c]), strs(&["woken"]));
    // Idle: it sleeps (no busy loop) even with a long poll interval.
    let polls = status.get().polls;
    thread::sleep(Duration::from_millis(500));
    assert!(status.get().polls - polls <= 2, "idle source keeps polling");
    stop.store(true, Ordering::Relaxed);
    waker.wake();
    let t = Instant::now();
    h.join().unwrap();
    assert!(t.elapsed() < Duration::from_secs(2));
}

/// Voluntary context switches of this process's thread named `name` (the kernel's comm).
fn thread_switches(name: &str) -> Option<u64> {
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() == name {
            let status = std::fs::read_to_string(task.path().join("status")).ok()?;
            return status
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse().ok());
        }
    }
    None
}

#[test]
fn writes_to_other_files_in_the_directory_wake_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    let other = dir.path().join("syslog");
    append(&log, b"");
    append(&other, b"");
    let mut cfg = config(&[&log], ReadFrom::Beginning);
    cfg.poll_interval = Duration::from_secs(30);
    let src = FileSource::new(&cfg, Arc::from("t"), HashMap::new(), MAX_LINE, true).quiet();
    if src.status().get().mode != WatchMode::Events {
        eprintln!("inotify unavailable here; skipping");
        return;
    }
    let (tx, rx) = sync_channel(4);
    let stop = Arc::new(AtomicBool::new(false));
    let waker = src.waker();
    let s2 = Arc::clone(&stop);
    let name = "quiet-src-test";
    let h = thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || src.run(tx, s2))
        .unwrap();
    thread::sleep(Duration::from_millis(300));
    let before = thread_switches(name).expect("the source thread");
    for _ in 0..50 {
        append(&other, b"another program's line\n");
        thread::sleep(Duration::from_millis(5));
    }
    thread::sleep(Duration::from_millis(300));
    let woken = thread_switches(name).unwrap() - before;
    assert!(
        woken <= 2,
        "50 writes to another file woke the source {woken} times"
    );
    // The followed file still wakes it.
    append(&log, b"mine\n");
    let c = rx.recv_timeout(Duration::from_secs(5)).expect("woken");
    assert_eq!(texts(&[c]), strs(&["mine"]));
    stop.store(true, Ordering::Relaxed);
    waker.wake();
    h.join().unwrap();
}

#[test]
fn polling_fallback_reads_without_events_and_idles_at_the_poll_interval() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    let mut cfg = config(&[&log], ReadFrom::Beginning);
    cfg.poll_interval = Duration::from_millis(100);
    let src = source(&cfg, &HashMap::new(), true);
    assert_eq!(src.status().get().mode, WatchMode::Poll);
    let status = src.status();
    let (rx, stop, waker, h) = run_source(src);
    append(&log, b"polled\n");
    let c = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("polling found it");
    assert_eq!(texts(&[c]), strs(&["polled"]));
    let polls = status.get().polls;
    thread::sleep(Duration::from_millis(1000));
    let n = status.get().polls - polls;
    assert!(
        (5..=15).contains(&n),
        "{n} polls in 1 s at a 100 ms interval"
    );
    stop.store(true, Ordering::Relaxed);
    waker.wake();
    h.join().unwrap();
}

#[test]
fn run_ends_when_the_receiver_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    append(&log, b"x\n");
    let mut cfg = config(&[&log], ReadFrom::Beginning);
    cfg.poll_interval = Duration::from_millis(20);
    let src = source(&cfg, &HashMap::new(), true);
    let (tx, rx) = sync_channel(4);
    drop(rx);
    // The source notices at its next send.
    let h = thread::spawn(move || src.run(tx, Arc::new(AtomicBool::new(false))));
    h.join().unwrap();
}

#[test]
fn stop_is_seen_while_the_channel_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    let mut text = Vec::new();
    for i in 0..10_000 {
        writeln!(text, "line {i}").unwrap();
    }
    append(&log, &text);
    let mut cfg = config(&[&log], ReadFrom::Beginning);
    cfg.poll_interval = Duration::from_millis(20);
    let mut src = source(&cfg, &HashMap::new(), true);
    src.set_chunk_limits(1024, 10);
    let (tx, rx) = sync_channel(1);
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = Arc::clone(&stop);
    let h = thread::spawn(move || src.run(tx, s2));
    rx.recv_timeout(Duration::from_secs(5)).unwrap();
    thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    let t = Instant::now();
    h.join().unwrap();
    assert!(t.elapsed() < Duration::from_secs(1));
    drop(rx);
}

/// Reads a three-line log to its end, changes it with `meanwhile` as if the agent were down,
/// and restarts from the checkpoint: what is read then, and the notes.
fn restart_after(meanwhile: impl FnOnce(&Path)) -> (Vec<String>, Vec<String>, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    append(&log, b"first line of the log\nsecond\nthird\n");
    let cfg = config(&[&log], ReadFrom::Beginning);
    let mut acked = HashMap::new();
    let mut src = source(&cfg, &HashMap::new(), true);
    assert_eq!(texts(&drain(&mut src, &mut acked)).len(), 3);
    drop(src);
    meanwhile(&log);
    let mut src = source(&cfg, &acked, false);
    let read = texts(&drain(&mut src, &mut acked));
    let notes = src.status().get().notes.into_iter().collect();
    (read, notes, log)
}

fn shorten(log: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(log)
        .unwrap()
        .set_len(len)
        .unwrap();
}

#[test]
fn a_checkpoint_past_the_end_of_a_file_that_shrank_while_down_is_warned_about() {
    // Same inode, same first line, shorter: read again from 0, the warning names the file and
    // both sizes.
    let (read, notes, log) = restart_after(|log| shorten(log, 22));
    assert_eq!(read, strs(&["first line of the log"]));
    let name = log.display().to_string();
    assert!(
        notes
            .iter()
            .any(|n| n.contains(&name) && n.contains("35 > 22")),
        "{notes:?}"
    );
}

#[test]
fn a_checkpoint_past_the_end_of_a_file_rewritten_while_down_is_warned_about() {
    // Truncated and written again while the agent was down: the first line changed, so the
    // checkpoint does not apply; reading from 0 is right, but not without a word.
    let (read, notes, log) = restart_after(|log| {
        shorten(log, 0);
        append(log, b"x\n");
    });
    assert_eq!(read, strs(&["x"]));
    let name = log.display().to_string();
    assert!(
        notes
            .iter()
            .any(|n| n.contains(&name) && n.contains("35 > 2")),
        "{notes:?}"
    );
}

/// Unix seconds `secs` from now, for [`Checkpoints::expire_at`].
fn unix_in(secs: u64) -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + secs
}

/// Records the chunks' ends in `cp`, as the pipeline does once they are durable.
fn commit(cp: &mut Checkpoints, chunks: &[Chunk]) {
    for c in chunks {
        cp.set(
            c.stream.clone(),
            c.end.clone(),
            c.path.as_deref().map(PathBuf::as_path),
        );
    }
}

/// What the run loop does: expire what `src` does not have live.
fn expire(src: &FileSource, cp: &mut Checkpoints, now: u64, retention: Duration, max: usize) {
    let mut live = Live::default();
    assert!(src.status().add_live(&mut live), "the source has scanned");
    cp.expire_at(now, &live, retention, max);
}

// The regression: checkpoints.json gained an entry for every rotated file and never lost one.
#[test]
fn checkpoints_of_rotated_files_stay_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    let rotated = dir.path().join("auth.log.1");
    let state = tempfile::tempdir().unwrap();
    let mut cp = Checkpoints::new(state.path());
    let cfg = config(&[&log], ReadFrom::Beginning);
    let mut src = source(&cfg, &HashMap::new(), true);
    let mut acked = HashMap::new();
    let mut most = 0;
    for i in 0..300 {
        // Each generation is a new file (its own inode or first line): a new stream.
        append(
            &log,
            format!("Nov 28 06:49:30 host sshd[{i}]: generation {i}\n").as_bytes(),
        );
        let now = Instant::now();
        let got = drain_at(&mut src, now, &mut acked);
        assert_eq!(texts(&got).len(), 1, "generation {i}");
        commit(&mut cp, &got);
        fs::rename(&log, &rotated).unwrap();
        for _ in 0..ORPHAN_IDLE_POLLS + 1 {
            commit(&mut cp, &src.poll_at(now));
        }
        // A second later, with no retention: every stream not live goes.
        expire(&src, &mut cp, unix_in(1), Duration::ZERO, MAX_STREAMS);
        most = most.max(cp.len());
    }
    assert!(most <= 2, "{most} checkpoints kept for one live file");

    // With the default retention, the bound on entries holds the file at MAX_STREAMS however
    // many files went by within the retention period.
    let mut cp2 = Checkpoints::new(state.path());
    for i in 0..(MAX_STREAMS as u64 + 100) {
        let key = StreamKey::File {
            fingerprint: Fingerprint {
                dev: 1,
                ino: 1_000_000 + i,
                head: i,
            },
        };
        cp2.set(key, Position::Offset(i), None);
    }
    expire(&src, &mut cp2, unix_in(0), EXPIRE_AFTER, MAX_STREAMS);
    assert_eq!(cp2.len(), MAX_STREAMS);
}

#[test]
fn expiry_never_drops_a_file_under_the_globs_or_still_open() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let away = dir.path().join("away");
    fs::create_dir_all(&logs).unwrap();
    fs::create_dir_all(&away).unwrap();
    let glob = logs.join("*.log");
    for name in ["a", "b", "c", "gone"] {
        append(
            &logs.join(format!("{name}.log")),
            format!("Nov 28 06:49:30 host sshd[1]: first line of {name}\n").as_bytes(),
        );
    }
    // An earlier run followed all four files.
    let state = tempfile::tempdir().unwrap();
    let mut cp = Checkpoints::new(state.path());
    let mut cfg = config(&[&glob], ReadFrom::Beginning);
    let mut acked = HashMap::new();
    let mut first = source(&cfg, &HashMap::new(), true);
    let got = drain(&mut first, &mut acked);
    assert_eq!(texts(&got).len(), 4);
    commit(&mut cp, &got);
    let key_of = |name: &str| {
        got.iter()
            .find(|c| c.path.as_deref() == Some(&logs.join(format!("{name}.log"))))
            .map(|c| c.stream.clone())
            .unwrap()
    };
    let keys: Vec<StreamKey> = ["a", "b", "c", "gone"].map(key_of).into();
    drop(first);
    fs::remove_file(logs.join("gone.log")).unwrap();

    // Now at most two files are followed: a.log and b.log; c.log is matched but skipped.
    cfg.max_files = 2;
    let mut src = source(&cfg, &cp.snapshot(), false);
    assert!(
        !src.status().add_live(&mut Live::default()),
        "nothing is known to be live before the first scan"
    );
    let now = Instant::now();
    assert!(drain_at(&mut src, now, &mut acked).is_empty());
    // b.log is renamed out of the globs: an orphan, still open until it has been idle.
    fs::rename(logs.join("b.log"), away.join("b.log")).unwrap();
    src.rescan_next_poll();
    assert!(drain_at(&mut src, now, &mut acked).is_empty());
    assert_eq!(
        src.status().files().len(),
        2,
        "a.log and the orphan b.log are open"
    );

    // The harshest expiry: a month later, no retention, no room at all.
    expire(&src, &mut cp, unix_in(30 * 24 * 3600), Duration::ZERO, 0);
    for (name, key) in ["a", "b", "c"].iter().zip(&keys) {
        assert!(
            cp.get(key).is_some(),
            "the checkpoint of {name}.log was dropped"
        );
    }
    assert_eq!(cp.get(&keys[3]), None, "gone.log is gone");
    assert_eq!(cp.len(), 3);

    // Started from what is left, nothing is read twice.
    cfg.max_files = 16;
    let mut again = source(&cfg, &cp.snapshot(), false);
    assert!(drain(&mut again, &mut acked).is_empty());
    append(
        &logs.join("c.log"),
        b"Nov 28 06:49:31 host sshd[2]: new in c\n",
    );
    assert_eq!(
        texts(&drain(&mut again, &mut acked)),
        strs(&["Nov 28 06:49:31 host sshd[2]: new in c"])
    );
}

/// Truncates `log` the way logrotate's copytruncate does, copying it first to `copy`.
fn copytruncate(log: &Path, copy: &Path) {
    fs::copy(log, copy).unwrap();
    OpenOptions::new()
        .write(true)
        .open(log)
        .unwrap()
        .set_len(0)
        .unwrap();
}

/// Reading is behind (as when the pipeline pauses on a full memory buffer) when the log is
/// truncated: with no copy the globs match, the lines not yet read are gone, and the loss is
/// counted and warned about, in bytes (their lines cannot be counted any more); with a copy the
/// globs match, the rest is read from the copy and nothing is lost.
#[test]
fn a_copytruncate_while_reading_is_behind_counts_the_unread_bytes_lost_unless_a_copy_is_read() {
    for copy_matched in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("auth.log");
        let glob = if copy_matched {
            dir.path().join("auth.log*")
        } else {
            log.clone()
        };
        let cfg = config(&[&glob], ReadFrom::Beginning);
        let mut acked = HashMap::new();
        let mut src = source(&cfg, &HashMap::new(), true);
        src.set_chunk_limits(1, 1);
        let lines: Vec<String> = (1..=6)
            .map(|i| format!("line {i} written before the rotation\n"))
            .collect();
        append(&log, lines.concat().as_bytes());
        let t = Instant::now();
        // One poll reads MAX_CHUNKS_PER_POLL one-line chunks of the six it has seen.
        assert_eq!(texts(&src.poll_at(t)).len(), MAX_CHUNKS_PER_POLL);
        copytruncate(&log, &dir.path().join("auth.log.1"));
        append(&log, b"after\n");
        let mut got = texts(&drain_at(&mut src, t, &mut acked));
        got.sort();
        let st = src.status().get();
        let unread: u64 = lines[MAX_CHUNKS_PER_POLL..]
            .iter()
            .map(|l| l.len() as u64)
            .sum();
        if copy_matched {
            assert_eq!(
                got,
                strs(&[
                    "after",
                    "line 5 written before the rotation",
                    "line 6 written before the rotation"
                ])
            );
            assert_eq!(st.totals.lost_bytes, 0, "{:?}", st.notes);
        } else {
            assert_eq!(got, strs(&["after"]));
            assert_eq!(st.totals.lost_bytes, unread, "{:?}", st.notes);
            assert!(
                st.notes
                    .iter()
                    .any(|n| n.contains(&format!("{unread} byte(s)")) && n.contains("lost")),
                "{:?}",
                st.notes
            );
        }
    }
}

/// A log of six lines of which the source reads four before the agent stops (reading is
/// behind), its positions and sizes recorded as the run loop does and persisted; the test then
/// changes the files as if the agent were stopped and restarts.
struct Stopped {
    dir: tempfile::TempDir,
    state: tempfile::TempDir,
    cfg: FileSourceConfig,
    log: PathBuf,
    unread: u64,
}

impl Stopped {
    fn new(glob: &str) -> Stopped {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("auth.log");
        let cfg = config(&[&dir.path().join(glob)], ReadFrom::Beginning);
        let state = tempfile::tempdir().unwrap();
        let mut cp = Checkpoints::new(state.path());
        let mut src = source(&cfg, &HashMap::new(), true);
        src.set_chunk_limits(1, 1);
        let lines: Vec<String> = (1..=6)
            .map(|i| format!("Nov 28 06:49:3{i} host sshd[{i}]: line {i} before the stop\n"))
            .collect();
        append(&log, lines.concat().as_bytes());
        let got = src.poll_at(Instant::now());
        assert_eq!(texts(&got).len(), MAX_CHUNKS_PER_POLL);
        commit(&mut cp, &got);
        src.status().record_sizes(&mut cp);
        cp.persist().unwrap();
        let unread = lines[MAX_CHUNKS_PER_POLL..]
            .iter()
            .map(|l| l.len() as u64)
            .sum();
        Stopped {
            dir,
            state,
            cfg,
            log,
            unread,
        }
    }

    /// Starts a source from the persisted checkpoints, reads everything, records what it read
    /// and its sizes as the run loop does, persists: the lines read and the source's status.
    /// With `expire`, the checkpoint expiry (as harsh as it gets) then forgets what is gone.
    fn restart(&self, expire_gone: bool) -> (Vec<String>, SourceStatus) {
        let (mut cp, warn) = crate::source::checkpoint::load(self.state.path());
        assert!(warn.is_none());
        let mut src = FileSource::new(&self.cfg, Arc::from("test"), cp.snapshot(), MAX_LINE, false)
            .with_last_seen(cp.last_seen())
            .force_poll()
            .quiet();
        let got = drain(&mut src, &mut HashMap::new());
        commit(&mut cp, &got);
        src.status().record_sizes(&mut cp);
        if expire_gone {
            expire(
                &src,
                &mut cp,
                unix_in(30 * 24 * 3600),
                Duration::ZERO,
                MAX_STREAMS,
            );
        }
        cp.persist().unwrap();
        let mut got = texts(&got);
        got.sort();
        (got, src.status().get())
    }

    fn warned(&self, st: &SourceStatus) -> bool {
        st.notes
            .iter()
            .any(|n| n.contains(&format!("{} byte(s)", self.unread)) && n.contains("lost"))
    }
}

const AFTER: &str = "Nov 28 07:00:00 host sshd[9]: written after the rotation";

#[test]
fn a_log_truncated_while_the_agent_was_stopped_counts_the_unread_bytes_lost_once() {
    // Cut back to its first line (same identity), and cut to nothing and written anew.
    for refill in [false, true] {
        let s = Stopped::new("auth.log");
        if refill {
            shorten(&s.log, 0);
            append(&s.log, format!("{AFTER}\n").as_bytes());
        } else {
            let first = fs::read(&s.log).unwrap().iter().position(|&b| b == b'\n');
            shorten(&s.log, first.unwrap() as u64 + 1);
        }
        let (read, st) = s.restart(false);
        let want: &[&str] = if refill {
            &[AFTER]
        } else {
            &["Nov 28 06:49:31 host sshd[1]: line 1 before the stop"]
        };
        assert_eq!(read, strs(want), "refill {refill}");
        assert_eq!(
            st.totals.lost_bytes, s.unread,
            "refill {refill}: {:?}",
            st.notes
        );
        assert!(s.warned(&st), "refill {refill}: {:?}", st.notes);
        // A restart counts nothing twice, nor one after the expiry forgot what is gone.
        for expire_gone in [false, true, false] {
            let (read, st) = s.restart(expire_gone);
            assert!(read.is_empty());
            assert_eq!(st.totals.lost_bytes, 0, "refill {refill}: {:?}", st.notes);
        }
    }
}

#[test]
fn a_log_deleted_while_the_agent_was_stopped_counts_the_unread_bytes_lost_once() {
    // Deleted alone, deleted with a new log made in its place (logrotate's `create`, which may
    // reuse the inode), and renamed to a name the globs do not match.
    for how in ["deleted", "recreated", "renamed away"] {
        let s = Stopped::new("auth.log");
        match how {
            "deleted" => fs::remove_file(&s.log).unwrap(),
            "recreated" => {
                fs::remove_file(&s.log).unwrap();
                append(&s.log, format!("{AFTER}\n").as_bytes());
            }
            _ => fs::rename(&s.log, s.dir.path().join("auth.log.1")).unwrap(),
        }
        let (read, st) = s.restart(false);
        let want: &[&str] = if how == "recreated" { &[AFTER] } else { &[] };
        assert_eq!(read, strs(want), "{how}");
        assert_eq!(st.totals.lost_bytes, s.unread, "{how}: {:?}", st.notes);
        assert!(s.warned(&st), "{how}: {:?}", st.notes);
        for expire_gone in [false, true, false] {
            let (read, st) = s.restart(expire_gone);
            assert!(read.is_empty(), "{how}");
            assert_eq!(st.totals.lost_bytes, 0, "{how}: {:?}", st.notes);
        }
    }
}

#[test]
fn a_log_rotated_to_a_matched_name_while_the_agent_was_stopped_is_read_and_nothing_lost() {
    // By rename (`auth.log.1`), and by copytruncate (a copy `auth.log.1`, the log cut to 0).
    for copy in [false, true] {
        let s = Stopped::new("auth.log*");
        let rotated = s.dir.path().join("auth.log.1");
        if copy {
            copytruncate(&s.log, &rotated);
        } else {
            fs::rename(&s.log, &rotated).unwrap();
        }
        append(&s.log, format!("{AFTER}\n").as_bytes());
        let (read, st) = s.restart(false);
        assert_eq!(
            read,
            strs(&[
                "Nov 28 06:49:35 host sshd[5]: line 5 before the stop",
                "Nov 28 06:49:36 host sshd[6]: line 6 before the stop",
                AFTER,
            ]),
            "copy {copy}"
        );
        assert_eq!(st.totals.lost_bytes, 0, "copy {copy}: {:?}", st.notes);
        for expire_gone in [false, true, false] {
            let (read, st) = s.restart(expire_gone);
            assert!(read.is_empty(), "copy {copy}");
            assert_eq!(st.totals.lost_bytes, 0, "copy {copy}: {:?}", st.notes);
        }
    }
}

#[test]
fn a_log_gone_while_stopped_is_counted_only_by_the_source_whose_globs_read_it() {
    // Every source is started from the whole checkpoint file: one whose globs never matched
    // the log must not count its loss, and does not settle it for the source that did.
    let s = Stopped::new("auth.log");
    fs::remove_file(&s.log).unwrap();
    let (cp, _) = crate::source::checkpoint::load(s.state.path());
    let other = config(&[&s.dir.path().join("other*.log")], ReadFrom::Beginning);
    let mut src = FileSource::new(&other, Arc::from("other"), cp.snapshot(), MAX_LINE, false)
        .with_last_seen(cp.last_seen())
        .force_poll()
        .quiet();
    assert!(drain(&mut src, &mut HashMap::new()).is_empty());
    let st = src.status().get();
    assert_eq!(st.totals.lost_bytes, 0, "{:?}", st.notes);
    assert!(st.settled.is_empty());
    let (_, st) = s.restart(false);
    assert_eq!(st.totals.lost_bytes, s.unread, "{:?}", st.notes);
}
