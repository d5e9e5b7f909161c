//! What the tests need beyond cargo, checked first and installed only when missing.
//!
//! Rust pieces come from rustup; system programs (for the end-to-end tests against real sshd,
//! sudo and rsyslog) from apt, and only when we are root. Without root we say what is missing
//! and carry on: the end-to-end tests skip themselves when their programs are absent.

use std::process::Command;

use anyhow::{Context, Result};

use crate::{capture, display, run};

/// Targets for the no_std builds of agent-core.
pub(crate) const RUSTUP_TARGETS: &[&str] = &["thumbv7em-none-eabihf"];

/// Components for `cargo fmt` and `cargo clippy`.
pub(crate) const RUSTUP_COMPONENTS: &[&str] = &["rustfmt", "clippy"];

/// Debian/Ubuntu packages for the end-to-end tests. Add to this list; keep it sorted.
pub(crate) const APT_PACKAGES: &[&str] = &[
    // agent/tests/audit.rs: a private auditd records a real sshd login (it falls back to
    // captured records where the kernel refuses a second auditd).
    "auditd",
    // The web console's end-to-end test (headless).
    "chromium",
    "expect",
    // tests/nats.rs: a 3-node JetStream cluster behind `[store] type = "nats"` (2.9 or later).
    "nats-server",
    "openssh-client",
    "openssh-server",
    // agent/tests/otlp.rs: a venv under target/ where pip installs opentelemetry-proto, the
    // independent decoder of what the OTLP sink sends.
    "python3-venv",
    "rsyslog",
    "sqlite3",
    "sshpass",
    "strace",
    "sudo",
    "systemd",
    "systemd-journal-remote",
    "time",
    // agent/tests/cli.rs records the progress line in a tmux pane.
    "tmux",
    "zstd",
];

/// Targets of `cargo xtask dist` on the direct path (no container engine) and of the aarch64
/// test step. Added with `rustup target add`, never by updating the toolchain.
pub(crate) const CROSS_RUSTUP_TARGETS: &[&str] = &[
    "aarch64-unknown-linux-gnu",
    "aarch64-unknown-linux-musl",
    "x86_64-unknown-linux-musl",
];

/// Debian packages for the direct cross path, the aarch64 tests under emulation and the
/// shipping checks. Keep it sorted.
/// - `gcc-aarch64-linux-gnu` (+ `libc6-dev-arm64-cross`): linker and C compiler (ring, zstd,
///   sqlite) for both aarch64 targets; for musl, rustc brings its own crt objects and libc.a.
/// - `musl-tools`: `musl-gcc` for the C parts of x86_64-unknown-linux-musl.
/// - `qemu-user`: `qemu-aarch64`, the test runner (`.cargo/config.toml`).
/// - `llvm`: `llvm-size`/`llvm-nm` for the bare-metal size report.
/// - `file`: the smoke test names the binary's architecture.
pub(crate) const CROSS_APT_PACKAGES: &[&str] = &[
    "file",
    "gcc-aarch64-linux-gnu",
    "libc6-dev-arm64-cross",
    "llvm",
    "musl-tools",
    "qemu-user",
];

pub(crate) fn ensure() -> Result<()> {
    rustup()?;
    apt()
}

/// What the cross builds and the aarch64 tests need (see [`CROSS_APT_PACKAGES`]).
pub(crate) fn ensure_cross() -> Result<()> {
    let Some(installed) = capture(Command::new("rustup").args(["target", "list", "--installed"]))
    else {
        println!("deps: rustup not found; cannot check targets {CROSS_RUSTUP_TARGETS:?}");
        return apt_packages(CROSS_APT_PACKAGES);
    };
    let missing: Vec<&str> = CROSS_RUSTUP_TARGETS
        .iter()
        .copied()
        .filter(|t| !installed.lines().any(|l| l.trim() == *t))
        .collect();
    if missing.is_empty() {
        println!(
            "deps: rustup targets {}: installed",
            CROSS_RUSTUP_TARGETS.join(" ")
        );
    } else {
        println!(
            "deps: rustup targets {}: missing, adding",
            missing.join(" ")
        );
        run(Command::new("rustup")
            .args(["target", "add"])
            .args(&missing))?;
    }
    apt_packages(CROSS_APT_PACKAGES)
}

/// `cargo deb`, installed from crates.io when missing.
pub(crate) fn ensure_cargo_deb() -> Result<()> {
    if capture(Command::new("cargo").args(["deb", "--version"])).is_some() {
        println!("deps: cargo-deb: installed");
        return Ok(());
    }
    println!("deps: cargo-deb: missing, installing from crates.io");
    run(Command::new("cargo").args(["install", "cargo-deb", "--locked"]))
}

/// What `cargo xtask test` would add to this host, found without changing anything.
#[derive(Debug, Default)]
pub(crate) struct Missing {
    /// `rustup target add` these.
    pub(crate) rustup_targets: Vec<String>,
    /// `rustup component add` these.
    pub(crate) rustup_components: Vec<String>,
    /// `apt-get install` these (after `apt-get update`), as root.
    pub(crate) apt: Vec<String>,
    /// `cargo install cargo-deb`.
    pub(crate) cargo_deb: bool,
    /// No dpkg-query: the apt packages could not be checked.
    pub(crate) apt_unknown: bool,
    /// No rustup: the targets and components could not be checked.
    pub(crate) rustup_unknown: bool,
}

