//! Which upstream serves the next request or connection, one balancer per shard:
//! round-robin, least connections, power of two random choices over in-flight counts,
//! or a hash of the client's address (sticky). Passive health: an upstream that fails
//! `max_fails` times in a row is skipped for `fail_timeout`; when every upstream is
//! skipped, the least recently failed is tried anyway (a request is better served by an
//! upstream that may have recovered than refused outright).

use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The most upstreams a balancer chooses among (a bit set marks the tried ones).
pub const MAX_UPSTREAMS: usize = 64;

/// How the next upstream is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Policy {
    /// Each upstream in turn.
    RoundRobin,
    /// The one with the fewest requests (or connections) in flight on this shard.
    LeastConn,
    /// Two chosen at random, the one with fewer in flight.
    P2c,
    /// By the client's IP address: the same client goes to the same upstream while it
    /// is healthy.
    Hash,
}

/// One upstream's standing on this shard.
#[derive(Debug, Clone, Default)]
pub struct Standing {
    /// Requests (HTTP) or connections (TCP) in flight.
    pub inflight: u32,
    /// Failures in a row.
    pub fails: u32,
    /// Skipped until then.
    pub down_until: Option<Instant>,
    /// Times it was marked down.
    pub marked_down: u64,
}

/// One shard's balancer over `n` upstreams.
#[derive(Debug)]
pub struct Balancer {
    policy: Policy,
    max_fails: u32,
    fail_timeout: Duration,
    next: usize,
    rng: u64,
    /// Per upstream, in the order given.
    pub standing: Vec<Standing>,
}

impl Balancer {
    /// A balancer over `n` upstreams.
    pub fn new(
        n: usize,
        policy: Policy,
        max_fails: u32,
        fail_timeout: Duration,
        seed: u64,
    ) -> Self {
        Balancer {
            policy,
            max_fails: max_fails.max(1),
            fail_timeout,
            next: seed as usize % n.max(1),
            rng: seed | 1,
            standing: vec![Standing::default(); n],
        }
    }

    fn up(&self, i: usize, now: Instant) -> bool {
        self.standing[i].down_until.is_none_or(|t| now >= t)
    }

    fn random(&mut self) -> u64 {
        // xorshift64: fast, and good enough to spread choices.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// The upstream for the next request from `client`, not one of `tried` (a bit set
    /// of upstreams already tried for it); `None` once every upstream was tried. At
    /// most [`MAX_UPSTREAMS`] upstreams.
    pub fn pick(&mut self, client: Option<IpAddr>, tried: u64, now: Instant) -> Option<usize> {
        let n = self.standing.len().min(MAX_UPSTREAMS);
        let untried = (0..n).filter(|&i| tried & (1 << i) == 0);
        let healthy: u64 = untried
            .clone()
            .filter(|&i| self.up(i, now))
            .fold(0, |m, i| m | 1 << i);
        if healthy == 0 {
            // Every untried upstream is down: the one whose skip ends first.
            return untried.min_by_key(|&i| self.standing[i].down_until);
        }
        let ok = |i: usize| healthy & (1 << i) != 0;
        let count = healthy.count_ones() as usize;
        let nth = |k: usize| (0..n).filter(|&i| ok(i)).nth(k);
        match self.policy {
            Policy::RoundRobin => {
                let start = self.next;
                let found = (0..n).map(|k| (start + k) % n).find(|&i| ok(i));
                self.next = found.map_or(start, |i| i + 1) % n;
                found
            }
            Policy::LeastConn => (0..n)
                .filter(|&i| ok(i))
                .min_by_key(|&i| self.standing[i].inflight),
            Policy::P2c => {
                let a = nth(self.random() as usize % count)?;
                let b = nth(self.random() as usize % count)?;
                Some(if self.standing[b].inflight < self.standing[a].inflight {
                    b
                } else {
                    a
                })
            }
            Policy::Hash => {
                let h = client.map_or(0, hash_ip) as usize;
                (0..n).map(|k| (h + k) % n).find(|&i| ok(i))
            }
        }
    }

    /// Upstream `i` answered: its failure run ends.
    pub fn succeeded(&mut self, i: usize) {
        if let Some(s) = self.standing.get_mut(i) {
            s.fails = 0;
            s.down_until = None;
        }
    }

    /// Upstream `i` failed (could not be reached, timed out, broke the protocol).
    pub fn failed(&mut self, i: usize, now: Instant) {
        let (max, timeout) = (self.max_fails, self.fail_timeout);
        if let Some(s) = self.standing.get_mut(i) {
            s.fails += 1;
            if s.fails >= max {
                s.fails = 0;
                s.down_until = Some(now + timeout);
                s.marked_down += 1;
            }
        }
    }
}

/// FNV-1a over the address bytes.
fn hash_ip(ip: IpAddr) -> u64 {
    let bytes = match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(policy: Policy) -> Balancer {
        Balancer::new(3, policy, 2, Duration::from_secs(10), 0)
    }

    #[test]
    fn round_robin_takes_each_in_turn_and_skips_the_down() {
        let now = Instant::now();
        let mut b = b(Policy::RoundRobin);
        let seq: Vec<_> = (0..6).map(|_| b.pick(None, 0, now).unwrap()).collect();
        assert_eq!(seq, [0, 1, 2, 0, 1, 2]);
        b.failed(1, now);
        b.failed(1, now);
        let seq: Vec<_> = (0..4).map(|_| b.pick(None, 0, now).unwrap()).collect();
        assert_eq!(seq, [0, 2, 0, 2]);
        // Back after the fail timeout.
        let later = now + Duration::from_secs(11);
        let seq: Vec<_> = (0..3).map(|_| b.pick(None, 0, later).unwrap()).collect();
        assert!(seq.contains(&1));
    }

    #[test]
    fn tried_upstreams_are_not_picked_again() {
        let now = Instant::now();
        let mut b = b(Policy::RoundRobin);
        assert_eq!(b.pick(None, 0b011, now), Some(2));
        assert_eq!(b.pick(None, 0b111, now), None);
    }

    #[test]
    fn least_conn_and_p2c_prefer_fewer_in_flight() {
        let now = Instant::now();
        let mut l = b(Policy::LeastConn);
        l.standing[0].inflight = 5;
        l.standing[1].inflight = 1;
        l.standing[2].inflight = 3;
        assert_eq!(l.pick(None, 0, now), Some(1));
        let mut p = b(Policy::P2c);
        p.standing[0].inflight = 9;
        p.standing[1].inflight = 9;
        p.standing[2].inflight = 0;
        let picks: Vec<_> = (0..50).map(|_| p.pick(None, 0, now).unwrap()).collect();
        assert!(picks.iter().filter(|&&i| i == 2).count() > 15);
    }

    #[test]
    fn hash_is_sticky_per_client_and_moves_off_a_down_upstream() {
        let now = Instant::now();
        let mut h = b(Policy::Hash);
        let ip: IpAddr = "127.0.0.7".parse().unwrap();
        let first = h.pick(Some(ip), 0, now).unwrap();
        for _ in 0..5 {
            assert_eq!(h.pick(Some(ip), 0, now), Some(first));
        }
        h.failed(first, now);
        h.failed(first, now);
        let moved = h.pick(Some(ip), 0, now).unwrap();
        assert_ne!(moved, first);
    }

    #[test]
    fn all_down_still_tries_the_first_to_come_back() {
        let now = Instant::now();
        let mut b = b(Policy::RoundRobin);
        for i in 0..3 {
            b.failed(i, now);
            b.failed(i, now);
        }
        assert!(b.pick(None, 0, now).is_some());
    }
}
