//! Shipping: `cargo xtask dist` (release tarballs per target), `size` (agent-core's bare-metal
//! footprint), `smoke-aarch64` (the aarch64 agent under qemu ships to an x86_64 collector),
//! `unit-verify` (`systemd-analyze verify` on the units) and `deb-check` (build, install, check
//! and purge the .deb).
//!
//! These share the cross-build set-up, so they live in one module (rust-analyzer keeps one
//! module per subcommand; here the subcommands are one concern: getting authtrail onto
//! machines).
//!
//! Two ways to cross-build, both kept working:
//! - `cross` (cross-rs) with the committed `Cross.toml`, when a container engine answers
//!   (`docker info` or `podman info`);
//! - the direct path otherwise (here and in CI): rustup targets, Debian's
//!   `gcc-aarch64-linux-gnu` as linker and C compiler, `musl-tools` for x86_64 musl, and
//!   `qemu-user` as the runner; `.cargo/config.toml` holds the per-target settings, so a plain
//!   `cargo build --target aarch64-unknown-linux-musl` works too. Never `rustup update`.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::{capture, cargo, deps, project_root, run as run_cmd, target_dir};

/// Every target `dist` builds by default. Static musl binaries are the recommended download.
pub(crate) const TARGETS: &[&str] = &[
    "x86_64-unknown-linux-gnu",
    "x86_64-unknown-linux-musl",
    "aarch64-unknown-linux-gnu",
    "aarch64-unknown-linux-musl",
];

/// The ARM appliance target: tested under qemu in CI.
pub(crate) const AARCH64_MUSL: &str = "aarch64-unknown-linux-musl";

/// `opt-level` of the aarch64-musl release build (see [`build`]).
pub(crate) const APPLIANCE_OPT_LEVEL: &str = "s";

/// Size budget of the stripped aarch64-musl agent.
pub(crate) const AGENT_BUDGET_BYTES: u64 = 4 << 20;

/// The bare-metal target of agent-core.
const BARE_METAL: &str = "thumbv7em-none-eabihf";

/// Which build each Debian architecture's packages are made from.
const DEB_TARGETS: &[(&str, &str)] = &[
    ("x86_64-unknown-linux-gnu", "amd64"),
    ("aarch64-unknown-linux-musl", "arm64"),
];

/// The binaries in each tarball, and the packages they come from.
const BINARIES: &[(&str, &str)] = &[("authtrail", "agent"), ("authtrail-collector", "collector")];

/// Tests that cannot run under qemu-user: they start the agent binary itself, an aarch64
/// executable the kernel cannot exec without binfmt_misc ("Exec format error"), and
/// binfmt_misc is host-wide, so CI does not register it. `smoke-aarch64` covers that path by
/// starting the aarch64 agent through `qemu-aarch64`.
/// libtest `--skip` filters (substrings of test names).
pub(crate) const QEMU_SKIPPED_TESTS: &[&str] = &["sigkilled_agent_"];

/// agent integration-test files (`agent/tests/<name>.rs`) whose every test starts the binary.
pub(crate) const QEMU_SKIPPED_TEST_FILES: &[&str] = &["audit", "cli", "otlp", "run"];

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A target triple to build (repeatable). Defaults to all four Linux targets.
    #[arg(long = "target", value_name = "TRIPLE")]
    targets: Vec<String>,
    /// Use the direct path even when a container engine answers.
    #[arg(long)]
    no_cross: bool,
    /// Also print agent-core's bare-metal size report (`cargo xtask size`).
    #[arg(long)]
    bare_metal_report: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct SizeArgs {
    /// Also list the largest symbols of the parse + encode path.
    #[arg(long)]
    pub(crate) symbols: bool,
}

/// How the cross builds run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BuildPath {
    /// `cross build` in containers.
    Cross,
    /// cargo with rustup targets, Debian's cross gcc and qemu-user.
    Direct,
}

/// Picks the build path and says which and why.
pub(crate) fn pick_path(no_cross: bool) -> BuildPath {
    if no_cross {
        println!(
            "dist: --no-cross: using the direct path (rustup targets + Debian cross gcc + qemu-user)"
        );
        return BuildPath::Direct;
    }
    let engine = ["docker", "podman"]
        .into_iter()
        .find(|engine| capture(Command::new(engine).arg("info")).is_some());
    match engine {
        Some(engine) if capture(Command::new("cross").arg("--version")).is_some() => {
            println!(
                "dist: {engine} answered and cross is installed: building with cross (Cross.toml)"
            );
            BuildPath::Cross
        }
        Some(engine) => {
            println!(
                "dist: {engine} answered but cross is not installed (`cargo install cross --locked`); \
                 using the direct path (rustup targets + Debian cross gcc + qemu-user)"
            );
            BuildPath::Direct
        }
        None => {
            println!(
                "dist: no container engine answered; using the direct path (rustup targets + Debian cross gcc + qemu-user)"
            );
            BuildPath::Direct
        }
    }
}