/// Checks what is missing for the steps that will run: the base tools, the cross tools when
/// `cross`, cargo-deb when `deb`.
pub(crate) fn missing(cross: bool, deb: bool) -> Missing {
    let mut m = Missing::default();
    let mut targets: Vec<&str> = RUSTUP_TARGETS.to_vec();
    let mut packages: Vec<&str> = APT_PACKAGES.to_vec();
    if cross {
        targets.extend(CROSS_RUSTUP_TARGETS);
        packages.extend(CROSS_APT_PACKAGES);
    }
    match capture(Command::new("rustup").args(["target", "list", "--installed"])) {
        Some(installed) => {
            m.rustup_targets = targets
                .iter()
                .filter(|t| !installed.lines().any(|l| l.trim() == **t))
                .map(|t| (*t).to_owned())
                .collect();
            let components =
                capture(Command::new("rustup").args(["component", "list", "--installed"]))
                    .unwrap_or_default();
            m.rustup_components = RUSTUP_COMPONENTS
                .iter()
                .filter(|c| !component_installed(&components, c))
                .map(|c| (*c).to_owned())
                .collect();
        }
        None => m.rustup_unknown = true,
    }
    if capture(Command::new("dpkg-query").arg("--version")).is_some() {
        m.apt = packages
            .iter()
            .filter(|p| !dpkg_installed(p))
            .map(|p| (*p).to_owned())
            .collect();
    } else {
        m.apt_unknown = true;
    }
    m.cargo_deb = deb && capture(Command::new("cargo").args(["deb", "--version"])).is_none();
    m
}

impl Missing {
    /// One line per thing to add, or "nothing".
    pub(crate) fn describe(&self) -> String {
        let mut lines = Vec::new();
        if self.rustup_unknown {
            lines.push("rustup not found: targets and components not checked".to_owned());
        }
        if !self.rustup_targets.is_empty() {
            lines.push(format!(
                "rustup target add {}",
                self.rustup_targets.join(" ")
            ));
        }
        if !self.rustup_components.is_empty() {
            lines.push(format!(
                "rustup component add {}",
                self.rustup_components.join(" ")
            ));
        }
        if self.apt_unknown {
            lines.push("no dpkg-query: apt packages not checked".to_owned());
        }
        if !self.apt.is_empty() {
            lines.push(format!(
                "apt-get update && apt-get install -y --no-install-recommends {} (as root; \
                 this may also upgrade packages they depend on){}",
                self.apt.join(" "),
                if is_root() {
                    ""
                } else {
                    " -- not root: skipped, and the tests that need them skip"
                }
            ));
        }
        if self.cargo_deb {
            lines.push("cargo install cargo-deb --locked (into ~/.cargo/bin)".to_owned());
        }
        if lines.is_empty() {
            "nothing: every tool is installed".to_owned()
        } else {
            lines.join("\n")
        }
    }
}

/// `rustup component list --installed` names components with the host triple:
/// `clippy-x86_64-unknown-linux-gnu`.
fn component_installed(listing: &str, component: &str) -> bool {
    listing.lines().map(str::trim).any(|l| {
        l == component
            || l.strip_prefix(component)
                .is_some_and(|rest| rest.starts_with('-'))
    })
}

fn rustup() -> Result<()> {
    let Some(targets) = capture(Command::new("rustup").args(["target", "list", "--installed"]))
    else {
        println!(
            "deps: rustup not found; cannot check targets {RUSTUP_TARGETS:?} or components {RUSTUP_COMPONENTS:?}"
        );
        return Ok(());
    };
    for &target in RUSTUP_TARGETS {
        if targets.lines().any(|l| l.trim() == target) {
            println!("deps: rustup target {target}: installed");
        } else {
            println!("deps: rustup target {target}: missing, installing");
            run(Command::new("rustup").args(["target", "add", target]))?;
        }
    }
    let components = capture(Command::new("rustup").args(["component", "list", "--installed"]))
        .unwrap_or_default();
    for &component in RUSTUP_COMPONENTS {
        if component_installed(&components, component) {
            println!("deps: rustup component {component}: installed");
        } else {
            println!("deps: rustup component {component}: missing, installing");
            run(Command::new("rustup").args(["component", "add", component]))?;
        }
    }
    Ok(())
}

fn apt() -> Result<()> {
    apt_packages(APT_PACKAGES)
}

fn apt_packages(packages: &[&str]) -> Result<()> {
    if capture(Command::new("dpkg-query").arg("--version")).is_none() {
        println!(
            "deps: no dpkg-query (not Debian or Ubuntu); install these yourself: {}",
            packages.join(" ")
        );
        return Ok(());
    }
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|&pkg| {
            let installed = dpkg_installed(pkg);
            println!(
                "deps: apt package {pkg}: {}",
                if installed { "installed" } else { "missing" }
            );
            !installed
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        println!(
            "deps: not root, so not installing {}; the end-to-end tests that need them will skip. \
             To install: sudo apt-get install -y --no-install-recommends {}",
            missing.join(" "),
            missing.join(" ")
        );
        return Ok(());
    }
    println!("deps: installing {}", missing.join(" "));
    run(Command::new("apt-get")
        .arg("update")
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    let mut install = Command::new("apt-get");
    install
        .args(["install", "-y", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive");
    run(&mut install).with_context(|| format!("`{}` failed", display(&install)))
}

/// `dpkg-query -W -f='${Status}' PKG` prints `install ok installed` for an installed package
/// (and fails for one dpkg has never heard of).
fn dpkg_installed(pkg: &str) -> bool {
    capture(Command::new("dpkg-query").args(["-W", "-f=${Status}", pkg]))
        .is_some_and(|status| status.trim() == "install ok installed")
}

/// Effective uid 0, read from `/proc/self/status` (`Uid: real effective saved fs`), else
/// from `id -u`.
pub(crate) fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if let Some(uids) = status.lines().find_map(|l| l.strip_prefix("Uid:")) {
        return uids.split_whitespace().nth(1) == Some("0");
    }
    capture(Command::new("id").arg("-u")).is_some_and(|uid| uid.trim() == "0")
}
