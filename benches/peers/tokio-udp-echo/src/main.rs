//! `tokio-udp-echo`: the tokio peer of ringmaster's UDP echo benchmark.
//!
//! An idiomatic UDP echo server on tokio's current-thread runtime: one socket, one task,
//! `recv_from` into a 64 KiB buffer and `send_to` the same bytes back to the sender.
//!
//! Usage: `tokio-udp-echo [--listen ADDR]` (default `127.0.0.1:7002`; port 0 picks a free
//! one). When it is ready it prints `tokio-udp-echo listening on ADDR` on stderr, with the
//! real port, so scripts can read it.

use std::net::SocketAddr;
use std::process::ExitCode;

use tokio::net::UdpSocket;

const USAGE: &str = "usage: tokio-udp-echo [--listen ADDR]   (default 127.0.0.1:7002)";

fn parse_args() -> Result<SocketAddr, String> {
    let mut listen = String::from("127.0.0.1:7002");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next().ok_or("--listen needs an address")?,
            s if s.starts_with("--listen=") => listen = s["--listen=".len()..].to_string(),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    listen
        .parse()
        .map_err(|e| format!("bad --listen address `{listen}`: {e} (expected IP:PORT)"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let addr = match parse_args() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("tokio-udp-echo: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let socket = match UdpSocket::bind(addr).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tokio-udp-echo: cannot bind {addr}: {e}");
            return ExitCode::from(1);
        }
    };
    let local = socket.local_addr().unwrap_or(addr);
    eprintln!("tokio-udp-echo listening on {local}");
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, peer)) => {
                // UDP may drop: a failed send (e.g. ENOBUFS) loses this datagram only.
                let _ = socket.send_to(&buf[..n], peer).await;
            }
            // ICMP errors surface as ECONNREFUSED on Linux; they concern one peer only.
            Err(_) => continue,
        }
    }
}
