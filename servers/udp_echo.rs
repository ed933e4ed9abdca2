//! `ringmaster udp-echo`: the UDP echo server.

use std::process::ExitCode;

use clap::Args;
use ringmaster_protocols::udp_echo::UdpEcho;
use ringmaster_runtime::Datagrams;

use crate::cli::{run_server, ServerArgs};

/// Flags of `ringmaster udp-echo`.
#[derive(Args, Debug, Clone)]
pub struct UdpEchoArgs {
    #[command(flatten)]
    pub server: ServerArgs,

    /// Replies a shard keeps in flight; past it, replies are dropped and counted
    #[arg(long, value_name = "N", default_value_t = 4096)]
    pub send_queue: usize,
}

/// Runs the UDP echo server until SIGINT/SIGTERM.
pub fn run(args: &UdpEchoArgs) -> ExitCode {
    let builder = args
        .server
        .builder()
        .tcp(false)
        .udp(true)
        .udp_send_queue(args.send_queue);
    run_server("udp-echo", builder, |_shard| Datagrams(UdpEcho))
}
