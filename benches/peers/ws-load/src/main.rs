//! `ws-load`: closed-loop WebSocket echo load for `scripts/bench-ws`.
//!
//! Opens `--connections` WebSocket connections to `ws://ADDR/` (tokio current-thread,
//! tokio-tungstenite); each one sends a text message of `--size` bytes, awaits its echo,
//! checks it is the same text, and sends the next, for `--duration` seconds. With
//! `--server-pid PID`, reads that process's utime+stime (plus its direct children's) from
//! /proc before and after the measured window and reports server CPU per message.
//!
//! Prints one JSON line on stdout:
//! `{"messages":N,"seconds":S,"msgs_per_sec":R,"errors":E,"server_cpu_s":C,"server_cpu_us_per_msg":U}`
//! Exit 1 when a connection fails to open or an echo does not match.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::cell::Cell;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const USAGE: &str = "usage: ws-load --addr IP:PORT [--connections N (100)] [--duration SECS (10)] \
[--size BYTES (64)] [--server-pid PID]";

struct Args {
    addr: SocketAddr,
    connections: usize,
    duration: u64,
    size: usize,
    server_pid: Option<u32>,
}

fn parse_args() -> Result<Args, String> {
    let mut addr = None;
    let (mut connections, mut duration, mut size, mut server_pid) = (100usize, 10u64, 64usize, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut val = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--addr" => {
                let v = val("--addr")?;
                addr = Some(v.parse().map_err(|e| format!("bad --addr `{v}`: {e}"))?);
            }
            "--connections" => connections = val("--connections")?.parse().map_err(|e| format!("--connections: {e}"))?,
            "--duration" => duration = val("--duration")?.parse().map_err(|e| format!("--duration: {e}"))?,
            "--size" => size = val("--size")?.parse().map_err(|e| format!("--size: {e}"))?,
            "--server-pid" => server_pid = Some(val("--server-pid")?.parse().map_err(|e| format!("--server-pid: {e}"))?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let addr = addr.ok_or("--addr is required")?;
    if connections == 0 || duration == 0 {
        return Err("--connections and --duration must be positive".into());
    }
    Ok(Args { addr, connections, duration, size, server_pid })
}

/// utime+stime in clock ticks of one process (all threads).
fn ticks_of(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Ticks of PID and its direct children (nginx-style workers).
fn server_ticks(pid: u32) -> Option<u64> {
    let mut total = ticks_of(pid)?;
    if let Ok(children) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
        for c in children.split_whitespace().filter_map(|c| c.parse().ok()) {
            total += ticks_of(c).unwrap_or(0);
        }
    }
    Some(total)
}

fn clk_tck() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// One connection: closed loop until `stop`; counts echoes in `count` once `counting`.
async fn run_conn(
    addr: SocketAddr,
    size: usize,
    id: usize,
    stop: Instant,
    counting: Rc<Cell<bool>>,
    count: Rc<Cell<u64>>,
) -> Result<(), String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
    let url = format!("ws://{addr}/");
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    // 64 printable bytes, different per connection and per message (a counter in front).
    let mut seq: u64 = 0;
    while Instant::now() < stop {
        let prefix = format!("{id:05}-{seq:012}-");
        let mut text = String::with_capacity(size);
        text.push_str(&prefix[..prefix.len().min(size)]);
        while text.len() < size {
            text.push((b'a' + (text.len() % 26) as u8) as char);
        }
        ws.send(Message::text(text.clone())).await.map_err(|e| format!("send: {e}"))?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    if t.as_str() != text {
                        return Err(format!("echo mismatch on connection {id}"));
                    }
                    break;
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(other)) => return Err(format!("unexpected message {other:?}")),
                Some(Err(e)) => return Err(format!("recv: {e}")),
                None => return Err("server closed the connection".into()),
            }
        }
        if counting.get() {
            count.set(count.get() + 1);
        }
        seq += 1;
    }
    let _ = ws.close(None).await;
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ws-load: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async move {
            let counting = Rc::new(Cell::new(false));
            let count = Rc::new(Cell::new(0u64));
            // Connections get 0.5 s to open before the measured window starts.
            let ramp = Duration::from_millis(500);
            let start = Instant::now() + ramp;
            let stop = start + Duration::from_secs(args.duration);
            let mut tasks = Vec::with_capacity(args.connections);
            for id in 0..args.connections {
                tasks.push(tokio::task::spawn_local(run_conn(
                    args.addr, args.size, id, stop, counting.clone(), count.clone(),
                )));
            }
            tokio::time::sleep_until(start.into()).await;
            let t0 = server_ticks_opt(args.server_pid);
            let w0 = Instant::now();
            counting.set(true);
            tokio::time::sleep_until(stop.into()).await;
            counting.set(false);
            let secs = w0.elapsed().as_secs_f64();
            let t1 = server_ticks_opt(args.server_pid);
            let messages = count.get();
            let mut errors = 0u64;
            let mut first_err = None;
            for t in tasks {
                match tokio::time::timeout(Duration::from_secs(10), t).await {
                    Ok(Ok(Ok(()))) => {}
                    Ok(Ok(Err(e))) => {
                        errors += 1;
                        first_err.get_or_insert(e);
                    }
                    _ => {
                        errors += 1;
                        first_err.get_or_insert("task did not finish".into());
                    }
                }
            }
            let (cpu, per) = match (t0, t1) {
                (Some(a), Some(b)) => {
                    let s = (b - a) as f64 / clk_tck() as f64;
                    (format!("{s:.3}"), if messages > 0 { format!("{:.3}", s * 1e6 / messages as f64) } else { "null".into() })
                }
                _ => ("null".into(), "null".into()),
            };
            println!(
                "{{\"messages\":{messages},\"seconds\":{secs:.3},\"msgs_per_sec\":{:.0},\"errors\":{errors},\"server_cpu_s\":{cpu},\"server_cpu_us_per_msg\":{per}}}",
                messages as f64 / secs
            );
            if let Some(e) = first_err {
                eprintln!("ws-load: {errors} connection(s) failed; first: {e}");
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        })
        .await
}

fn server_ticks_opt(pid: Option<u32>) -> Option<u64> {
    pid.and_then(server_ticks)
}