/// The workspace version, from `[workspace.package]` in the root `Cargo.toml`.
pub(crate) fn version() -> Result<String> {
    let manifest = fs::read_to_string(project_root().join("Cargo.toml"))?;
    let mut in_package = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[workspace.package]";
        } else if in_package && let Some(rest) = line.strip_prefix("version") {
            let v = rest
                .trim_start()
                .trim_start_matches('=')
                .trim()
                .trim_matches('"');
            return Ok(v.to_owned());
        }
    }
    bail!("no version in [workspace.package] of Cargo.toml")
}

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / f64::from(1 << 20))
}

fn file_size(path: &Path) -> Result<u64> {
    Ok(fs::metadata(path)
        .with_context(|| format!("no {}", path.display()))?
        .len())
}

/// `cargo build --release` of both binaries for `target`, with cargo or cross.
fn build(path: BuildPath, target: &str) -> Result<()> {
    let mut cmd = match path {
        BuildPath::Cross => {
            let mut cmd = Command::new("cross");
            cmd.current_dir(project_root());
            cmd
        }
        BuildPath::Direct => cargo(),
    };
    cmd.args(["build", "--release", "--target", target]);
    if target == AARCH64_MUSL {
        // The appliance build has a size budget: optimise for size (a binary about a fifth
        // smaller; agent-core's parser stays well ahead of any log rate an appliance
        // produces). Servers keep the workspace's opt-level 3.
        cmd.env("CARGO_PROFILE_RELEASE_OPT_LEVEL", APPLIANCE_OPT_LEVEL);
    }
    for (_, package) in BINARIES {
        cmd.args(["-p", package]);
    }
    run_cmd(&mut cmd)
}

/// Where `generate-assets` writes each binary's completions and man pages; the .deb metadata
/// (`agent/Cargo.toml`, `collector/Cargo.toml`) takes them from here.
fn assets_dir(bin: &str) -> PathBuf {
    project_root().join("target/assets").join(bin)
}

/// Shell completions and man pages of both binaries, made from their clap definitions by a
/// host build (`<bin> generate-assets`): they do not depend on the target.
pub(crate) fn generate_assets() -> Result<()> {
    for (bin, package) in BINARIES {
        let dir = assets_dir(bin);
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        let mut cmd = cargo();
        cmd.args([
            "run",
            "-q",
            "-p",
            package,
            "--bin",
            bin,
            "--",
            "generate-assets",
        ])
        .arg(&dir);
        run_cmd(&mut cmd)
            .with_context(|| format!("generating {bin}'s completions and man pages"))?;
    }
    Ok(())
}

const TARBALL_README: &str = "\
authtrail {VERSION} for {TARGET}
====================================================

Contents
  authtrail                     the agent
  authtrail-collector           the collector
  authtrail.service             systemd unit of the agent (hardened; see the comments)
  authtrail-collector.service   systemd unit of the collector
  agent.toml, collector.toml    annotated example configurations
  completions/                  bash, zsh and fish completions of both binaries
  man/                          man pages (man -l man/authtrail.1)
  SHA256SUMS                    checksums of the files above (sha256sum -c SHA256SUMS)

Install the agent on a server (as root)
  sha256sum -c SHA256SUMS
  ./authtrail install --dry-run      # shows what it would do
  ./authtrail install                # user, directories, unit, config (never overwritten)
  $EDITOR /etc/authtrail/agent.toml  # sources, and a [sink] type = \"collector\"
  authtrail validate --config /etc/authtrail/agent.toml
  systemctl daemon-reload && systemctl enable --now authtrail

`authtrail install` creates the system user `authtrail` (groups adm and systemd-journal, to
read the logs), /etc/authtrail (0750 root:authtrail), /var/lib/authtrail (0750
authtrail:authtrail), copies itself to /usr/local/bin/authtrail, writes
/etc/systemd/system/authtrail.service and, only if there is none, /etc/authtrail/agent.toml.

