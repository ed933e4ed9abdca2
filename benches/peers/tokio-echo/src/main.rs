//! `tokio-echo`: the tokio peer of ringmaster's TCP echo benchmark.
//!
//! An idiomatic echo server on tokio's current-thread runtime: one task per connection,
//! a 16 KiB read buffer, `write_all` back, `TCP_NODELAY` on every accepted socket.
//!
//! Usage: `tokio-echo [--listen ADDR]` (default `127.0.0.1:7001`; port 0 picks a free one).
//! When it is ready to accept it prints `tokio-echo listening on ADDR` on stderr, with the
//! real port, so scripts can read it.

use std::net::SocketAddr;
use std::process::ExitCode;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const USAGE: &str = "usage: tokio-echo [--listen ADDR]   (default 127.0.0.1:7001)";

fn parse_args() -> Result<SocketAddr, String> {
    let mut listen = String::from("127.0.0.1:7001");
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

async fn echo(mut stream: TcpStream) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let addr = match parse_args() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("tokio-echo: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("tokio-echo: cannot listen on {addr}: {e}");
            return ExitCode::from(1);
        }
    };
    let local = listener.local_addr().unwrap_or(addr);
    eprintln!("tokio-echo listening on {local}");
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                // Latency over Nagle, as the ringmaster server does.
                let _ = stream.set_nodelay(true);
                tokio::spawn(echo(stream));
            }
            // EMFILE and friends: back off a little instead of spinning.
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
}
