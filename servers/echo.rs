//! `ringmaster echo`: the TCP echo server.

use std::process::ExitCode;

use clap::Args;
use ringmaster_protocols::echo::Echo;

use ringmaster_protocols::tls::TlsOptions;

use crate::cli::ServerArgs;
use crate::tls::{run_maybe_tls, TlsArgs};

/// Flags of `ringmaster echo`.
#[derive(Args, Debug, Clone)]
pub struct EchoArgs {
    #[command(flatten)]
    pub server: ServerArgs,

    #[command(flatten)]
    pub tls: TlsArgs,
}

/// Runs the echo server until SIGINT/SIGTERM.
pub fn run(args: &EchoArgs) -> ExitCode {
    run_maybe_tls(
        "echo",
        args.server.builder(),
        &args.tls,
        TlsOptions::default(),
        |_shard| Echo,
    )
}
