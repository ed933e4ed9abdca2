//! `ringmaster udp-echo`: the UDP echo server (with `--metrics-listen`, its counters
//! over HTTP: see [`crate::metrics_listen`]).

use std::process::ExitCode;

use clap::Args;
use ringmaster_protocols::udp_echo::UdpEcho;
use ringmaster_runtime::Datagrams;

use crate::cli::{run_server, ServerArgs};
use crate::metrics_listen::MetricsArgs;

/// Flags of `ringmaster udp-echo`.
#[derive(Args, Debug, Clone)]
pub struct UdpEchoArgs {
    #[command(flatten)]
    pub server: ServerArgs,

    /// Replies a shard keeps in flight; past it, replies are dropped and counted
    #[arg(long, value_name = "N", default_value_t = 4096)]
    pub send_queue: usize,

    #[command(flatten)]
    pub metrics: MetricsArgs,
}

/// Runs the UDP echo server until SIGINT/SIGTERM.
pub fn run(args: &UdpEchoArgs) -> ExitCode {
    let metrics = match args.metrics.bind() {
        Ok(m) => m,
        Err(code) => return code,
    };
    let builder = args
        .server
        .builder()
        .tcp(false)
        .udp(true)
        .udp_send_queue(args.send_queue);
    run_server("udp-echo", builder, metrics, |_shard| Datagrams(UdpEcho))
}
