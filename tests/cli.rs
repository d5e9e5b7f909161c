//! The command lines of both binaries as an operator meets them: every error is one line per
//! cause, each cause said once, no Rust `Debug` text; both binaries exit 0 (ok), 1 (runtime
//! error) or 2 (usage or configuration error), as the README's table says.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{authtrail_bin, collector_bin, write_private};

/// Runs `bin args` in `dir`; (exit code, stdout, stderr).
fn run(bin: &Path, dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin)
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What every error output must be: no cause twice, no `Debug` braces, one `(os error N)`.
fn assert_plain(what: &str, stderr: &str) {
    assert!(!stderr.trim().is_empty(), "{what}: no message");
    assert!(!stderr.contains('{'), "{what}: Debug output: {stderr}");
    assert!(
        stderr.matches("(os error").count() <= 1,
        "{what}: an OS error said twice: {stderr}"
    );
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for part in stderr.split(['\n', ';']).flat_map(|l| l.split(": ")) {
        let part = part.trim().trim_start_matches("caused by").trim();
        if part.len() >= 12 {
            *seen.entry(part).or_default() += 1;
        }
    }
    let repeated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.is_empty(),
        "{what}: {repeated:?} repeated in: {stderr}"
    );
}

/// A collector store made the way operators make one: `certs init`, then `serve` once.
fn collector_with_store(dir: &Path) -> std::path::PathBuf {
    let collector = collector_bin();
    let (code, _, err) = run(&collector, dir, &["certs", "init", "--dir", "pki"]);
    assert_eq!(code, 0, "{err}");
    let config = dir.join("collector.toml");
    let d = dir.display();
    write_private(
        &config,
        &format!(
            "listen = \"127.0.0.1:0\"\ndata-dir = \"{d}/data\"\n[tls]\ncert-file = \
             \"{d}/pki/server.pem\"\nkey-file = \"{d}/pki/server-key.pem\"\nclient-ca-file = \
             \"{d}/pki/ca.pem\"\n[auth]\nrequire = \"mtls\"\n"
        ),
    );
    let mut serve = Command::new(&collector)
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let mut line = String::new();
    let stdout = serve.stdout.take().expect("piped");
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("readiness line");
    assert!(line.starts_with("listening on"), "{line}");
    let _ = serve.kill();
    let _ = serve.wait();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !dir.join("data/authtrail.db").exists() {
        assert!(Instant::now() < deadline, "no store made");
        std::thread::sleep(Duration::from_millis(20));
    }
    config
}

