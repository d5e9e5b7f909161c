//! Issue 14's end-to-end detection test: real sshd and rsyslogd (see `util::SshdRsyslog`) write
//! a real auth.log, a real `authtrail run` reads it and ships to a real `authtrail-collector
//! serve` over mTLS, and the test asks the collector for the alerts.

#![allow(
    clippy::unwrap_used,
    reason = "a test that cannot set itself up should fail loudly"
)]

use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::shipping::{Chain, kill};
use crate::util::{
    Login, Scratch, SshdRsyslog, TestUser, announce_skip, collector_bin, e2e_skip_reason,
    find_program, free_port, run_ok, ssh_command, ssh_logins, wait_for, wait_for_every,
};

/// Programs this test needs besides those of the other sshd tests.
const PROGRAMS: &[&str] = &["usermod", "sudo"];

/// The attacker's address.
const ATTACKER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 9);

/// Failed passwords before the login: the default success-after-failures threshold
/// (`[detect] success-after-failures-threshold`, 3 in 10 min), and no more (each costs the
/// 2-3 s pam_unix delay; they run in parallel).
const FAILURES: usize = 3;

/// The longest the success-after-failures alert may take from the login line's appearance in
/// auth.log to being queryable at the collector.
const ALERT_WITHIN: Duration = Duration::from_secs(2);

/// The stored alerts of one rule (`event.action` = `rule.id`).
fn alerts(collector_cfg: &Path, rule: &str) -> Vec<Value> {
    let out = run_ok(
        Command::new(collector_bin())
            .args(["query", "--config"])
            .arg(collector_cfg)
            .args(["--since", "100000d", "--action", rule, "--json"]),
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["event"]["kind"] == "alert")
        .collect()
}

/// A real password brute force from 127.0.0.9 (three wrong passwords, in parallel), then a real
/// password login from there: the `success_after_failures` alert is stored at the collector
/// within 2 s of the `Accepted password` line appearing in auth.log. In that same session the
/// user then runs a real `sudo`: the `privilege_after_login` alert is stored too.
#[test]
fn real_brute_force_then_login_then_sudo_alert_at_the_collector() {
    const TEST: &str = "real_brute_force_then_login_then_sudo_alert_at_the_collector";
    if let Some(reason) = e2e_skip_reason(&[crate::E2E_PROGRAMS, PROGRAMS].concat()) {
        announce_skip(TEST, &reason);
        return;
    }
    let started = Instant::now();
    let step = |what: &str| eprintln!("[{:6.2}s] {what}", started.elapsed().as_secs_f64());

    // Declared first so that it is dropped last: the daemons and the account go before it.
    let scratch = Scratch::new();
    let dir = scratch.path().to_path_buf();
    let log_dir = dir.join("log");
    std::fs::create_dir_all(&log_dir).unwrap();
    let log = log_dir.join("auth.log");
    std::fs::write(&log, "").unwrap();
    let chain = Chain::for_log(&scratch, log.clone());

    let pid = std::process::id();
    let user = TestUser::create(&format!("atdet{pid}"), "Det-Pw-4419!", &dir.join("home"));
    // Debian's sudoers lets group sudo run anything with the user's password.
    run_ok(
        Command::new(find_program("usermod").unwrap())
            .args(["-aG", "sudo"])
            .arg(&user.name),
    );
    let host = SshdRsyslog::start(&dir, free_port());
    let mut collector = chain.start_collector();
    let mut agent = chain.start_agent();
    step(&format!(
        "sshd (port {}), rsyslogd, collector and agent up; user {}; dir {}",
        host.port,
        user.name,
        dir.display()
    ));

    // The brute force: each connection offers one wrong password.
    let wrong = Login {
        source: ATTACKER,
        user: user.name.clone(),
        password: "wrong-password".into(),
    };
    let results = ssh_logins(host.port, &vec![wrong; FAILURES]);
    for r in &results {
        assert!(
            !r.status.success(),
            "a wrong password logged in: {}",
            r.output
        );
    }
    let failed = format!("Failed password for {} from {ATTACKER} ", user.name);
    let seen = wait_for(Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        (text.matches(&failed).count() >= FAILURES).then_some(())
    });
    assert!(
        seen.is_some(),
        "{FAILURES} failures not in auth.log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    step(&format!("{FAILURES} failed passwords from {ATTACKER}"));
    assert!(
        alerts(&chain.collector_cfg, "success_after_failures").is_empty(),
        "an alert before the login"
    );

    // The login. The remote command waits for a line on stdin, then runs sudo with the
    // password from stdin: the test lets it go on once the first alert is measured.
    let login = Login {
        source: ATTACKER,
        user: user.name.clone(),
        password: user.password.clone(),
    };
    let mut session = ssh_command(
        host.port,
        &login,
        60,
        "read go && sudo -S -p '' true && echo sudo-ok",
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let accepted = format!("Accepted password for {} from {ATTACKER} ", user.name);
    let logged = wait_for_every(Duration::from_secs(20), Duration::from_millis(5), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains(&accepted)
            .then(Instant::now)
    });
    let Some(logged) = logged else {
        let _ = session.kill();
        let out = session.wait_with_output().unwrap();
        panic!(
            "no `{accepted}` line in auth.log; ssh: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let found = wait_for_every(Duration::from_secs(20), Duration::from_millis(20), || {
        let a = alerts(&chain.collector_cfg, "success_after_failures");
        (!a.is_empty()).then(|| (logged.elapsed(), a))
    });
    let Some((delay, saf)) = found else {
        let _ = session.kill();
        let _ = session.wait();
        panic!("no success_after_failures alert at the collector within 20 s of the login line");
    };
    step(&format!(
        "success_after_failures stored {} ms after the login line",
        delay.as_millis()
    ));
    assert_eq!(saf.len(), 1, "{saf:?}");
    let a = &saf[0];
    assert_eq!(a["rule"]["id"], "success_after_failures", "{a}");
    assert_eq!(a["source"]["ip"], ATTACKER.to_string(), "{a}");
    assert_eq!(a["user"]["name"], user.name.as_str(), "{a}");
    assert!(
        a["authtrail"]["count"].as_u64() >= Some(FAILURES as u64),
        "counts the failures: {a}"
    );
    assert!(
        delay <= ALERT_WITHIN,
        "the alert took {delay:?} from the login line to the collector (limit {ALERT_WITHIN:?})"
    );

    // sudo by that user in the same session.
    {
        let mut stdin = session.stdin.take().unwrap();
        writeln!(stdin, "go\n{}", user.password).unwrap();
    }
    let out = session.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.contains("sudo-ok"),
        "login + sudo failed ({}): {said}",
        out.status
    );
    step("sudo ran in the session");
    let privilege = wait_for(Duration::from_secs(20), || {
        let a = alerts(&chain.collector_cfg, "privilege_after_login");
        (!a.is_empty()).then_some(a)
    });
    let Some(privilege) = privilege else {
        panic!(
            "no privilege_after_login alert at the collector within 20 s of sudo; auth.log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    };
    step("privilege_after_login stored");
    assert_eq!(privilege.len(), 1, "{privilege:?}");
    assert_eq!(
        privilege[0]["user"]["name"],
        user.name.as_str(),
        "{privilege:?}"
    );

    kill(&mut agent, "-TERM");
    kill(&mut collector, "-TERM");
}
