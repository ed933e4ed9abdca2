//! Flags every server shares, and the one way every server starts, reports and stops.

use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use ringmaster_runtime::{Handler, Server, ServerBuilder};

/// Runtime flags common to every server mode.
#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// Address to listen on, e.g. 127.0.0.1:7000, [::1]:7000 or localhost:7000 (port 0 picks a free port)
    #[arg(long, value_name = "ADDR", value_parser = parse_listen)]
    pub listen: SocketAddr,

    /// Number of shards (threads, each with its own ring and listener) [default: one per online CPU, or one per --cpus entry]
    #[arg(long, value_name = "N")]
    pub shards: Option<usize>,

    /// CPUs to pin shards to, e.g. 0,1 or 0-3 (shard i gets the i-th, wrapping) [default: all online CPUs]
    #[arg(long, value_name = "LIST", value_parser = parse_cpus)]
    pub cpus: Option<CpuList>,

    /// Listen backlog (accept-queue length) per shard [default: net.core.somaxconn]
    #[arg(long, value_name = "N")]
    pub backlog: Option<u32>,

    /// Hand a connection to the server only once its first bytes arrive, waiting at most SECS for them (TCP_DEFER_ACCEPT; 0: at once)
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    pub defer_accept: u64,

    /// Connections each shard holds at once; past it, new ones are accepted and reset
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub max_conns: usize,

    /// Provided receive buffers per shard (a power of two, up to 32768)
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub buffers: u16,

    /// Size of each provided receive buffer in bytes
    #[arg(long, value_name = "BYTES", default_value_t = 16384)]
    pub buffer_size: u32,

    /// io_uring submission-queue entries per shard (the completion queue gets 4x)
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub ring_entries: u32,

    /// Owned send buffers at least this large go out with SEND_ZC
    #[arg(long, value_name = "BYTES", default_value_t = 65536)]
    pub zero_copy_threshold: usize,

    /// Keep using SEND_ZC even where the kernel reports copying the data (by default a
    /// connection whose zero-copy send was copied, e.g. on loopback, sends plainly)
    #[arg(long)]
    pub zero_copy_always: bool,

    /// Close connections idle this many seconds (0: never)
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub idle_timeout: u64,

    /// Seconds without I/O after which a shard hands its allocator's free memory back to
    /// the kernel, once per quiet spell (0: never)
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub release_memory_after: f64,

    /// Unsent bytes per connection past which reading pauses until half has drained
    #[arg(long, value_name = "BYTES", default_value_t = 4 * 1024 * 1024)]
    pub write_backlog: usize,

    /// Seconds a graceful shutdown (SIGINT/SIGTERM) waits for connections to finish
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub drain_timeout: f64,

    /// Completions a shard waits for per loop turn under load, i.e. after a turn that found at least half as many (1: wake on the first); needs Linux 6.12
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub batch: usize,

    /// Microseconds a shard waits to gather --batch completions before taking what is there
    #[arg(long, value_name = "USECS", default_value_t = 0)]
    pub batch_wait: u32,

    /// Do not use recv bundles even if the kernel has them
    #[arg(long)]
    pub no_recv_bundles: bool,

    /// Do not use incremental buffer consumption even if the kernel has it
    #[arg(long)]
    pub no_incremental_buffers: bool,

    /// Accept connections as plain file descriptors instead of io_uring direct descriptors
    #[arg(long)]
    pub plain_fds: bool,

    /// Worker threads of the offload pool for CPU-bound jobs (0: no pool) [default: one per online CPU]
    #[arg(long, value_name = "N")]
    pub offload_threads: Option<usize>,

    /// Jobs the offload queue holds (at least 1); past it new jobs are refused at once (HTTP: 503)
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub offload_queue: usize,

    /// CPUs to pin offload workers to, e.g. 1 or 2-3 (worker i gets the i-th, wrapping) [default: not pinned]
    #[arg(long, value_name = "LIST", value_parser = parse_cpus)]
    pub offload_cpus: Option<CpuList>,
}

/// A list of CPU numbers (a newtype, so clap takes `0,2-3` as one value, not many).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

/// An address, or a host name with a port resolved to its first address.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    use std::net::ToSocketAddrs;
    match s.to_socket_addrs() {
        Ok(mut addrs) => addrs
            .next()
            .ok_or_else(|| format!("'{s}' resolves to no address")),
        Err(_) => Err(format!(
            "'{s}' is not HOST:PORT (use e.g. 127.0.0.1:7000, [::1]:7000 or localhost:7000)"
        )),
    }
}

