//! `floor`: the least a server can do on io_uring, as the kernel's cost floor in
//! ringmaster's benchmarks.
//!
//! One thread, one ring, one listener: a multishot accept, a multishot receive per
//! connection into one provided-buffer ring, a plain SEND of the reply, an
//! IORING_OP_CLOSE when the receive ends. No parsing beyond counting "\r\n\r\n", no
//! timeouts, no limits: whatever ringmaster spends above this is its own cost.
//!
//! Usage: `floor --mode echo|http [--listen ADDR] [--plain-fds]` (default listen address
//! `127.0.0.1:7000`; port 0 picks a free one). When ready it prints `floor listening on
//! ADDR (...)` on stderr, with the real port. SIGINT and SIGTERM end it with status 0.

mod buf_ring;
mod server;

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::process::ExitCode;

use socket2::{Domain, Socket, Type};

use server::{Mode, Server};

const USAGE: &str =
    "usage: floor --mode echo|http [--listen ADDR] [--plain-fds]   (default 127.0.0.1:7000)";

struct Args {
    listen: SocketAddr,
    mode: Mode,
    plain_fds: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut listen = String::from("127.0.0.1:7000");
    let mut mode = None;
    let mut plain_fds = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or(format!("{name} needs a value"))
        };
        match flag.as_str() {
            "--listen" => listen = value("--listen")?,
            "--mode" => {
                mode = Some(match value("--mode")?.as_str() {
                    "echo" => Mode::Echo,
                    "http" => Mode::Http,
                    other => return Err(format!("unknown mode `{other}` (echo or http)")),
                })
            }
            "--plain-fds" => plain_fds = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let mode = mode.ok_or("--mode echo|http is required")?;
    let listen = listen
        .parse()
        .map_err(|e| format!("bad --listen address `{listen}`: {e} (expected IP:PORT)"))?;
    Ok(Args {
        listen,
        mode,
        plain_fds,
    })
}

/// A listener with the largest backlog the kernel allows and TCP_NODELAY, which every
/// accepted socket inherits.
fn listener(addr: SocketAddr) -> std::io::Result<Socket> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    sock.set_reuse_address(true)?;
    sock.set_tcp_nodelay(true)?;
    sock.bind(&addr.into())?;
    let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4096);
    sock.listen(somaxconn)?;
    Ok(sock)
}

/// The direct-descriptor table's size: the kernel allows at most RLIMIT_NOFILE.
fn file_slots() -> u32 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only the struct we pass.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
    if ok {
        lim.rlim_cur.min(1 << 20) as u32
    } else {
        1024
    }
}

extern "C" fn exit_now(_: libc::c_int) {
    // SAFETY: _exit is async-signal-safe; nothing needs flushing.
    unsafe { libc::_exit(0) }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("floor: {e} ({USAGE})");
            return ExitCode::from(2);
        }
    };
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only calls _exit.
        unsafe { libc::signal(sig, exit_now as *const () as libc::sighandler_t) };
    }
    let sock = match listener(args.listen) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("floor: cannot listen on {}: {e}", args.listen);
            return ExitCode::from(1);
        }
    };
    let local = sock
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .unwrap_or(args.listen);
    let (mut server, what) =
        match Server::new(sock.as_raw_fd(), args.mode, args.plain_fds, file_slots()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("floor: cannot set up io_uring: {e}");
                return ExitCode::from(1);
            }
        };
    eprintln!("floor listening on {local} ({what})");
    if let Err(e) = server.run() {
        eprintln!("floor: io_uring_enter failed: {e}");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
