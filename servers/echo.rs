//! `ringmaster echo`: the TCP echo server.

use std::process::ExitCode;

use clap::Args;
use ringmaster_protocols::echo::Echo;

use crate::cli::{run_server, ServerArgs};

/// Flags of `ringmaster echo`.
#[derive(Args, Debug, Clone)]
pub struct EchoArgs {
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Runs the echo server until SIGINT/SIGTERM.
pub fn run(args: &EchoArgs) -> ExitCode {
    run_server("echo", args.server.builder(), |_shard| Echo)
}
