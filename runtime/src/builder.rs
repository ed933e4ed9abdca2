//! [`ServerBuilder`]: the fluent way to a [`Config`] and a bound [`Server`].

use std::net::SocketAddr;
use std::time::Duration;

use crate::config::Config;
use crate::error::Error;
use crate::server::Server;

impl Server {
    /// Starts configuring a server.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }
}

/// Builds a [`Server`]: `Server::builder().listen(addr).shards(2).build()?`.
#[derive(Debug, Clone, Default)]
pub struct ServerBuilder {
    config: Config,
}

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident : $ty:ty) => {
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.config.$name = value;
            self
        }
    };
}

impl ServerBuilder {
    setter!(/// Address to listen on (IPv4 or IPv6).
        listen: SocketAddr);
    setter!(/// Number of shards (default: one per online CPU).
        shards: usize);
    setter!(/// CPUs to pin shards to (default: all online, in order).
        cpus: Option<Vec<usize>>);
    setter!(/// Listen backlog (default: `net.core.somaxconn`).
        backlog: u32);
    setter!(/// Maximum connections per shard.
        max_conns_per_shard: usize);
    setter!(/// Provided buffers per shard (power of two).
        buf_ring_entries: u16);
    setter!(/// Size of each provided buffer in bytes.
        buf_size: u32);
    setter!(/// Submission-queue entries per ring.
        ring_entries: u32);
    setter!(/// Owned buffers at least this long go out with SEND_ZC.
        zero_copy_threshold: usize);
    setter!(/// Send plainly on a connection once the kernel reports copying its SEND_ZC.
        zero_copy_fallback: bool);
    setter!(/// Idle timeout (`None`: never).
        idle_timeout: Option<Duration>);
    setter!(/// Write backlog bound per connection.
        write_backlog_limit: usize);
    setter!(/// Unconsumed-input bound per connection.
        max_input_carry: usize);
    setter!(/// Graceful-shutdown drain deadline.
        drain_timeout: Duration);
    setter!(/// Whether `serve` handles SIGINT/SIGTERM.
        handle_signals: bool);
    setter!(/// Allow recv bundles when the kernel has them.
        recv_bundles: bool);
    setter!(/// Allow incremental buffer consumption when the kernel has it.
        buf_incremental: bool);
    setter!(/// Deliver connections once their first bytes arrived (`TCP_DEFER_ACCEPT`), waiting at most this long.
        defer_accept: Option<Duration>);
    setter!(/// Accept connections as direct descriptors when the kernel can (default on).
        direct_descriptors: bool);
    setter!(/// Offload worker threads (0: none).
        offload_threads: usize);
    setter!(/// Offload queue depth.
        offload_queue: usize);
    setter!(/// Cross-shard calls a shard's mailbox holds before refusing more (default 4096).
        mailbox_calls: usize);
    setter!(/// CPUs for offload workers.
        offload_cpus: Option<Vec<usize>>);
    setter!(/// Timer wheel granularity (at least 100 µs).
        timer_tick: Duration);
    setter!(/// Completions a turn waits for (see `batch_wait_us`).
        batch: usize);
    setter!(/// Longest wait (µs) for a batch.
        batch_wait_us: u32);
    setter!(/// Accept TCP connections.
        tcp: bool);
    setter!(/// Receive UDP datagrams.
        udp: bool);
    setter!(/// Datagram sends in flight per shard.
        udp_send_queue: usize);
    setter!(/// Coalesce same-size datagrams to one peer with UDP GSO.
        udp_gso: bool);
    setter!(/// Quiet time after which a shard gives its allocator's free pages back (`None`: never; default 1 s).
        release_memory_after: Option<Duration>);

    /// The configuration as it stands.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Validates the configuration and binds one listener per shard.
    pub fn build(self) -> Result<Server, Error> {
        self.config.validate()?;
        Server::bind(self.config)
    }
}
