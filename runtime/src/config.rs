//! Server configuration: every bound, with a safe default, and its validation.

use std::net::SocketAddr;
use std::time::Duration;

use crate::error::Error;

/// Everything a server needs to know before it starts. Built with [`ServerBuilder`](crate::ServerBuilder).
#[derive(Debug, Clone)]
pub struct Config {
    /// Address every shard's listener binds (port 0 picks one port for all shards).
    pub listen: SocketAddr,
    /// Number of shards (threads, rings, listeners).
    pub shards: usize,
    /// CPUs to pin shards to, in order (shard i gets `cpus[i % len]`); `None`: all online.
    pub cpus: Option<Vec<usize>>,
    /// Listen backlog (accept-queue length) of each listener.
    pub backlog: u32,
    /// Hand a connection to the shard only once its first bytes have arrived
    /// (`TCP_DEFER_ACCEPT`), waiting at most this long for them (`None`: at once). For
    /// protocols where the client speaks first (HTTP, TLS, WebSocket, echo): the accept
    /// and the first receive then complete together, one wake-up fewer per connection.
    /// A protocol that greets first must leave it off: its clients would wait.
    pub defer_accept: Option<Duration>,
    /// Connections a shard holds at once; past it, new ones are accepted and closed.
    pub max_conns_per_shard: usize,
    /// Buffers in each shard's provided-buffer ring (a power of two, at most 32768).
    pub buf_ring_entries: u16,
    /// Size of each provided buffer.
    pub buf_size: u32,
    /// Submission-queue entries per ring (the completion queue gets four times that).
    pub ring_entries: u32,
    /// Owned buffers at least this long are sent with SEND_ZC.
    pub zero_copy_threshold: usize,
    /// When the kernel reports that it copied a zero-copy send after all (loopback, a
    /// device without scatter-gather), that connection sends plainly from then on:
    /// pinned pages and a notification to wait for buy nothing there.
    pub zero_copy_fallback: bool,
    /// Close connections with no input for this long (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// Per-connection unsent bytes past which reading stops until half has drained.
    pub write_backlog_limit: usize,
    /// Most bytes a handler may leave unconsumed before the connection is closed.
    pub max_input_carry: usize,
    /// How long a graceful shutdown waits for connections to finish.
    pub drain_timeout: Duration,
    /// Whether `serve` handles SIGINT/SIGTERM itself (drain on the first, exit on the second).
    pub handle_signals: bool,
    /// Accept connections as direct descriptors (into the ring's registered file table)
    /// when the kernel can; plain descriptors otherwise, or when this is off (for a
    /// handler that passes its socket to code that needs a real descriptor, see also
    /// `Io::request_fd`).
    pub direct_descriptors: bool,
    /// Use recv bundles when the kernel has them.
    pub recv_bundles: bool,
    /// Use incremental buffer consumption when the kernel has it.
    pub buf_incremental: bool,
    /// Worker threads in the offload pool (0: no pool).
    pub offload_threads: usize,
    /// Jobs the offload queue holds before `Io::offload` refuses more.
    pub offload_queue: usize,
    /// Cross-shard calls a shard's mailbox holds before refusing more
    /// (`CallError::MailboxFull`). Shutdown, offload results, call outcomes and
    /// notifications are not counted against it and never refused.
    pub mailbox_calls: usize,
    /// CPUs to pin offload workers to (`None`: not pinned).
    pub offload_cpus: Option<Vec<usize>>,
    /// Granularity of the shard's timer wheel (timers never fire early, at most this late).
    pub timer_tick: Duration,
    /// Completions to wait for per loop turn under load (1: wake on the first). A turn
    /// waits for them only after a turn that reaped at least half as many, so a shard
    /// under light load still wakes on its first completion.
    pub batch: usize,
    /// How long (µs) a turn waits for `batch` completions before taking what is there.
    pub batch_wait_us: u32,
    /// Accept TCP connections on `listen`. With neither `tcp` nor `udp`, the server
    /// binds nothing: a client (load generator) that only makes outbound connections.
    pub tcp: bool,
    /// Receive UDP datagrams on `listen` (one SO_REUSEPORT socket per shard).
    pub udp: bool,
    /// Datagram sends a shard keeps in flight before dropping more.
    pub udp_send_queue: usize,
    /// Coalesce datagrams queued in one turn for the same peer with the same size (up to
    /// 1452 bytes, 64 per send) into one `sendmsg` with `UDP_SEGMENT` (GSO): the kernel
    /// routes and builds one packet and cuts it into the datagrams, so each costs much
    /// less to send. What the peer receives is unchanged. Needs a route whose MTU holds
    /// 1452-byte datagrams (any Ethernet or loopback route); a send the kernel refuses
    /// counts as `udp_send_errors`. Off by default.
    pub udp_gso: bool,
    /// How long a shard must go without a completion, after doing something, before it
    /// hands the allocator's free pages back to the kernel (`None`: never). Without it
    /// an idle shard keeps the memory of its last burst in its RSS, since allocators
    /// return pages only from later calls. Once per quiet spell, off the hot path.
    pub release_memory_after: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            shards: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            cpus: None,
            backlog: default_backlog(),
            defer_accept: None,
            max_conns_per_shard: 100_000,
            buf_ring_entries: 1024,
            buf_size: 16 * 1024,
            ring_entries: 1024,
            zero_copy_threshold: 64 * 1024,
            zero_copy_fallback: true,
            idle_timeout: Some(Duration::from_secs(300)),
            write_backlog_limit: 4 * 1024 * 1024,
            max_input_carry: 1024 * 1024,
            drain_timeout: Duration::from_secs(5),
            handle_signals: true,
            recv_bundles: true,
            buf_incremental: true,
            direct_descriptors: true,
            offload_threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            offload_queue: 1024,
            mailbox_calls: 4096,
            offload_cpus: None,
            timer_tick: Duration::from_millis(1),
            batch: 1,
            batch_wait_us: 0,
            tcp: true,
            udp: false,
            udp_send_queue: 4096,
            udp_gso: false,
            release_memory_after: Some(Duration::from_secs(1)),
        }
    }
}

/// The kernel's `net.core.somaxconn`, the ceiling it applies to any backlog anyway.
fn default_backlog() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4096)
}

impl Config {
    /// Checks the bounds the kernel or the runtime would reject later, with a message
    /// that says how to fix each.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::Config(m));
        if self.shards == 0 || self.shards > 1024 {
            return bad(format!(
                "--shards {} is out of range: use 1 to 1024",
                self.shards
            ));
        }
        if !self.buf_ring_entries.is_power_of_two() || self.buf_ring_entries > 32768 {
            return bad(format!(
                "buffer ring entries {} must be a power of two up to 32768",
                self.buf_ring_entries
            ));
        }
        if self.buf_size < 64 || self.buf_size > (1 << 24) {
            return bad(format!(
                "buffer size {} is out of range: use 64 bytes to 16 MiB",
                self.buf_size
            ));
        }
        if !(8..=32768).contains(&self.ring_entries) {
            return bad(format!(
                "ring entries {} out of range: use 8 to 32768",
                self.ring_entries
            ));
        }
        if self.max_conns_per_shard == 0 {
            return bad("max connections per shard must be at least 1".into());
        }
        if self.mailbox_calls == 0 {
            return bad("mailbox calls must be at least 1".into());
        }
        if self.backlog == 0 {
            return bad("backlog must be at least 1".into());
        }
        if let Some(cpus) = &self.cpus {
            if cpus.is_empty() {
                return bad("the CPU list is empty: give e.g. --cpus 0,1".into());
            }
        }
        Ok(())
    }
}
