//! The utmp source end to end on the real wtmp/btmp captured in `agent-core/testdata/`: records
//! written a few at a time, rotated by logrotate's rename + create, and turned into events by
//! `agent_core::utmp::to_event`, each exactly once.

#![allow(
    clippy::unwrap_used,
    reason = "a test that cannot read its input should fail loudly"
)]

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use agent::config::{ReadFrom, UtmpSourceConfig};
use agent::source::utmp::UtmpSource;
use agent::source::{Chunk, Payload};
use agent_core::utmp::{RECORD_LEN, UtmpFile, parse_record, to_event};
use agent_core::{Action, Source};

const WTMP: &[u8] = include_bytes!("../../agent-core/testdata/debian12-utmp/wtmp");
const BTMP: &[u8] = include_bytes!("../../agent-core/testdata/debian12-utmp/btmp");

fn append(path: &Path, bytes: &[u8]) {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

/// (action, user, tty, source) of every event in the chunks.
fn events(chunks: &[Chunk]) -> Vec<(Action, Option<String>, String, Option<String>)> {
    let mut out = Vec::new();
    for c in chunks {
        assert_eq!(c.payload, Payload::Utmp);
        let path = c.path.as_ref().unwrap();
        let kind = UtmpFile::from_file_name(path.file_name().unwrap().as_encoded_bytes());
        for r in &c.records {
            let rec = parse_record(c.bytes(r)).unwrap();
            let Some(e) = to_event(&rec, kind) else {
                continue;
            };
            out.push((
                e.action,
                e.user.map(|u| u.to_string()),
                e.tty.unwrap().to_string(),
                e.source.map(|s| match s {
                    Source::Ip(ip) => ip.to_string(),
                    Source::Domain(d) => d.to_string(),
                }),
            ));
        }
    }
    out
}

#[test]
fn real_wtmp_and_btmp_through_rotation_each_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let wtmp = dir.path().join("wtmp");
    let btmp = dir.path().join("btmp");
    let cfg = UtmpSourceConfig {
        name: None,
        paths: vec![
            wtmp.display().to_string(),
            dir.path().join("btmp*").display().to_string(),
        ],
        read_from: ReadFrom::Beginning,
        poll_interval: Duration::from_millis(10),
    };
    let mut src = UtmpSource::new(&cfg, "utmp".into(), HashMap::new(), true);
    let mut chunks = Vec::new();
    // Written record by record, with a poll between (some polls see half a record).
    let (mut w, mut b) = (0, 0);
    let mut round = 0;
    while w < WTMP.len() || b < BTMP.len() {
        round += 1;
        let wn = (w + RECORD_LEN / 2 * 3).min(WTMP.len());
        append(&wtmp, &WTMP[w..wn]);
        w = wn;
        let bn = (b + RECORD_LEN * 2 + 7).min(BTMP.len());
        append(&btmp, &BTMP[b..bn]);
        b = bn;
        if round == 6 {
            // Rotate both (rename + create), never inside a record: writers write whole ones.
            assert_eq!(w % RECORD_LEN, 0);
            let pad = (RECORD_LEN - b % RECORD_LEN) % RECORD_LEN;
            append(&btmp, &BTMP[b..b + pad]);
            b += pad;
            std::fs::rename(&wtmp, dir.path().join("wtmp.1")).unwrap();
            std::fs::rename(&btmp, dir.path().join("btmp.1")).unwrap();
        }
        chunks.extend(src.poll_once());
    }
    chunks.extend(src.poll_once());

    let ev = events(&chunks);
    let count = |a: Action| ev.iter().filter(|e| e.0 == a).count();
    assert_eq!(count(Action::SessionOpen), 10);
    assert_eq!(count(Action::SessionClose), 10);
    assert_eq!(count(Action::AuthFailure), 47);
    assert!(ev.contains(&(
        Action::SessionOpen,
        Some("atalice".into()),
        "pts/0".into(),
        Some("::1".into())
    )));
    assert!(ev.contains(&(
        Action::AuthFailure,
        Some("nosuchuser".into()),
        "ssh:notty".into(),
        Some("127.0.0.6".into())
    )));
    // Every record exactly once, in order per file.
    let bytes = |name: &str| -> Vec<u8> {
        chunks
            .iter()
            .filter(|c| {
                let f = c.path.as_ref().unwrap().file_name().unwrap();
                f.to_string_lossy().starts_with(name)
            })
            .flat_map(|c| c.records.iter().flat_map(|r| c.bytes(r).to_vec()))
            .collect()
    };
    assert_eq!(bytes("wtmp"), WTMP);
    assert_eq!(bytes("btmp"), BTMP);
}
