//! `tokio-ws-echo`: the tokio peer of ringmaster's WebSocket echo benchmark.
//!
//! tokio-tungstenite on tokio's current-thread runtime: one task per connection, every
//! text or binary message sent back as it came; tungstenite answers pings and the close
//! handshake itself. No `permessage-deflate` (as ringmaster, which declines it).
//!
//! Usage: `tokio-ws-echo [--listen ADDR]` (default `127.0.0.1:7003`; port 0 picks a free
//! one). When it is ready it prints `tokio-ws-echo listening on ADDR` on stderr, with the
//! real port, so scripts can read it.

use std::net::SocketAddr;
use std::process::ExitCode;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

const USAGE: &str = "usage: tokio-ws-echo [--listen ADDR]   (default 127.0.0.1:7003)";

fn parse_args() -> Result<SocketAddr, String> {
    let mut listen = String::from("127.0.0.1:7003");
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

async fn echo(stream: TcpStream) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    while let Some(msg) = ws.next().await {
        match msg {
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                if ws.send(m).await.is_err() {
                    return;
                }
            }
            // tungstenite queues the pong / close reply; the next read or write sends it.
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let addr = match parse_args() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("tokio-ws-echo: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("tokio-ws-echo: cannot listen on {addr}: {e}");
            return ExitCode::from(1);
        }
    };
    let local = listener.local_addr().unwrap_or(addr);
    eprintln!("tokio-ws-echo listening on {local}");
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(echo(stream));
            }
            // EMFILE and friends: back off a little instead of spinning.
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
}