The collector: copy authtrail-collector to /usr/local/bin, collector.toml to
/etc/authtrail/collector.toml, make certificates with
`authtrail-collector certs init --dir /etc/authtrail/pki --san <host name>` (then let the
service's group read pki/ and server-key.pem: chgrp authtrail-collector, chmod 0750/0640),
install authtrail-collector.service (with /usr/local/bin in ExecStart) and enable it. Debian and Ubuntu
users can take the .deb packages instead, which do all of this.
";

/// Writes `dist/authtrail-<version>-<target>.tar.gz`; returns its path.
fn package(target: &str, version: &str) -> Result<PathBuf> {
    let root = project_root();
    let name = format!("authtrail-{version}-{target}");
    let stage = target_dir().join("dist-stage").join(&name);
    if stage.exists() {
        fs::remove_dir_all(&stage)?;
    }
    fs::create_dir_all(&stage)?;
    let release = target_dir().join(target).join("release");
    let mut files: Vec<String> = Vec::new();
    for (bin, _) in BINARIES {
        fs::copy(release.join(bin), stage.join(bin))
            .with_context(|| format!("copying {bin} for {target}"))?;
        files.push((*bin).to_owned());
        for sub in ["completions", "man"] {
            fs::create_dir_all(stage.join(sub))?;
            let from = assets_dir(bin).join(sub);
            let mut names: Vec<String> = fs::read_dir(&from)
                .with_context(|| format!("reading {} (run generate_assets first)", from.display()))?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            for n in names {
                fs::copy(from.join(&n), stage.join(sub).join(&n))?;
                files.push(format!("{sub}/{n}"));
            }
        }
    }
    for (from, to) in [
        ("targets/systemd/authtrail.service", "authtrail.service"),
        (
            "targets/systemd/authtrail-collector.service",
            "authtrail-collector.service",
        ),
        ("targets/agent.toml", "agent.toml"),
        ("targets/collector.toml", "collector.toml"),
    ] {
        fs::copy(root.join(from), stage.join(to)).with_context(|| format!("copying {from}"))?;
        files.push(to.to_owned());
    }
    let readme = TARBALL_README
        .replace("{VERSION}", version)
        .replace("{TARGET}", target);
    fs::write(stage.join("README"), readme)?;
    files.push("README".to_owned());
    let sums = capture(Command::new("sha256sum").args(&files).current_dir(&stage))
        .context("sha256sum failed")?;
    fs::write(stage.join("SHA256SUMS"), sums)?;

    let dist = root.join("dist");
    fs::create_dir_all(&dist)?;
    let tarball = dist.join(format!("{name}.tar.gz"));
    // Reproducible-ish: owner root, sorted names, a fixed mtime.
    run_cmd(
        Command::new("tar")
            .args([
                "--sort=name",
                "--owner=0",
                "--group=0",
                "--numeric-owner",
                "--mtime=2026-01-01 00:00:00Z",
                "-czf",
            ])
            .arg(&tarball)
            .arg("-C")
            .arg(stage.parent().context("stage has a parent")?)
            .arg(&name),
    )?;
    Ok(tarball)
}

pub(crate) fn run(args: &Args) -> Result<()> {
    let targets: Vec<String> = if args.targets.is_empty() {
        TARGETS.iter().map(|&t| t.to_owned()).collect()
    } else {
        args.targets.clone()
    };
    for t in &targets {
        ensure!(
            TARGETS.contains(&t.as_str()),
            "unknown target {t}; expected one of {}",
            TARGETS.join(", ")
        );
    }
    let path = pick_path(args.no_cross);
    if path == BuildPath::Direct {
        deps::ensure_cross()?;
    }
    let version = version()?;
    generate_assets()?;
    let mut report = String::new();
    let mut over_budget = None;
    for target in &targets {
        let started = Instant::now();
        build(path, target)?;
        let tarball = package(target, &version)?;
        let took = started.elapsed();
        let release = target_dir().join(target).join("release");
        for (bin, _) in BINARIES {
            let size = file_size(&release.join(bin))?;
            let _ = writeln!(
                report,
                "  {target:<28} {bin:<20} {size:>10} B  {:>10}",
                mib(size)
            );
            if *bin == "authtrail" && target == AARCH64_MUSL && size >= AGENT_BUDGET_BYTES {
                over_budget = Some(size);
            }
        }
        let size = file_size(&tarball)?;
        let _ = writeln!(
            report,
            "  {target:<28} {:<20} {size:>10} B  {:>10}  (built in {:.0} s)",
            "tar.gz",
            mib(size),
            took.as_secs_f64()
        );
    }
    let dist = project_root().join("dist");
    // Debian packages from the builds above: amd64 from the glibc build (cargo-deb computes
    // its libc dependency), arm64 from the static musl build (no dependency, any arm64 Debian).
    if capture(Command::new("cargo").args(["deb", "--version"])).is_some() {
        for (target, _arch) in DEB_TARGETS {
            if !targets.iter().any(|t| t == target) {
                continue;
            }
            for (_, package) in BINARIES {
                let mut cmd = cargo();
                cmd.args(["deb", "-p", package, "--target", target])
                    .args(["--no-build", "--no-strip", "--output"])
                    .arg(&dist);
                run_cmd(&mut cmd)?;
            }
        }
    } else {
        println!("dist: cargo-deb not installed (`cargo install cargo-deb`): no .deb packages");
    }
    let mut tarballs: Vec<String> = fs::read_dir(&dist)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tar.gz") || n.ends_with(".deb"))
        .collect();
    tarballs.sort();
    let sums = capture(Command::new("sha256sum").args(&tarballs).current_dir(&dist))
        .context("sha256sum failed")?;
    fs::write(dist.join("SHA256SUMS"), sums)?;
    println!(
        "\ndist: stripped binaries and tarballs (in {}):",
        dist.display()
    );
    print!("{report}");
    if args.bare_metal_report {
        size(&SizeArgs { symbols: false })?;
    }
    match over_budget {
        Some(size) => bail!(
            "the {AARCH64_MUSL} agent is {} ({size} B), over its budget of {}",
            mib(size),
            mib(AGENT_BUDGET_BYTES)
        ),
        None => {
            if targets.iter().any(|t| t == AARCH64_MUSL) {
                println!(
                    "dist: {AARCH64_MUSL} agent within its budget of {}",
                    mib(AGENT_BUDGET_BYTES)
                );
            }
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// `cargo xtask size`: agent-core's parse + encode path on bare metal.

const PROBE_MANIFEST: &str = r#"# Generated by `cargo xtask size`; not part of the workspace.
[package]
name = "authtrail-size-probe"
version = "0.0.0"
edition = "2024"
publish = false

[workspace]

[dependencies]
agent-core = { path = "{AGENT_CORE}", default-features = false }

[profile.release]
opt-level = "{OPT}"
lto = "fat"
codegen-units = 1
panic = "abort"
debug = false
"#;

/// A firmware-shaped binary: one exported function that parses a line and encodes its event,
/// kept alive as the entry point; the linker drops everything else (`--gc-sections`).
const PROBE_MAIN: &str = r#"//! Generated by `cargo xtask size`: the parse + encode path of agent-core as a firmware would
//! link it. Not part of the workspace.
#![no_std]
#![no_main]

use agent_core::ecs::{Envelope, write_event};
use agent_core::syslog::Context;
use agent_core::{Parsed, Timestamp, parse_line};

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

/// The caller's output buffer for one event's ECS JSON.
pub const OUT_LEN: usize = 4096;

/// Writes into a slice, failing when it is full.
struct SliceWriter<'a> {
    out: &'a mut [u8; OUT_LEN],
    len: usize,
}

impl core::fmt::Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len + s.len();
        self.out
            .get_mut(self.len..end)
            .ok_or(core::fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Parses `line` (written at around `now`) and writes its event as ECS JSON into `out`;
/// returns the length, 0 when the line carries no event or `out` is too short.
#[unsafe(no_mangle)]
pub fn authtrail_parse_encode(line: &[u8], now: i64, out: &mut [u8; OUT_LEN]) -> usize {
    let ctx = Context::new(Timestamp { secs: now, nanos: 0 });
    match parse_line(line, &ctx) {
        Parsed::Event(ev) => {
            let mut w = SliceWriter { out, len: 0 };
            match write_event(&mut w, &ev, &Envelope::default()) {
                Ok(()) => w.len,
                Err(_) => 0,
            }
        }
        _ => 0,
    }
}
"#;

/// `llvm-size` or the versioned name Debian installs.
fn llvm_tool(name: &str) -> Option<String> {
    [
        name.to_owned(),
        format!("{name}-14"),
        format!("{name}-15"),
        format!("{name}-16"),
    ]
    .into_iter()
    .find(|tool| capture(Command::new(tool).arg("--version")).is_some())
}

pub(crate) fn size(args: &SizeArgs) -> Result<()> {
    let probe = target_dir().join("size-probe");
    fs::create_dir_all(probe.join("src"))?;
    fs::write(probe.join("src/main.rs"), PROBE_MAIN)?;
    let size_tool = llvm_tool("llvm-size")
        .context("llvm-size not found: apt-get install llvm (deps installs it)")?;
    let nm_tool = llvm_tool("llvm-nm").context("llvm-nm not found")?;
    println!(
        "size: agent-core's parse + encode path, linked for {BARE_METAL} (no allocator, no std)"
    );
    let mut lines = Vec::new();
    for opt in ["s", "3"] {
        let manifest = PROBE_MANIFEST
            .replace(
                "{AGENT_CORE}",
                &project_root().join("agent-core").display().to_string(),
            )
            .replace("{OPT}", opt);
        let manifest = if opt == "3" {
            manifest.replace("opt-level = \"3\"", "opt-level = 3")
        } else {
            manifest
        };
        fs::write(probe.join("Cargo.toml"), manifest)?;
        let probe_target = probe.join(format!("target-opt-{opt}"));
        let mut cmd = cargo();
        cmd.current_dir(&probe)
            .args(["rustc", "--release", "--target", BARE_METAL, "--target-dir"])
            .arg(&probe_target)
            .args(["--", "-C", "link-arg=--entry=authtrail_parse_encode"])
            // Not the workspace's lints or config: this is a standalone crate.
            .env_remove("RUSTFLAGS");
        run_cmd(&mut cmd)?;
        let elf = probe_target
            .join(BARE_METAL)
            .join("release")
            .join("authtrail-size-probe");
        let out =
            capture(Command::new(&size_tool).arg("-A").arg(&elf)).context("llvm-size failed")?;
        let section = |name: &str| -> u64 {
            out.lines()
                .find(|l| l.split_whitespace().next() == Some(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        let (text, rodata, data, bss) = (
            section(".text"),
            section(".rodata"),
            section(".data"),
            section(".bss"),
        );
        lines.push(format!(
            "  opt-level={opt:<2} flash {:>7} B (.text {text} + .rodata {rodata} + .data {data}), RAM {:>4} B static (.data + .bss {bss})",
            text + rodata + data,
            data + bss
        ));
        if args.symbols && opt == "s" {
            let nm = capture(
                Command::new(&nm_tool)
                    .args([
                        "--size-sort",
                        "--reverse-sort",
                        "--print-size",
                        "--demangle",
                    ])
                    .arg(&elf),
            )
            .unwrap_or_default();
            println!("size: largest symbols at opt-level=s:");
            for l in nm.lines().take(15) {
                println!("    {l}");
            }
        }
    }
    for l in lines {
        println!("{l}");
    }
    println!(
        "size: flash is what the firmware links for parse_line + the ECS writer; the caller \
         provides the output buffer (4096 bytes)."
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// `cargo xtask smoke-aarch64`

/// Integration-test targets (`<package>/tests/<name>.rs`) of agent-core and agent that run
/// under qemu: all but [`QEMU_SKIPPED_TEST_FILES`] (agent's).
fn qemu_test_targets() -> Result<Vec<String>> {
    let mut names = Vec::new();
    for package in ["agent-core", "agent"] {
        for e in fs::read_dir(project_root().join(package).join("tests"))? {
            let name = e?.file_name().to_string_lossy().into_owned();
            if let Some(stem) = name.strip_suffix(".rs")
                && !(package == "agent" && QEMU_SKIPPED_TEST_FILES.contains(&stem))
            {
                names.push(stem.to_owned());
            }
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// The aarch64 test suites under qemu (CI step): agent-core's and agent's, all but the tests
/// that exec the agent's binary. One cargo invocation, so both packages share one build.
/// Returns the wall time.
pub(crate) fn test_aarch64(lib_only: bool) -> Result<Duration> {
    deps::ensure_cross()?;
    let started = Instant::now();
    let mut cmd = cargo();
    cmd.args(["test", "--no-fail-fast", "-p", "agent-core", "-p", "agent"])
        .args(["--target", AARCH64_MUSL, "--lib", "--bins"]);
    if !lib_only {
        for t in qemu_test_targets()? {
            cmd.args(["--test", &t]);
        }
    }
    cmd.arg("--");
    for t in QEMU_SKIPPED_TESTS {
        cmd.args(["--skip", t]);
    }
    println!(
        "aarch64: not run under qemu (they exec the aarch64 binary): agent/tests/{{{}}}.rs, {}*",
        QEMU_SKIPPED_TEST_FILES.join(","),
        QEMU_SKIPPED_TESTS.join("*, ")
    );
    run_cmd(&mut cmd)?;
    let took = started.elapsed();
    println!(
        "aarch64: tests under qemu-aarch64 passed in {:.1} s (build included)",
        took.as_secs_f64()
    );
    Ok(took)
}

/// A scratch directory under `target/xtask-tmp/`, removed when dropped (xtask keeps its
/// dependencies few, so no tempfile crate).
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(name: &str) -> Result<Self> {
        let dir = target_dir()
            .join("xtask-tmp")
            .join(format!("{name}-{}", std::process::id()));
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Kills the child when dropped (tests must not leave servers behind).
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Owner-only permissions: the agent and the collector refuse group/other-writable configs and
/// other-readable keys.
fn private(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod 600 {}", path.display()))
}

/// The aarch64 agent under qemu tails a file and ships a batch over TLS to an x86_64 collector
/// on loopback, which stores it.
pub(crate) fn smoke_aarch64() -> Result<()> {
    deps::ensure_cross()?;
    let started = Instant::now();
    run_cmd(cargo().args(["build", "-p", "collector"]))?;
    run_cmd(cargo().args(["build", "-p", "agent", "--target", AARCH64_MUSL]))?;
    let built = started.elapsed();
    let collector_bin = target_dir().join("debug/authtrail-collector");
    let agent_bin = target_dir().join(AARCH64_MUSL).join("debug/authtrail");
    let machine = capture(Command::new("file").arg("-b").arg(&agent_bin)).unwrap_or_default();
    println!("smoke: agent binary: {}", machine.trim());

    let dir = ScratchDir::new("smoke")?;
    let d = dir.path();
    let pki = d.join("pki");
    run_cmd(
        Command::new(&collector_bin)
            .args(["certs", "init", "--dir"])
            .arg(&pki)
            .args(["--san", "localhost,127.0.0.1"]),
    )?;
    let agent_id = "0b6e2a52-7d1c-4c55-9a43-6c1f5e0d9a11";
    let token = "smoke-test-token-0123456789abcdef";
    let tokens = d.join("tokens");
    fs::write(&tokens, format!("{agent_id} {token}\n"))?;
    private(&tokens)?;
    let collector_toml = d.join("collector.toml");
    fs::write(
        &collector_toml,
        format!(
            "listen = \"127.0.0.1:0\"\ndata-dir = {data:?}\n\
             [tls]\ncert-file = {cert:?}\nkey-file = {key:?}\n\
             [auth]\ntokens-file = {tokens:?}\nrequire = \"token\"\n",
            data = d.join("data").display().to_string(),
            cert = pki.join("server.pem").display().to_string(),
            key = pki.join("server-key.pem").display().to_string(),
            tokens = tokens.display().to_string(),
        ),
    )?;
    private(&collector_toml)?;
    let mut collector = Reaped(
        Command::new(&collector_bin)
            .args(["serve", "--config"])
            .arg(&collector_toml)
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the collector")?,
    );
    let stdout = collector.0.stdout.take().context("collector stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .with_context(|| format!("the collector said {line:?}, not `listening on ADDR`"))?
        .to_owned();
    println!("smoke: x86_64 collector listening on {addr}");

    let state = d.join("state");
    fs::create_dir_all(&state)?;
    fs::write(state.join("agent-id"), format!("{agent_id}\n"))?;
    let token_file = d.join("token");
    fs::write(&token_file, format!("{token}\n"))?;
    private(&token_file)?;
    let log = d.join("auth.log");
    let lines = [
        "Nov 28 08:06:37 appliance sshd[1201]: Failed password for root from 192.0.2.7 port 50122 ssh2",
        "Nov 28 08:06:41 appliance sshd[1201]: Failed password for root from 192.0.2.7 port 50122 ssh2",
        "Nov 28 08:07:02 appliance sshd[1230]: Accepted publickey for ops from 192.0.2.8 port 50200 ssh2: ED25519 SHA256:abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    ];
    fs::write(&log, lines.join("\n") + "\n")?;
    let agent_toml = d.join("agent.toml");
    fs::write(
        &agent_toml,
        format!(
            "state-dir = {state:?}\ntimezone = \"UTC\"\n\
             [[source]]\ntype = \"file\"\nname = \"auth\"\npaths = [{log:?}]\nread-from = \"beginning\"\n\
             [sink]\ntype = \"collector\"\nurl = \"https://{addr}\"\nbatch-max-age = \"200ms\"\n\
             [sink.tls]\nca-file = {ca:?}\n\
             [sink.auth]\ntoken-file = {token:?}\n",
            state = state.display().to_string(),
            log = log.display().to_string(),
            ca = pki.join("ca.pem").display().to_string(),
            token = token_file.display().to_string(),
        ),
    )?;
    private(&agent_toml)?;
    let ran = Instant::now();
    let mut agent = Reaped(
        Command::new("qemu-aarch64")
            .arg(&agent_bin)
            .args(["--config"])
            .arg(&agent_toml)
            .arg("run")
            .spawn()
            .context("starting the aarch64 agent under qemu-aarch64")?,
    );
    let db = d.join("data/authtrail.db");
    let deadline = Instant::now() + Duration::from_secs(60);
    let stored = loop {
        let out = if db.exists() {
            capture(
                Command::new(&collector_bin)
                    .args(["query", "--json", "--db"])
                    .arg(&db),
            )
            .unwrap_or_default()
        } else {
            String::new()
        };
        let events: Vec<&str> = out
            .lines()
            .filter(|l| l.contains("\"auth_failure\"") || l.contains("\"auth_success\""))
            .collect();
        if events.len() >= lines.len() {
            break out;
        }
        if let Some(status) = agent.0.try_wait()? {
            bail!("the aarch64 agent exited early ({status})");
        }
        if Instant::now() > deadline {
            bail!(
                "after 60 s the collector holds {} of {} events:\n{out}",
                events.len(),
                lines.len()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let shipped = ran.elapsed();
    ensure!(
        stored.contains(agent_id) && stored.contains("192.0.2.8") && stored.contains("\"ops\""),
        "the stored events do not carry the agent id and fields:\n{stored}"
    );
    // A graceful stop under qemu: SIGTERM reaches the emulated process.
    let pid = agent.0.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let stop_deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = agent.0.try_wait()? {
            break Some(status);
        }
        if Instant::now() > stop_deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    ensure!(
        status.is_some_and(|s| s.success()),
        "the aarch64 agent did not stop cleanly on SIGTERM ({status:?})"
    );
    drop(collector);
    println!(
        "smoke: ok: {} events from the aarch64 agent (qemu) stored by the x86_64 collector over TLS; \
         builds {:.1} s, first run to stored {:.1} s, total {:.1} s",
        lines.len(),
        built.as_secs_f64(),
        shipped.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// `cargo xtask unit-verify`

/// `systemd-analyze verify` on both units. It needs the `ExecStart=` binaries to exist and be
/// executable, and the units they refer to: the units are copied into a temp root with their
/// binaries (placeholders) at the same paths and the host's system units, and verified with
/// `--root`. No running systemd is needed.
pub(crate) fn unit_verify() -> Result<()> {
    let root = project_root();
    let tmp = ScratchDir::new("unit-verify")?;
    let r = tmp.path();
    let units = r.join("etc/systemd/system");
    fs::create_dir_all(&units)?;
    fs::create_dir_all(r.join("usr/bin"))?;
    fs::create_dir_all(r.join("bin"))?;
    for bin in [
        "usr/bin/authtrail",
        "usr/bin/authtrail-collector",
        "bin/kill",
    ] {
        let p = r.join(bin);
        fs::write(&p, "#!/bin/sh\nexit 0\n")?;
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755))?;
    }
    // The units ours depend on (sysinit.target, network-online.target...) must exist in
    // the root too: the host's.
    fs::create_dir_all(r.join("usr/lib/systemd"))?;
    run_cmd(
        Command::new("cp")
            .args(["-a", "/usr/lib/systemd/system"])
            .arg(r.join("usr/lib/systemd/system")),
    )
    .context("copying the host's units (is systemd installed?)")?;
    let mut paths = Vec::new();
    for unit in ["authtrail.service", "authtrail-collector.service"] {
        let dest = units.join(unit);
        fs::copy(root.join("targets/systemd").join(unit), &dest)?;
        paths.push(dest);
    }
    let mut cmd = Command::new("systemd-analyze");
    cmd.arg("verify")
        .arg(format!("--root={}", r.display()))
        .arg("--man=no")
        .args(&paths);
    let line = crate::display(&cmd);
    println!("$ {line}");
    let out = cmd
        .output()
        .context("systemd-analyze not found: apt-get install systemd")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Lines about other units on the host (or the absence of a running systemd) are not ours.
    let ours: Vec<&str> = stderr.lines().filter(|l| l.contains("authtrail")).collect();
    for l in stderr.lines() {
        println!("  {l}");
    }
    ensure!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify found problems in the units ({}):\n{}",
        out.status,
        ours.join("\n")
    );
    println!("unit-verify: both units pass systemd-analyze verify");
    // `security --offline=true` (systemd 250+) scores a unit file without a running systemd.
    for unit in &paths {
        let out = capture(
            Command::new("systemd-analyze")
                .args(["security", "--offline=true", "--no-pager"])
                .arg(format!("--root={}", r.display()))
                .arg(unit),
        )
        .unwrap_or_default();
        let name = unit.file_name().unwrap_or_default().to_string_lossy();
        let Some(overall) = out.lines().find(|l| l.contains("Overall exposure level")) else {
            println!("unit-verify: systemd-analyze security --offline is not available here");
            break;
        };
        println!("unit-verify: {name}: exposure settings not taken:");
        for l in out.lines().filter(|l| l.contains('✗')) {
            println!("    {}", l.split_whitespace().collect::<Vec<_>>().join(" "));
        }
        println!("unit-verify: {}", overall.trim_start_matches('→').trim());
        let score: f64 = overall
            .split(':')
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(10.0);
        ensure!(
            score <= MAX_EXPOSURE,
            "{name}: exposure {score} is above {MAX_EXPOSURE}: a hardening directive was lost"
        );
    }
    Ok(())
}

/// The highest `systemd-analyze security` exposure the units may reach (both are at 1.3).
const MAX_EXPOSURE: f64 = 2.0;

// ---------------------------------------------------------------------------------------------
// `cargo xtask deb-check`

#[derive(Debug, clap::Args)]
pub(crate) struct DebArgs {
    /// Build only; do not install it on this machine.
    #[arg(long)]
    pub(crate) no_install: bool,
}

fn dpkg_status(pkg: &str) -> Option<String> {
    capture(Command::new("dpkg-query").args(["-W", "-f=${Status}", pkg]))
}

fn mode_owner(path: &str) -> Result<String> {
    capture(Command::new("stat").args(["-c", "%a %U:%G", path]))
        .map(|s| s.trim().to_owned())
        .with_context(|| format!("{path} is missing"))
}

/// Builds the amd64 .deb of the agent with cargo-deb, installs it here with `dpkg -i`, checks
/// files, permissions, the user and `authtrail validate`, then purges it and checks what is
/// left.
pub(crate) fn deb_check(args: &DebArgs) -> Result<()> {
    deps::ensure_cargo_deb()?;
    generate_assets()?;
    let started = Instant::now();
    let out = capture(
        cargo()
            .args(["deb", "-p", "agent", "--no-strip"])
            .stderr(Stdio::inherit()),
    );
    // cargo-deb prints the package path on stdout.
    let deb = out
        .as_deref()
        .and_then(|o| o.lines().rev().find(|l| l.trim().ends_with(".deb")))
        .map(|l| PathBuf::from(l.trim()))
        .context("cargo deb -p agent failed (run it by hand to see why)")?;
    println!(
        "deb-check: built {} ({} B) in {:.0} s",
        deb.display(),
        file_size(&deb)?,
        started.elapsed().as_secs_f64()
    );
    run_cmd(Command::new("dpkg-deb").arg("--info").arg(&deb))?;
    let contents = capture(Command::new("dpkg-deb").arg("--contents").arg(&deb))
        .context("dpkg-deb --contents failed")?;
    print!("{contents}");
    for shipped in [
        "./usr/share/bash-completion/completions/authtrail",
        "./usr/share/zsh/vendor-completions/_authtrail",
        "./usr/share/fish/vendor_completions.d/authtrail.fish",
        "./usr/share/man/man1/authtrail.1",
    ] {
        ensure!(
            contents.contains(shipped),
            "the .deb lacks {shipped} (completions and man pages)"
        );
    }
    if args.no_install {
        return Ok(());
    }
    if !deps::is_root() {
        println!("deb-check: not root: skipping dpkg -i / --purge");
        return Ok(());
    }
    if dpkg_status("authtrail").is_some_and(|s| s.contains("installed")) {
        bail!("authtrail is already installed here; `dpkg --purge authtrail` first");
    }
    let had_user = capture(Command::new("getent").args(["passwd", "authtrail"])).is_some();
    let result = (|| -> Result<()> {
        run_cmd(Command::new("dpkg").arg("-i").arg(&deb))?;
        let user = capture(Command::new("id").arg("authtrail")).context("no user authtrail")?;
        println!("deb-check: {}", user.trim());
        ensure!(
            user.contains("(adm)"),
            "authtrail is not in group adm: {user}"
        );
        for (path, want) in [
            ("/usr/bin/authtrail", "755 root:root"),
            ("/etc/authtrail", "750 root:authtrail"),
            ("/etc/authtrail/agent.toml", "640 root:authtrail"),
            ("/var/lib/authtrail", "750 authtrail:authtrail"),
            ("/usr/lib/systemd/system/authtrail.service", "644 root:root"),
        ] {
            let got = mode_owner(path)?;
            println!("deb-check: {path}: {got}");
            ensure!(got == want, "{path} is {got}, expected {want}");
        }
        let conffiles =
            fs::read_to_string("/var/lib/dpkg/info/authtrail.conffiles").context("no conffiles")?;
        ensure!(
            conffiles.lines().any(|l| l == "/etc/authtrail/agent.toml"),
            "agent.toml is not a conffile: {conffiles}"
        );
        let enabled = Path::new("/etc/systemd/system/multi-user.target.wants/authtrail.service");
        ensure!(
            enabled.exists() || fs::symlink_metadata(enabled).is_ok(),
            "the unit is not enabled ({} missing)",
            enabled.display()
        );
        println!("deb-check: unit enabled: {}", enabled.display());
        // As the service would run it: the authtrail user reads the config.
        run_cmd(Command::new("runuser").args([
            "-u",
            "authtrail",
            "--",
            "/usr/bin/authtrail",
            "validate",
            "--config",
            "/etc/authtrail/agent.toml",
        ]))?;
        Ok(())
    })();
    run_cmd(Command::new("dpkg").args(["--purge", "authtrail"]))?;
    result?;
    for gone in [
        "/usr/bin/authtrail",
        "/etc/authtrail/agent.toml",
        "/etc/authtrail",
        "/var/lib/authtrail",
        "/usr/lib/systemd/system/authtrail.service",
        "/etc/systemd/system/multi-user.target.wants/authtrail.service",
    ] {
        ensure!(
            fs::symlink_metadata(gone).is_err(),
            "{gone} is still there after dpkg --purge"
        );
    }
    ensure!(
        dpkg_status("authtrail").is_none_or(|s| !s.contains("installed")),
        "dpkg still lists authtrail"
    );
    let user_left = capture(Command::new("getent").args(["passwd", "authtrail"])).is_some();
    println!(
        "deb-check: purged: files, config, state and unit are gone; the system user {} \
         (kept on purge on purpose: see targets/deb/agent/postrm)",
        if user_left { "remains" } else { "is gone" }
    );
    if !had_user && user_left {
        // This is CI's own machine: leave it as we found it.
        run_cmd(Command::new("userdel").arg("authtrail"))?;
    }
    println!("deb-check: ok in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_the_workspace_version() {
        let v = version().expect("version");
        assert!(v.split('.').count() == 3, "{v}");
    }

    #[test]
    fn targets_have_a_config_toml_section() {
        let config =
            fs::read_to_string(project_root().join(".cargo/config.toml")).expect("config.toml");
        for t in TARGETS.iter().filter(|t| t.starts_with("aarch64")) {
            assert!(config.contains(&format!("[target.{t}]")), "{t}");
        }
    }

    /// A new test file that execs the agent's binary fails under qemu with "Exec format
    /// error": list it (or its tests) above.
    #[test]
    fn tests_that_exec_the_binary_are_skipped_under_qemu() {
        for name in qemu_test_targets().expect("tests/") {
            let path = project_root().join(format!("agent/tests/{name}.rs"));
            let Ok(text) = fs::read_to_string(&path) else {
                continue; // agent-core's: no binary to exec
            };
            if text.contains("CARGO_BIN_EXE") {
                assert!(
                    QEMU_SKIPPED_TESTS
                        .iter()
                        .any(|t| text.contains(&format!("fn {t}"))),
                    "{} execs the agent binary: add it to QEMU_SKIPPED_TEST_FILES or its tests \
                     to QEMU_SKIPPED_TESTS",
                    path.display()
                );
            }
        }
    }

    #[test]
    fn probe_manifest_points_at_agent_core() {
        assert!(PROBE_MANIFEST.contains("{AGENT_CORE}"));
        assert!(PROBE_MAIN.contains("#![no_std]"));
    }
}
