//! Connection tokens and the packing of `user_data`.
//!
//! Every submission carries 64 bits of `user_data` that come back in its completions.
//! We pack (operation kind, slot generation, slot index) into them so that a completion
//! arriving after its connection was closed, and its slot reused, is recognised by the
//! generation mismatch and dropped instead of being applied to a stranger.

/// Identifies one connection on one shard: its slot in the shard's slab and the
/// generation that slot had when the connection was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnToken {
    /// Index in the shard's connection slab.
    pub slot: u32,
    /// Generation of the slot (24 bits): differs between successive occupants.
    pub generation: u32,
}

/// Generations wrap at 24 bits: a slot would have to be reused 16 million times while a
/// stale completion is still in flight for a collision to go unnoticed.
pub(crate) const GEN_MASK: u32 = (1 << 24) - 1;

/// The first generation shard `id` of `shards` gives out. Each shard's generations are
/// `id + shards, id + 2 × shards, ...` (wrapping within 24 bits, keeping the residue): no
/// two shards ever use the same one, so a token carried to another shard names no
/// connection there.
pub(crate) fn first_generation(id: usize, shards: usize) -> u32 {
    (id + shards.max(1)) as u32
}

/// The generation after `g` on a shard of `shards` (see [`first_generation`]).
pub(crate) fn next_generation(g: u32, shards: usize) -> u32 {
    let shards = shards.max(1) as u32;
    let n = g + shards;
    if n > GEN_MASK {
        n % shards + shards
    } else {
        n
    }
}

/// What a submission was, recovered from its completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum OpKind {
    /// Multishot accept on the shard's listener (no slot).
    Accept = 1,
    /// Multishot receive on a connection.
    Recv = 2,
    /// Plain send on a connection.
    Send = 3,
    /// Zero-copy send on a connection (result and notification completions).
    SendZc = 4,
    /// A cancellation request: its own completion carries nothing we need.
    Cancel = 5,
    /// Read of the shard's wake eventfd (no slot).
    Wake = 6,
    /// Multishot recvmsg on the shard's UDP socket (no slot).
    UdpRecv = 7,
    /// A datagram send; the slot field is its key in the send table.
    UdpSend = 8,
    /// An outbound connect.
    Connect = 9,
    /// A direct descriptor's peer address (`getsockopt(SO_PEERNAME)` on the ring).
    PeerName = 10,
    /// A close, shutdown or socket option set through the ring: only a failure
    /// completes (where the kernel can skip successes), and it changes nothing.
    Close = 11,
    /// A shutdown through the ring (direct descriptors), counted in flight.
    Shutdown = 12,
    /// A direct descriptor installed as a plain one (`Io::request_fd`).
    FdInstall = 13,
    /// A spliced connection's poll for input.
    SplicePoll = 14,
    /// A splice from a connection's socket into its pipe.
    SpliceIn = 15,
    /// A splice from a connection's pipe into its peer's socket.
    SpliceOut = 16,
}

impl OpKind {
    fn from_u8(v: u8) -> Option<OpKind> {
        Some(match v {
            1 => OpKind::Accept,
            2 => OpKind::Recv,
            3 => OpKind::Send,
            4 => OpKind::SendZc,
            5 => OpKind::Cancel,
            6 => OpKind::Wake,
            7 => OpKind::UdpRecv,
            8 => OpKind::UdpSend,
            9 => OpKind::Connect,
            10 => OpKind::PeerName,
            11 => OpKind::Close,
            12 => OpKind::Shutdown,
            13 => OpKind::FdInstall,
            14 => OpKind::SplicePoll,
            15 => OpKind::SpliceIn,
            16 => OpKind::SpliceOut,
            _ => return None,
        })
    }
}

/// Packs an operation kind and a connection token into `user_data`.
pub(crate) fn pack(kind: OpKind, token: ConnToken) -> u64 {
    ((kind as u64) << 56) | (((token.generation & GEN_MASK) as u64) << 32) | token.slot as u64
}

/// Packs an operation that belongs to no connection.
pub(crate) fn pack_shard(kind: OpKind) -> u64 {
    (kind as u64) << 56
}

/// Unpacks `user_data`; `None` for a value we never produced.
pub(crate) fn unpack(user_data: u64) -> Option<(OpKind, ConnToken)> {
    let kind = OpKind::from_u8((user_data >> 56) as u8)?;
    let token = ConnToken {
        slot: user_data as u32,
        generation: ((user_data >> 32) as u32) & GEN_MASK,
    };
    Some((kind, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_kind_and_extremes() {
        let kinds = [
            OpKind::Accept,
            OpKind::Recv,
            OpKind::Send,
            OpKind::SendZc,
            OpKind::Cancel,
            OpKind::Wake,
            OpKind::UdpRecv,
            OpKind::UdpSend,
            OpKind::Connect,
        ];
        for kind in kinds {
            for (slot, generation) in [(0, 0), (1, 1), (u32::MAX, GEN_MASK), (12345, 777)] {
                let t = ConnToken { slot, generation };
                assert_eq!(unpack(pack(kind, t)), Some((kind, t)));
            }
        }
    }

    #[test]
    fn generation_is_truncated_to_24_bits() {
        let t = ConnToken {
            slot: 9,
            generation: GEN_MASK + 5,
        };
        let (_, back) = unpack(pack(OpKind::Recv, t)).unwrap();
        assert_eq!(back.generation, 4);
        assert_eq!(back.slot, 9);
    }

    #[test]
    fn shards_never_share_a_generation() {
        for shards in [1usize, 2, 3, 7] {
            for id in 0..shards {
                let mut g = first_generation(id, shards);
                for _ in 0..10 {
                    assert_eq!(g as usize % shards, id);
                    assert!(g > 0 && g <= GEN_MASK);
                    g = next_generation(g, shards);
                }
                let wrapped =
                    next_generation(GEN_MASK - (GEN_MASK - id as u32) % shards as u32, shards);
                assert_eq!(wrapped as usize % shards, id, "wrap keeps the shard");
                assert!(wrapped <= GEN_MASK);
            }
        }
    }

    #[test]
    fn unknown_kind_is_rejected() {
        assert_eq!(unpack(0), None);
        assert_eq!(unpack(0xff << 56), None);
    }

    #[test]
    fn shard_ops_carry_no_slot() {
        let (k, t) = unpack(pack_shard(OpKind::Wake)).unwrap();
        assert_eq!(k, OpKind::Wake);
        assert_eq!((t.slot, t.generation), (0, 0));
    }
}
