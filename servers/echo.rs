//! `ringmaster echo`: the TCP echo server (with `--metrics-listen`, its counters over
//! HTTP: see [`crate::metrics_listen`]).

use std::process::ExitCode;

use clap::Args;
use ringmaster_protocols::echo::Echo;

use ringmaster_protocols::tls::TlsOptions;

use crate::cli::ServerArgs;
use crate::metrics_listen::MetricsArgs;
use crate::tls::{run_maybe_tls, TlsArgs};

/// Flags of `ringmaster echo`.
#[derive(Args, Debug, Clone)]
pub struct EchoArgs {
    #[command(flatten)]
    pub server: ServerArgs,

    #[command(flatten)]
    pub tls: TlsArgs,

    #[command(flatten)]
    pub metrics: MetricsArgs,
}

/// Runs the echo server until SIGINT/SIGTERM.
pub fn run(args: &EchoArgs) -> ExitCode {
    let metrics = match args.metrics.bind() {
        Ok(m) => m,
        Err(code) => return code,
    };
    run_maybe_tls(
        "echo",
        args.server.builder(),
        &args.tls,
        TlsOptions::default(),
        metrics,
        |_shard| Echo,
    )
}
