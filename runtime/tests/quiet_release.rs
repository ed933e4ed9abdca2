//! A shard that goes quiet after doing something gives its allocator's free pages back
//! once (counted as `memory_releases`), and does it again only after more work; a shard
//! that never did anything, or one configured not to, never does.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use ringmaster_runtime::Server;

mod common;

use common::Echo;

/// Runs an echo server with `after`, echoes one message per burst with `gap` of quiet
/// after each, and returns the shard's `memory_releases`.
fn releases(after: Option<Duration>, bursts: usize, gap: Duration) -> u64 {
    let server = Server::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .shards(1)
        .offload_threads(0)
        .handle_signals(false)
        .release_memory_after(after)
        .build()
        .unwrap();
    let running = server.start(|_| Echo).unwrap();
    for _ in 0..bursts {
        let mut c = TcpStream::connect(running.local_addr()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(&[7u8; 4096]).unwrap();
        let mut back = [0u8; 4096];
        c.read_exact(&mut back).unwrap();
        assert_eq!(back, [7u8; 4096]);
        drop(c);
        std::thread::sleep(gap);
    }
    // A shard with nothing at all to do must not wake for the release again.
    std::thread::sleep(gap);
    running.shutdown_handle().shutdown();
    let report = running.wait().unwrap();
    report.shards[0].memory_releases
}

#[test]
fn a_quiet_shard_releases_once_per_quiet_spell() {
    let n = releases(
        Some(Duration::from_millis(50)),
        3,
        Duration::from_millis(400),
    );
    assert_eq!(n, 3, "one release after each of the three bursts");
}

#[test]
fn an_idle_shard_never_released_and_none_means_never() {
    assert_eq!(
        releases(
            Some(Duration::from_millis(50)),
            0,
            Duration::from_millis(300)
        ),
        0
    );
    assert_eq!(releases(None, 2, Duration::from_millis(200)), 0);
}
