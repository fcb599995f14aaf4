//! `cargo xtask report RESULT.json...`: result files (single runs or suites, any devices) into one Markdown table
//! and plots (SVG and PNG); the rendering lives with the result types (`results::report`), which `bench` also uses.

use std::path::PathBuf;

use anyhow::Result;

use crate::results;

#[derive(clap::Args)]
pub struct Args {
    /// Result files from `cargo xtask bench --json` or `--suite`.
    #[arg(required = true)]
    results: Vec<PathBuf>,
    /// Where to write report.md and the plots (default: next to the first result file).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let out = args.out.clone().unwrap_or_else(|| args.results[0].with_extension(""));
    results::report::write(&args.results, &out)
}
