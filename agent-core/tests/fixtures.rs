//! Every captured and documented fixture line: no line from a watched program goes unrecognised,
//! no line is malformed, and the ECS output of each file matches its reviewed golden file
//! (`<name>.expected.ndjson` beside it). After a deliberate change, regenerate the goldens with
//! `AUTHTRAIL_BLESS=1 cargo test -p agent-core --test fixtures` and review the diff.

#![allow(
    clippy::unwrap_used,
    reason = "a test that cannot read its input should fail loudly"
)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use agent_core::ecs::{Envelope, write_event};
use agent_core::syslog::Context;
use agent_core::{Parsed, Text, Timestamp, parse_line};

fn logs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(logs(&path));
        } else if path.extension().is_some_and(|e| e == "log") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The captures were made on 2026-11-28; documented lines are dated around it.
fn ctx() -> Context {
    Context::new(Timestamp::from_secs(1_795_867_200))
}

fn render(path: &Path, problems: &mut Vec<String>) -> String {
    let data = std::fs::read(path).unwrap();
    let mut out = String::new();
    let mut offset = 0u64;
    for (i, raw) in data.split_inclusive(|&b| b == b'\n').enumerate() {
        let line_offset = offset;
        offset += raw.len() as u64;
        let line = agent_core::syslog::trim_line_end(raw);
        if line.is_empty() || line.starts_with(b"#") {
            continue;
        }
        let where_ = format!("{}:{}", path.display(), i + 1);
        match parse_line(line, &ctx()) {
            Parsed::Event(ev) => {
                let env = Envelope {
                    log_offset: Some(line_offset),
                    ..Envelope::default()
                };
                write_event(&mut out, &ev, &env).unwrap();
                out.push('\n');
            }
            Parsed::Unrecognised { .. } => {
                problems.push(format!("{where_}: unrecognised: {}", Text(line)))
            }
            Parsed::Malformed(e) => problems.push(format!("{where_}: {e}: {}", Text(line))),
            Parsed::Noise { .. } | Parsed::Foreign { .. } | Parsed::RepeatLast { .. } => {
                let _ = writeln!(out, "# line {}: {}", i + 1, parse_line(line, &ctx()).kind());
            }
        }
    }
    out
}

#[test]
fn fixtures_parse_and_match_their_goldens() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let bless = std::env::var_os("AUTHTRAIL_BLESS").is_some();
    let mut problems = Vec::new();
    let mut files = 0;
    for path in logs(&root) {
        files += 1;
        let got = render(&path, &mut problems);
        let golden = path.with_extension("expected.ndjson");
        if bless {
            std::fs::write(&golden, &got).unwrap();
            continue;
        }
        match std::fs::read_to_string(&golden) {
            Ok(want) if want == got => {}
            Ok(want) => {
                let first_diff = want
                    .lines()
                    .zip(got.lines())
                    .position(|(a, b)| a != b)
                    .unwrap_or(want.lines().count().min(got.lines().count()));
                problems.push(format!(
                    "{}: output differs from {} at its line {}:\n  want: {}\n  got:  {}",
                    path.display(),
                    golden.display(),
                    first_diff + 1,
                    want.lines().nth(first_diff).unwrap_or("<end>"),
                    got.lines().nth(first_diff).unwrap_or("<end>"),
                ))
            }
            Err(_) => problems.push(format!(
                "{}: no golden file {} (run with AUTHTRAIL_BLESS=1)",
                path.display(),
                golden.display()
            )),
        }
    }
    assert!(files >= 10, "only {files} fixture files found");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
