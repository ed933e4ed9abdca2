//! Per-shard counters: plain integers owned by the shard thread, never shared or locked.

use std::fmt;

/// What a shard has seen since it started. Read through `Io::counters` or in the
/// shutdown summary.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    /// Connections accepted and handed to the handler.
    pub accepted: u64,
    /// Outbound connections established.
    pub connected: u64,
    /// Outbound connections that failed.
    pub connect_errors: u64,
    /// Connections closed (every cause).
    pub closed: u64,
    /// Connections accepted and closed at once because the shard was at its limit.
    pub refused: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Receive completions carrying data.
    pub recv_completions: u64,
    /// Send submissions (plain and zero-copy).
    pub sends: u64,
    /// Sends that went out with SEND_ZC.
    pub zc_sends: u64,
    /// Zero-copy sends the kernel reported it copied; their connection sends plainly
    /// from then on.
    pub zc_copied: u64,
    /// Sends the kernel took only part of, resumed where they stopped.
    pub short_sends: u64,
    /// Receives that found the buffer ring empty (recovered by re-arming).
    pub enobufs: u64,
    /// Accepts that failed for lack of file descriptors (EMFILE/ENFILE), or of a free
    /// slot in the ring's registered file table (ENFILE) with direct descriptors.
    pub emfile: u64,
    /// Other accept failures (e.g. ECONNABORTED).
    pub accept_errors: u64,
    /// Sockets the shard closed, plain or direct: each accepted, refused or outbound
    /// one, once it is gone. Below their number after every connection has gone, a
    /// socket (or a registered-table slot) leaked.
    pub sockets_closed: u64,
    /// Closes, shutdowns and socket options through the ring that failed.
    pub close_errors: u64,
    /// Completion-queue overflows reported by the kernel.
    pub cq_overflow: u64,
    /// Connections closed by the idle timeout.
    pub idle_closed: u64,
    /// Graceful closes that skipped lingering: the handler said the peer sends nothing
    /// more ([`Io::close_without_linger`](crate::Io::close_without_linger)) and nothing
    /// unread was waiting.
    pub closed_without_linger: u64,
    /// Connections whose reading was paused by the write-backlog bound.
    pub backpressure_pauses: u64,
    /// Connections closed because unconsumed input exceeded the carry-over limit.
    pub input_overflow: u64,
    /// Connections still open at the drain deadline and closed by force.
    pub drain_forced: u64,
    /// Jobs handed to the offload pool.
    pub offload_submitted: u64,
    /// Jobs refused because the pool's queue was full.
    pub offload_rejected: u64,
    /// Jobs that came back with a result.
    pub offload_completed: u64,
    /// Jobs that panicked on the pool.
    pub offload_panicked: u64,
    /// Results dropped because their connection had closed meanwhile.
    pub offload_dropped: u64,
    /// Datagrams received and handed to the handler.
    pub datagrams_in: u64,
    /// Datagrams sent.
    pub datagrams_out: u64,
    /// Datagrams that arrived truncated (larger than a buffer): dropped.
    pub udp_truncated: u64,
    /// Datagrams dropped because the send table was full.
    pub udp_send_dropped: u64,
    /// Datagram sends the kernel failed.
    pub udp_send_errors: u64,
    /// Outbound connects cancelled by their timeout (also in `connect_errors`).
    pub connect_timeouts: u64,
    /// Cross-shard calls this shard made that were refused at once (full mailbox,
    /// stopped shard, no such shard, wrong handler type).
    pub calls_rejected: u64,
    /// Cross-shard calls this shard ran for a caller (itself included).
    pub calls_served: u64,
    /// Call outcomes dropped because the connection that asked had closed meanwhile.
    pub call_replies_dropped: u64,
    /// Notifications dropped because their connection had closed meanwhile.
    pub notify_dropped: u64,
    /// Actions on a connection by token (write, post, pause, close) that found it gone.
    pub stale_tokens: u64,
    /// Times the shard went quiet and gave its allocator's free pages back
    /// (`Config::release_memory_after`).
    pub memory_releases: u64,
}

impl Counters {
    /// Name/value pairs, in a stable order (for JSON or logs).
    pub fn fields(&self) -> [(&'static str, u64); 40] {
        [
            ("accepted", self.accepted),
            ("connected", self.connected),
            ("connect_errors", self.connect_errors),
            ("closed", self.closed),
            ("refused", self.refused),
            ("bytes_in", self.bytes_in),
            ("bytes_out", self.bytes_out),
            ("recv_completions", self.recv_completions),
            ("sends", self.sends),
            ("zc_sends", self.zc_sends),
            ("zc_copied", self.zc_copied),
            ("short_sends", self.short_sends),
            ("enobufs", self.enobufs),
            ("emfile", self.emfile),
            ("accept_errors", self.accept_errors),
            ("sockets_closed", self.sockets_closed),
            ("close_errors", self.close_errors),
            ("cq_overflow", self.cq_overflow),
            ("idle_closed", self.idle_closed),
            ("closed_without_linger", self.closed_without_linger),
            ("backpressure_pauses", self.backpressure_pauses),
            ("input_overflow", self.input_overflow),
            ("drain_forced", self.drain_forced),
            ("offload_submitted", self.offload_submitted),
            ("offload_rejected", self.offload_rejected),
            ("offload_completed", self.offload_completed),
            ("offload_panicked", self.offload_panicked),
            ("offload_dropped", self.offload_dropped),
            ("datagrams_in", self.datagrams_in),
            ("datagrams_out", self.datagrams_out),
            ("udp_truncated", self.udp_truncated),
            ("udp_send_dropped", self.udp_send_dropped),
            ("udp_send_errors", self.udp_send_errors),
            ("connect_timeouts", self.connect_timeouts),
            ("calls_rejected", self.calls_rejected),
            ("calls_served", self.calls_served),
            ("call_replies_dropped", self.call_replies_dropped),
            ("notify_dropped", self.notify_dropped),
            ("stale_tokens", self.stale_tokens),
            ("memory_releases", self.memory_releases),
        ]
    }
}

impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (name, value) in self.fields() {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            write!(f, "{name}={value}")?;
        }
        Ok(())
    }
}
