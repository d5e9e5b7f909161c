//! `cargo xtask`: authtrail's own build tool, in the style of rust-analyzer's. The alias in
//! `.cargo/config.toml` runs it as `cargo run --quiet --package xtask --`. One module per
//! subcommand; every external program is started with `std::process::Command` from the
//! workspace root.

#![forbid(unsafe_code)]

mod bench;
mod demo;
mod deps;
mod detect_eval;
mod dist;
// `gen` is a reserved word in edition 2024; the file is still `src/gen.rs`.
mod r#gen;
mod link;
mod live;
mod test;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "authtrail's development tasks"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Write a realistic, deterministic auth log (loggen).
    GenAuthLog(r#gen::Args),
    /// Everything CI runs; says first what it installs here (`--no-install`: only report).
    ///
    /// Before it changes anything it lists the rustup targets, apt packages and cargo-deb it
    /// will install, and that it installs and purges the authtrail .deb on this machine; then
    /// rustfmt, clippy, the tests, the no_std builds, aarch64 under qemu, units and the .deb.
    Test(test::Args),
    /// The main job: a generated auth log with attacks -> `authtrail run` -> mTLS -> collector.
    ///
    /// Makes a throwaway CA, starts `authtrail-collector` and `authtrail run` on the log (noise,
    /// then one attack chain), waits until every event is stored and tells the attack from the
    /// stored alerts, step by step: brute-force and spray alerts grouped per attacker, the login
    /// that succeeded after failures, the privilege alert (sudo soon after it), what that user
    /// did next (`query`), every alert (`alerts`), the fleet (`stats`). Prints the web console's
    /// one-time login link.
    Demo(demo::Args),
    /// Score the edge detections on labelled scenarios of a small fleet (attacks detected,
    /// delay, false alerts per 10 000 benign login attempts).
    DetectEval(detect_eval::Args),
    /// Run agent-core's criterion benchmarks.
    Bench(bench::Args),
    /// Build release tarballs per target (cross or the direct path) into dist/, with sizes.
    Dist(dist::Args),
    /// agent-core's parse + encode footprint on bare metal (thumbv7em-none-eabihf).
    Size(dist::SizeArgs),
    /// agent-core's and agent's tests for aarch64-unknown-linux-musl under qemu-aarch64.
    TestAarch64 {
        /// Only the library tests (faster to build).
        #[arg(long)]
        lib_only: bool,
    },
    /// The aarch64-musl agent under qemu ships a batch over TLS to an x86_64 collector.
    SmokeAarch64,
    /// `systemd-analyze verify` on targets/systemd/*.service.
    UnitVerify,
    /// Build the agent's .deb, install it here, check it, purge it.
    DebCheck(dist::DebArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.task {
        Task::GenAuthLog(args) => r#gen::run(args),
        Task::Test(args) => test::run(args),
        Task::Demo(args) => demo::run(args),
        Task::DetectEval(args) => detect_eval::run(args),
        Task::Bench(args) => bench::run(args),
        Task::Dist(args) => dist::run(args),
        Task::Size(args) => dist::size(args),
        Task::TestAarch64 { lib_only } => dist::test_aarch64(*lib_only).map(|_| ()),
        Task::SmokeAarch64 => dist::smoke_aarch64(),
        Task::UnitVerify => dist::unit_verify(),
        Task::DebCheck(args) => dist::deb_check(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the parent of this crate).
pub(crate) fn project_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// Where cargo puts build output: `$CARGO_TARGET_DIR` or `<root>/target`.
pub(crate) fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => project_root().join(dir),
        None => project_root().join("target"),
    }
}

/// The folder of the `authtrail` and `authtrail-collector` binaries to run: `bin_dir` when
/// given (prebuilt binaries, e.g. debug ones in tests), else a release build of both, made now.
pub(crate) fn release_bins(bin_dir: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = bin_dir {
        return Ok(dir.to_path_buf());
    }
    println!("==> building the agent and the collector (release)");
    run(cargo().args(["build", "--release", "-p", "agent", "-p", "collector"]))?;
    Ok(target_dir().join("release"))
}

/// The cargo that runs us (`$CARGO`, set by `cargo run`), or the one on `PATH`, started in
/// the workspace root.
pub(crate) fn cargo() -> Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(program);
    cmd.current_dir(project_root());
    cmd
}

/// The command line as a user would type it (program name shortened to its file name).
pub(crate) fn display(cmd: &Command) -> String {
    let program = Path::new(cmd.get_program());
    let mut line = program
        .file_name()
        .unwrap_or(program.as_os_str())
        .to_string_lossy()
        .into_owned();
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

/// Prints and runs `cmd` with inherited stdio; an exit status other than 0 is an error.
pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    let line = display(cmd);
    println!("$ {line}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start `{line}`"))?;
    if !status.success() {
        bail!("`{line}` failed ({status})");
    }
    Ok(())
}

/// Runs `cmd` quietly and returns its stdout, or `None` if it cannot start or fails.
pub(crate) fn capture(cmd: &mut Command) -> Option<String> {
    let output = cmd.stderr(std::process::Stdio::null()).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        <Cli as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn arguments_parse() {
        let cli = Cli::try_parse_from([
            "xtask",
            "gen-auth-log",
            "--lines",
            "10",
            "--format",
            "rfc3339",
            "--hosts",
            "a,b",
        ])
        .expect("valid");
        assert!(matches!(cli.task, Task::GenAuthLog(_)));
        let cli = Cli::try_parse_from([
            "xtask",
            "bench",
            "--lines",
            "1000",
            "--no-agent",
            "--idle-secs",
            "5",
        ])
        .expect("bench options");
        assert!(matches!(cli.task, Task::Bench(_)));
        assert!(Cli::try_parse_from(["xtask", "gen-auth-log", "--format", "json"]).is_err());
    }

    #[test]
    fn commands_display_as_typed() {
        let mut cmd = Command::new("/usr/bin/cargo");
        cmd.args(["fmt", "--all"]);
        assert_eq!(display(&cmd), "cargo fmt --all");
    }

    #[test]
    fn root_is_the_workspace() {
        let manifest = std::fs::read_to_string(project_root().join("Cargo.toml")).expect("root");
        assert!(manifest.contains("[workspace]"));
    }

    #[test]
    fn apt_packages_are_sorted_and_unique() {
        assert!(deps::APT_PACKAGES.windows(2).all(|w| w[0] < w[1]));
        assert!(deps::CROSS_APT_PACKAGES.windows(2).all(|w| w[0] < w[1]));
    }
}