#[test]
fn errors_say_each_cause_once_and_exit_codes_are_shared() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path();
    let config = collector_with_store(dir);
    let config = config.to_str().expect("UTF-8 path");
    fs::write(dir.join("agent-bad.toml"), "state-dir = 5\n").expect("write");
    let (agent, collector) = (authtrail_bin(), collector_bin());
    let cases: &[(&Path, &[&str], i32, &str)] = &[
        // Runtime errors: 1.
        (
            &collector,
            &["certs", "init", "--dir", "pki"],
            1,
            "already exists",
        ),
        (
            &collector,
            &["query", "--db", "nope.db"],
            1,
            "no store at nope.db",
        ),
        (&collector, &["stats", "--db", "nope.db"], 1, "no store"),
        (
            &collector,
            &["certs", "issue-agent", "--dir", "nodir"],
            1,
            "certs init",
        ),
        (&collector, &["certs", "pin", "nope.pem"], 1, "nope.pem"),
        (&agent, &["parse", "nope.log"], 1, "nope.log"),
        // Usage and configuration errors: 2.
        (
            &collector,
            &["query", "--config", "nope.toml"],
            2,
            "nope.toml",
        ),
        (
            &collector,
            &["serve", "--config", "nope.toml"],
            2,
            "nope.toml",
        ),
        (
            &collector,
            &["validate", "--config", "nope.toml"],
            2,
            "nope.toml",
        ),
        (
            &collector,
            &["query", "--since", "bogus", "--db", "x"],
            2,
            "(90s, 30m, 2h, 7d)",
        ),
        (
            &collector,
            &["stats", "--window", "bogus", "--db", "x"],
            2,
            "like 90s",
        ),
        (
            &collector,
            &["query", "--action", "auth_sucess", "--config", config],
            2,
            "did you mean `auth_success`?",
        ),
        (&collector, &["--bogus"], 2, "--bogus"),
        (&agent, &["status", "--config", "nope.toml"], 2, "nope.toml"),
        (&agent, &["run", "--config", "nope.toml"], 2, "nope.toml"),
        (
            &agent,
            &["validate", "--config", "nope.toml"],
            2,
            "nope.toml",
        ),
        (
            &agent,
            &["run", "--config", "agent-bad.toml"],
            2,
            "agent-bad.toml",
        ),
        (&agent, &["--bogus"], 2, "--bogus"),
    ];
    for (bin, args, code, says) in cases {
        let what = format!("{} {}", bin.display(), args.join(" "));
        let (got, _, err) = run(bin, dir, args);
        assert_eq!(got, *code, "{what}: exit code; stderr: {err}");
        assert!(err.contains(says), "{what}: does not say {says:?}: {err}");
        assert_plain(&what, &err);
    }
    // The filters in the config's words succeed.
    for since in ["90s", "2h", "7d", "2026-12-01T00:00:00Z"] {
        let (code, _, err) = run(
            &collector,
            dir,
            &["query", "--since", since, "--config", config],
        );
        assert_eq!(code, 0, "--since {since}: {err}");
    }
    let (code, out, err) = run(&collector, dir, &["stats", "--json", "--config", config]);
    assert_eq!(code, 0, "{err}");
    let stats: serde_json::Value = serde_json::from_str(&out).expect("stats --json is JSON");
    assert!(stats["agents"].is_array(), "{stats}");
}

#[test]
fn completions_and_man_pages_generate_where_the_packages_take_them() {
    let scratch = tempfile::tempdir().expect("tempdir");
    for (bin, manifest) in [
        (authtrail_bin(), "agent/Cargo.toml"),
        (collector_bin(), "collector/Cargo.toml"),
    ] {
        let name = bin
            .file_name()
            .and_then(|n| n.to_str())
            .expect("binary name")
            .to_owned();
        // Laid out as in target/assets/<bin>, where the .deb metadata takes them from.
        let dir = scratch.path().join("target/assets").join(&name);
        let (code, _, err) = run(
            &bin,
            scratch.path(),
            &["generate-assets", dir.to_str().expect("UTF-8")],
        );
        assert_eq!(code, 0, "{name} generate-assets: {err}");
        for file in [
            format!("completions/{name}.bash"),
            format!("completions/_{name}"),
            format!("completions/{name}.fish"),
            format!("man/{name}.1"),
        ] {
            let text = fs::read_to_string(dir.join(&file)).expect(&file);
            assert!(text.contains(&name), "{file} does not name {name}");
        }
        let bash = fs::read_to_string(dir.join(format!("completions/{name}.bash"))).expect("bash");
        assert!(bash.contains("--config"), "bash completion lacks --config");
        let man = fs::read_to_string(dir.join(format!("man/{name}.1"))).expect("man");
        assert!(
            man.starts_with(".ie") || man.contains(".TH"),
            "not roff: {man}"
        );
        assert!(
            !dir.join(format!("man/{name}-help.1")).exists(),
            "a page for the help subcommand"
        );
        // Every generated asset the .deb metadata names exists.
        let meta =
            fs::read_to_string(crate::util::workspace_root().join(manifest)).expect("manifest");
        for line in meta.lines().filter(|l| l.contains("\"../target/assets/")) {
            let source = line
                .split('"')
                .nth(1)
                .expect("a quoted source path")
                .trim_start_matches("../");
            let path = scratch.path().join(source);
            if let Some(dir) = source.strip_suffix("/*.1") {
                let pages = fs::read_dir(scratch.path().join(dir))
                    .expect("man dir")
                    .count();
                assert!(pages > 3, "{source}: {pages} pages");
            } else {
                assert!(
                    path.exists(),
                    "{manifest} ships {source}, which is not generated"
                );
            }
        }
    }
}
