//! `cargo xtask bench [ARGS...]`: agent-core's criterion benchmarks.

use anyhow::Result;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Passed on to `cargo bench -p agent-core`, e.g. `--bench parse`; criterion's own options
    /// go after `--` (`-- --save-baseline main`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    rest: Vec<String>,
}

pub(crate) fn run(args: &Args) -> Result<()> {
    crate::run(
        crate::cargo()
            .args(["bench", "-p", "agent-core"])
            .args(&args.rest),
    )?;
    let criterion = crate::target_dir().join("criterion");
    println!("results: {}", criterion.display());
    println!(
        "report:  {}",
        criterion.join("report").join("index.html").display()
    );
    Ok(())
}
