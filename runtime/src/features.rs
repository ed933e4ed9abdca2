//! What the kernel offered each shard and what the running server uses: the startup line.

use std::fmt;

use crate::sys::ring::{RingFeatures, TaskRunMode};

/// What one shard's kernel offered.
#[derive(Debug, Clone)]
pub struct ShardFeatures {
    /// The ring's features.
    pub ring: RingFeatures,
    /// Whether the buffer ring consumes buffers incrementally.
    pub buf_incremental: bool,
    /// How accepted connections are named to the kernel.
    pub descriptors: Descriptors,
}

/// How a shard's accepted connections are named to the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Descriptors {
    /// Direct descriptors: a registered file table of this many slots.
    Direct(u32),
    /// Plain descriptors, and why not direct ones.
    Plain(String),
}

/// What the running server uses, for the startup line.
#[derive(Debug, Clone)]
pub struct Features {
    /// Number of shards.
    pub shards: usize,
    /// CPU each shard is pinned to (`None`: pinning failed or was impossible).
    pub cpus: Vec<Option<usize>>,
    /// Shard 0's ring features (all shards run on the same kernel).
    pub shard: ShardFeatures,
    /// Provided buffers per shard and their size.
    pub buffers: (u16, u32),
    /// The zero-copy send threshold in bytes.
    pub zero_copy_threshold: usize,
    /// TCP and/or UDP.
    pub tcp: bool,
    /// See `tcp`.
    pub udp: bool,
}

impl fmt::Display for Features {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.shard.ring;
        let mode = match r.mode {
            TaskRunMode::DeferTaskrun => "defer-taskrun",
            TaskRunMode::CoopTaskrun => "coop-taskrun",
            TaskRunMode::Plain => "plain taskrun",
        };
        let yes_no = |b: bool| if b { "on" } else { "off" };
        let pinned: Vec<String> = self
            .cpus
            .iter()
            .map(|c| c.map_or("-".to_string(), |c| c.to_string()))
            .collect();
        write!(
            f,
            "{} shard{}, cpus {}, {mode}, sq {} cq {}, {}, recv bundles {}, \
             incremental buffers {}, buffers {}x{}, send-zc {} (>= {} B), {}",
            self.shards,
            if self.shards == 1 { "" } else { "s" },
            pinned.join(","),
            r.sq_entries,
            r.cq_entries,
            match (self.tcp, self.udp) {
                (true, true) => "multishot accept+recv+recvmsg",
                (false, true) => "multishot recvmsg",
                _ => "multishot accept+recv",
            },
            yes_no(r.recv_bundles && self.tcp),
            yes_no(self.shard.buf_incremental),
            self.buffers.0,
            self.buffers.1,
            yes_no(r.send_zc),
            self.zero_copy_threshold,
            match &self.shard.descriptors {
                Descriptors::Direct(n) => format!("direct descriptors ({n} slots)"),
                Descriptors::Plain(why) => format!("plain descriptors ({why})"),
            },
        )
    }
}
