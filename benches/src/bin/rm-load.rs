//! `rm-load`: the load generator on its own, same flags as `ringmaster load`
//! (e.g. `rm-load tcp-echo --addr 127.0.0.1:7000 --connections 100 --duration 10`).

use clap::Parser;

/// ringmaster's load generator (the same as `ringmaster load`).
#[derive(Parser)]
#[command(name = "rm-load", version, about)]
struct Cli {
    #[command(flatten)]
    load: ringmaster_bench::LoadArgs,
}

fn main() -> std::process::ExitCode {
    ringmaster_bench::run(&Cli::parse().load)
}
