//! `ringmaster`: the benchmark servers and the load generator in one binary.

use std::process::ExitCode;

use clap::{error::ErrorKind, Parser, Subcommand};

/// `eprintln!` for lines to the operator, minus its panic: a failed write to stderr
/// (closed, or a pipe whose reader is gone) is dropped. The thread that prints may be the
/// one that must start a drain or finish a shutdown, and `eprintln!` would kill it.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

mod cli;
mod echo;
mod http;
mod metrics;
mod metrics_listen;
mod proxy;
mod tls;
mod udp_echo;
mod ws;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Thread-per-core io_uring servers: one shard per core, each with its own ring,
/// SO_REUSEPORT listener, provided-buffer ring and timers.
#[derive(Parser, Debug)]
#[command(name = "ringmaster", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// TCP echo server: every byte received is sent back
    Echo(echo::EchoArgs),
    /// HTTP/1.1 server: keep-alive, pipelining, TechEmpower-shaped routes
    Http(http::HttpArgs),
    /// UDP echo server: every datagram goes back to its sender
    #[command(name = "udp-echo")]
    UdpEcho(udp_echo::UdpEchoArgs),
    /// WebSocket server (RFC 6455, via HTTP/1.1 upgrade): echoes every message, or with --broadcast sends it to every connection on every shard
    Ws(ws::WsArgs),
    /// Reverse proxy and load balancer: HTTP/1.1 (default) or TCP (--mode tcp) in front of --upstream servers
    Proxy(proxy::ProxyArgs),
    /// Load generator: drives a server and reports rate, latency percentiles and the server's CPU per request
    Load(ringmaster_bench::LoadArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    match &cli.command {
        Command::Echo(args) => echo::run(args),
        Command::Http(args) => http::run(args),
        Command::UdpEcho(args) => udp_echo::run(args),
        Command::Ws(args) => ws::run(args),
        Command::Proxy(args) => proxy::run(args),
        Command::Load(args) => ringmaster_bench::run(args),
    }
}

/// Help and version go out as clap renders them; a usage error becomes one line with
/// the way to fix it, and exit code 2.
fn usage_error(e: clap::Error) -> ExitCode {
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            let text = e.to_string();
            let first = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ");
            let hint = text
                .lines()
                .map(str::trim)
                .find(|l| l.starts_with("tip:"))
                .map(|t| format!("; {t}"))
                .unwrap_or_default();
            eprintln!("ringmaster: {first}{hint} (see `ringmaster --help`)");
            ExitCode::from(2)
        }
    }
}