/// Parses `0,2,4-7`.
fn parse_cpus(s: &str) -> Result<CpuList, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || format!("'{part}' is not a CPU number or range (use e.g. 0,1 or 0-3)");
        match part.split_once('-') {
            Some((a, b)) => {
                let a: usize = a.trim().parse().map_err(|_| bad())?;
                let b: usize = b.trim().parse().map_err(|_| bad())?;
                if a > b || b - a > 4096 {
                    return Err(bad());
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().map_err(|_| bad())?),
        }
    }
    if out.is_empty() {
        return Err("the CPU list is empty (use e.g. 0,1 or 0-3)".into());
    }
    Ok(CpuList(out))
}

impl ServerArgs {
    /// The runtime builder these flags describe.
    pub fn builder(&self) -> ServerBuilder {
        let mut b = Server::builder()
            .listen(self.listen)
            .cpus(self.cpus.clone().map(|c| c.0))
            .max_conns_per_shard(self.max_conns)
            .buf_ring_entries(self.buffers)
            .buf_size(self.buffer_size)
            .ring_entries(self.ring_entries)
            .zero_copy_threshold(self.zero_copy_threshold)
            .zero_copy_fallback(!self.zero_copy_always)
            .idle_timeout((self.idle_timeout > 0).then(|| Duration::from_secs(self.idle_timeout)))
            .release_memory_after(
                (self.release_memory_after > 0.0)
                    .then(|| Duration::from_secs_f64(self.release_memory_after.min(86_400.0))),
            )
            .write_backlog_limit(self.write_backlog)
            .drain_timeout(Duration::from_secs_f64(
                self.drain_timeout.clamp(0.0, 3600.0),
            ))
            .batch(self.batch.max(1))
            .batch_wait_us(self.batch_wait)
            .recv_bundles(!self.no_recv_bundles)
            .buf_incremental(!self.no_incremental_buffers)
            .direct_descriptors(!self.plain_fds)
            .defer_accept((self.defer_accept > 0).then(|| Duration::from_secs(self.defer_accept)))
            .offload_queue(self.offload_queue)
            .offload_cpus(self.offload_cpus.clone().map(|c| c.0));
        if let Some(n) = self.offload_threads {
            b = b.offload_threads(n);
        }
        let shards = self
            .shards
            .or_else(|| self.cpus.as_ref().map(|c| c.0.len()));
        if let Some(n) = shards {
            b = b.shards(n);
        }
        if let Some(backlog) = self.backlog {
            b = b.backlog(backlog);
        }
        b
    }
}

/// Prints one line for a failure and returns the exit code: 2 for bad settings, 1 for
/// anything the environment refused.
pub fn fail(err: &ringmaster_runtime::Error) -> ExitCode {
    say!("ringmaster: {err}");
    match err {
        ringmaster_runtime::Error::Config(_) => ExitCode::from(2),
        _ => ExitCode::from(1),
    }
}

/// Builds, starts, announces and runs a server until it is shut down, then prints one
/// summary line per shard. `mode` names the server in the startup line. With a
/// `metrics` listener (`--metrics-listen`), `/stats` and `/metrics` are served on it
/// from a thread of its own once the shards run.
pub fn run_server<H, F>(
    mode: &str,
    builder: ServerBuilder,
    metrics: Option<TcpListener>,
    factory: F,
) -> ExitCode
where
    H: Handler,
    F: Fn(usize) -> H + Send + Sync + 'static,
{
    let server = match builder.build() {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let running = match server.start(factory) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    say!(
        "ringmaster {mode} listening on {} ({})",
        running.local_addr(),
        running.features()
    );
    if let Some(listener) = metrics {
        crate::metrics_listen::spawn::<H>(listener, running.call_handle());
    }
    match running.wait() {
        Ok(report) => {
            for (i, c) in report.shards.iter().enumerate() {
                say!("ringmaster: shard {i}: {c}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_cpus;

    #[test]
    fn listen_addresses() {
        use super::parse_listen;
        assert_eq!(parse_listen("127.0.0.1:80").unwrap().port(), 80);
        assert!(parse_listen("[::1]:0").unwrap().is_ipv6());
        assert!(parse_listen("localhost:7000").unwrap().ip().is_loopback());
        assert!(parse_listen("127.0.0.1").is_err());
        assert!(parse_listen("nonsense").is_err());
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpus("0").unwrap().0, vec![0]);
        assert_eq!(parse_cpus("0,2, 5-7").unwrap().0, vec![0, 2, 5, 6, 7]);
        assert!(parse_cpus("").is_err());
        assert!(parse_cpus("a").is_err());
        assert!(parse_cpus("3-1").is_err());
    }
}
