//! `rm-plot`: benchmark results (the JSON of `scripts/bench-compare`) to SVG charts, e.g.
//! `rm-plot --input results.json --out-dir docs/img --prefix compare-`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Draws SVG charts from a benchmark results file: throughput and server CPU per request
/// relative to ringmaster, and a latency CDF per workload. Prints the files written.
#[derive(Parser)]
#[command(name = "rm-plot", version)]
struct Cli {
    /// Results file (JSON) written by scripts/bench-compare.
    #[arg(long)]
    input: PathBuf,
    /// Directory for the SVG files (created if missing).
    #[arg(long, default_value = "docs/img")]
    out_dir: PathBuf,
    /// Start of every file name, e.g. "compare-".
    #[arg(long, default_value = "")]
    prefix: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match ringmaster_bench::plot::plot_file(&cli.input, &cli.out_dir, &cli.prefix) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rm-plot: {e}");
            ExitCode::FAILURE
        }
    }
}
