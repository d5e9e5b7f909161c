//! The `authtrail` binary's commands as an operator meets them: `validate` on bad configs.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_authtrail");

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("agent.toml");
    fs::write(&path, text).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    path
}

fn validate(config: &Path) -> Output {
    Command::new(BIN)
        .args(["validate", "--config"])
        .arg(config)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// The line of `err` that reports `needle`, asserting it names `line` of the config.
fn assert_reported(err: &str, config: &Path, line: usize, needle: &str) {
    let at = format!("{}:{line}:", config.display());
    assert!(
        err.lines().any(|l| l.contains(&at) && l.contains(needle)),
        "no error at line {line} with {needle:?} in:\n{err}"
    );
}

/// One run of `validate` on a config with many kinds of error reports each one with its line:
/// TOML type errors (not just the first), semantic ones, files `run` would fail to read, a
/// helper program that is missing, and a threshold of zero.
#[test]
fn validate_reports_every_error_with_its_line_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("cert.pem");
    fs::write(&not_pem, "this is not a certificate\n").unwrap();
    let key = dir.path().join("key.pem");
    fs::write(&key, "").unwrap();
    let text = format!(
        r#"timezone = "Mars/Olympus"
max-line-bytes = "lots"
include-message = 1

[[source]]
type = "file"
paths = ["/var/log/auth.log"]
poll-interval = 5
max-files = "many"

[[source]]
type = "journald"
journalctl = "/nonexistent/bin/journalctl"

[detect]
brute-force-threshold = 0
spray-window = "soon"

[sink]
type = "collector"
url = "https://collector.example:8443"
batch-max-events = "all"

[sink.tls]
ca-file = "/nonexistent/ca.pem"
cert-file = {cert:?}
key-file = {key:?}
"#,
        cert = not_pem.display().to_string(),
        key = key.display().to_string(),
    );
    let config = write_config(dir.path(), &text);
    let out = validate(&config);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(out.stdout.is_empty());
    assert_reported(&err, &config, 1, "expected `local`, `UTC`");
    assert_reported(&err, &config, 2, "expected a size like 64KiB");
    assert_reported(&err, &config, 3, "expected `true` or `false`");
    assert_reported(&err, &config, 8, "poll-interval");
    assert_reported(&err, &config, 9, "expected a whole number");
    assert_reported(&err, &config, 13, "cannot be run");
    assert_reported(&err, &config, 16, "[detect] brute-force-threshold = 0");
    assert_reported(&err, &config, 17, "spray-window");
    assert_reported(&err, &config, 22, "batch-max-events");
    assert_reported(
        &err,
        &config,
        25,
        "tls.ca-file: /nonexistent/ca.pem: cannot read it",
    );
    assert_reported(&err, &config, 26, "holds no PEM CERTIFICATE block");
    assert_reported(&err, &config, 27, "no usable PEM private key");
    assert!(err.ends_with("12 errors in the configuration\n"), "{err}");
    // Said in words, not in Rust's types.
    for rust in ["u32", "usize", "u64", "invalid type"] {
        assert!(!err.contains(rust), "{rust} in {err}");
    }
}

/// A threshold of 0 used to validate and be treated as 1.
#[test]
fn validate_refuses_a_zero_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "[detect]\n\nbrute-force-threshold = 0\n");
    let out = validate(&config);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_reported(&err, &config, 3, "must be greater than zero");
}

/// A size can be written with its unit.
#[test]
fn validate_accepts_sizes_with_units() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "max-line-bytes = \"64KiB\"\n");
    let out = validate(&config);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("max-line-bytes = 65536"), "{stdout}");
}
