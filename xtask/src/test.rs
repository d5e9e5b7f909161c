//! `cargo xtask test`: everything CI checks, in order, stopping at the first failure.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::{capture, cargo, deps, dist, run as run_cmd};

/// The bare-metal target agent-core must keep building for.
const NO_STD_TARGET: &str = "thumbv7em-none-eabihf";

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Skip rustfmt and clippy.
    #[arg(long)]
    quick: bool,
    /// Skip the end-to-end tests (sets AUTHTRAIL_SKIP_E2E=1 for them).
    #[arg(long)]
    no_e2e: bool,
    /// Skip the aarch64 steps (agent-core and agent tests under qemu-aarch64, the aarch64
    /// smoke test).
    #[arg(long)]
    no_cross: bool,
    /// Under qemu, run only the library tests of agent-core and agent (faster to build).
    #[arg(long)]
    cross_lib_only: bool,
    /// Skip the .deb install check (it installs and purges the package on this machine).
    #[arg(long)]
    no_deb: bool,
    /// Change nothing on this host: only say which tools and packages are missing, then stop.
    #[arg(long)]
    no_install: bool,
}

/// What the run will change on this host, said before anything is changed.
fn host_changes(args: &Args, missing: &deps::Missing) -> String {
    let mut text = String::from("cargo xtask test changes this host:\n");
    for line in missing.describe().lines() {
        text.push_str("  install: ");
        text.push_str(line);
        text.push('\n');
    }
    if args.no_deb {
        text.push_str("  .deb: not installed (--no-deb)\n");
    } else if deps::is_root() {
        text.push_str(
            "  .deb: builds the authtrail .deb, installs it with `dpkg -i` (user authtrail, \
             /etc/authtrail, /var/lib/authtrail, the unit) and purges it again (--no-deb to skip)\n",
        );
    } else {
        text.push_str("  .deb: built and listed, not installed (not root)\n");
    }
    text.push_str("  (--no-install: only report what is missing)");
    text
}

pub(crate) fn run(args: &Args) -> Result<()> {
    let missing = deps::missing(!args.no_cross, !args.no_deb);
    if args.no_install {
        println!("cargo xtask test --no-install: nothing changed. Missing:");
        for line in missing.describe().lines() {
            println!("  {line}");
        }
        return Ok(());
    }
    println!("{}", host_changes(args, &missing));
    let mut steps = Steps::default();
    let cargo = || {
        let mut cmd = cargo();
        if args.no_e2e {
            cmd.env("AUTHTRAIL_SKIP_E2E", "1");
        }
        cmd
    };

    steps.run("deps", deps::ensure)?;
    if !args.quick {
        steps.run("fmt", || {
            run_cmd(cargo().args(["fmt", "--all", "--", "--check"]))
        })?;
        steps.run("clippy", || {
            run_cmd(cargo().args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]))
        })?;
    }
    if capture(cargo().args(["nextest", "--version"])).is_some() {
        steps.run("tests (nextest)", || {
            run_cmd(cargo().args(["nextest", "run", "--workspace", "--no-tests=warn"]))
        })?;
        // nextest does not run doctests.
        steps.run("doctests", || {
            run_cmd(cargo().args(["test", "--workspace", "--doc"]))
        })?;
    } else {
        println!("cargo-nextest not installed; using cargo test");
        steps.run("tests", || run_cmd(cargo().args(["test", "--workspace"])))?;
    }
    let no_std = |features: &[&str]| {
        let mut cmd: Command = cargo();
        cmd.args([
            "build",
            "-p",
            "agent-core",
            "--target",
            NO_STD_TARGET,
            "--no-default-features",
        ])
        .args(features);
        run_cmd(&mut cmd)
    };
    steps.run("no_std build", || no_std(&[]))?;
    steps.run("no_std build with alloc", || {
        no_std(&["--features", "alloc"])
    })?;
    steps.run("bare-metal size report", || {
        dist::size(&dist::SizeArgs { symbols: false })
    })?;
    steps.run("systemd-analyze verify", dist::unit_verify)?;
    if !args.no_cross {
        steps.run("aarch64-musl tests under qemu", || {
            dist::test_aarch64(args.cross_lib_only).map(|_| ())
        })?;
        steps.run(
            "aarch64 smoke (qemu agent -> x86_64 collector)",
            dist::smoke_aarch64,
        )?;
    }
    if !args.no_deb {
        steps.run("deb check", || {
            dist::deb_check(&dist::DebArgs { no_install: false })
        })?;
    }

    steps.summary();
    Ok(())
}

/// Runs named steps, printing a header and the wall time of each.
#[derive(Debug, Default)]
struct Steps {
    done: Vec<(&'static str, Duration)>,
    started: Option<Instant>,
}

impl Steps {
    fn run(&mut self, name: &'static str, step: impl FnOnce() -> Result<()>) -> Result<()> {
        self.started.get_or_insert_with(Instant::now);
        println!("==> {name}");
        let started = Instant::now();
        let result = step();
        let took = started.elapsed();
        match result {
            Ok(()) => {
                println!("==> {name}: ok in {}", secs(took));
                self.done.push((name, took));
                Ok(())
            }
            Err(err) => {
                println!("==> {name}: FAILED after {}", secs(took));
                Err(err.context(format!("step `{name}` failed")))
            }
        }
    }

    fn summary(&self) {
        let total = self.started.map(|s| s.elapsed()).unwrap_or_default();
        println!(
            "==> all {} steps passed in {}",
            self.done.len(),
            secs(total)
        );
        for (name, took) in &self.done {
            println!("    {:>8}  {name}", secs(*took));
        }
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_names_every_install_and_the_deb() {
        let missing = deps::Missing {
            apt: vec!["rsyslog".into()],
            cargo_deb: true,
            ..deps::Missing::default()
        };
        let mut args = Args {
            quick: false,
            no_e2e: false,
            no_cross: false,
            cross_lib_only: false,
            no_deb: false,
            no_install: false,
        };
        let plan = host_changes(&args, &missing);
        assert!(
            plan.contains("apt-get install -y --no-install-recommends rsyslog"),
            "{plan}"
        );
        assert!(plan.contains("cargo install cargo-deb"), "{plan}");
        assert!(plan.contains(".deb"), "{plan}");
        args.no_deb = true;
        assert!(host_changes(&args, &missing).contains("not installed (--no-deb)"));
        assert_eq!(
            deps::Missing::default().describe(),
            "nothing: every tool is installed"
        );
    }
}
