//! `cargo xtask demo` tells the attack chain it stages, in order, from what the collector stored.

use std::process::Command;

use crate::util::{authtrail_bin, collector_bin, xtask_bin};

/// The address the demo's attack chain comes from (xtask/src/demo.rs writes it into the log;
/// the demo must find it in the alerts).
const ATTACKER: &str = "198.51.100.77";
/// The account it breaks into.
const VICTIM: &str = "deploy";

/// Checks that `out` tells the chain in order: the guessing alerts grouped per attacker (the
/// attacker among them), the break-in by the attacker with its reason, the privilege step (its
/// `privilege_after_login` alert), what the victim did next (`sudo` to root, a new session from
/// the attacker), then the fleet.
fn check_story(out: &str) -> Result<(), String> {
    let find = |from: usize, what: &dyn Fn(&str) -> bool, name: &str| -> Result<usize, String> {
        out.lines()
            .enumerate()
            .skip(from)
            .find(|(_, l)| what(l))
            .map(|(i, _)| i)
            .ok_or_else(|| format!("no {name} after line {from}"))
    };
    let guessing = find(
        0,
        &|l| l.starts_with("==> ") && l.contains("brute-force") && l.contains("spray"),
        "step introducing the brute-force and spray alerts",
    )?;
    let grouped = find(
        guessing,
        &|l| l.trim_start().starts_with(ATTACKER),
        "grouped row for the attacker",
    )?;
    let break_in = find(
        guessing,
        &|l| l.starts_with("==> the break-in"),
        "break-in step",
    )?;
    if grouped > break_in {
        return Err("the attacker is not among the grouped guessing alerts".into());
    }
    let line = out.lines().nth(break_in).unwrap_or_default();
    if !line.contains(ATTACKER) || !line.contains(VICTIM) {
        return Err(format!(
            "the break-in names the wrong attacker or user: {line}"
        ));
    }
    // The detections raise `privilege_after_login` for sudo soon after a login that alerted.
    let privilege = find(
        break_in,
        &|l| l.starts_with("==> the privilege step") && l.contains(VICTIM),
        "privilege step",
    )?;
    let next = find(
        break_in,
        &|l| l.starts_with("==> what ") && l.contains(VICTIM),
        "step showing what the user did next",
    )?;
    let reason = find(
        break_in,
        &|l| l.contains("success_after_failures") && l.contains(&format!("from {ATTACKER} after")),
        "success_after_failures row with its reason",
    )?;
    if reason > privilege || privilege > next {
        return Err(
            "the break-in's reason, the privilege step and what followed are out of order".into(),
        );
    }
    let privilege_row = find(
        privilege,
        &|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            cells.get(2) == Some(&"privilege_after_login") && cells.contains(&VICTIM)
        },
        "privilege_after_login alert row",
    )?;
    if privilege_row > next {
        return Err("the privilege step shows no privilege_after_login alert".into());
    }
    let fleet = find(next, &|l| l.starts_with("==> the fleet view"), "fleet step")?;
    let sudo = find(
        next,
        &|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            cells.get(2) == Some(&"sudo") && cells.contains(&VICTIM) && cells.contains(&"root")
        },
        "sudo to root by the user",
    )?;
    let session = find(
        next,
        &|l| l.contains("auth_success") && l.contains(&format!("{ATTACKER}:")),
        "login from the attacker",
    )?;
    if sudo > fleet || session > fleet {
        return Err("what the user did next comes after the fleet view".into());
    }
    Ok(())
}

#[test]
fn the_demo_tells_the_attack_chain_in_order() {
    let (agent, collector) = (authtrail_bin(), collector_bin());
    let bin_dir = collector.parent().expect("bin dir");
    assert_eq!(agent.parent(), Some(bin_dir), "both binaries in one dir");
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().join("demo");
    let out = Command::new(xtask_bin())
        .args(["demo", "--lines", "5000", "--clean", "--dir"])
        .arg(&dir)
        .arg("--bin-dir")
        .arg(bin_dir)
        .output()
        .expect("running cargo xtask demo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {}\n{text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    if let Err(e) = check_story(&text) {
        panic!("{e}\n--- demo output ---\n{text}");
    }
}

#[test]
fn the_story_check_fails_on_a_wrong_order_or_attacker() {
    let good = "\
==> password guessing: 1 brute-force and 1 password-spray alerts, grouped per attacking address
    SOURCE  BRUTE-FORCE
    198.51.100.77  1
==> the break-in: deploy logged in on web1 from attacker 198.51.100.77 after failed attempts
TIME  HOST  ACTION  OUTCOME  USER  TARGET  SOURCE  PROCESS  METHOD  REASON
t  web1  success_after_failures  success  deploy  -  198.51.100.77  -  -  deploy logged in from 198.51.100.77 after 18 failed attempts
==> the privilege step: deploy became root on web1 soon after that login (1 privilege_after_login alert(s))
t  web1  privilege_after_login  success  deploy  root  -  -  -  deploy used sudo
==> what deploy did next on web1: privileges (sudo) and new sessions
t  web1  sudo  success  deploy  root  -  sudo  -  -
t  web1  auth_success  success  deploy  -  198.51.100.77:52001  sshd  password  -
==> the fleet view: events per host
";
    assert_eq!(check_story(good), Ok(()));
    let wrong_attacker = good.replace("198.51.100.77", "203.0.113.5");
    assert!(check_story(&wrong_attacker).is_err());
    // The break-in before the guessing alerts.
    let lines: Vec<&str> = good.lines().collect();
    let reordered = [&lines[3..6], &lines[0..3], &lines[6..]]
        .concat()
        .join("\n");
    assert!(check_story(&reordered).is_err());
    // No sudo in what the user did next.
    assert!(check_story(&good.replace("  sudo  success", "  su  success")).is_err());
    // No privilege step, or one without its alert.
    let no_privilege = [&lines[..6], &lines[8..]].concat().join("\n");
    assert!(check_story(&no_privilege).is_err());
    assert!(check_story(&good.replace("privilege_after_login  success", "sudo  success")).is_err());
    // The fleet view before what the user did next.
    let fleet_first = [&lines[..8], &lines[11..], &lines[8..11]]
        .concat()
        .join("\n");
    assert!(check_story(&fleet_first).is_err());
}
