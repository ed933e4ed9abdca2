//! `udp-load`: closed-loop UDP echo load, a stand-in until `ringmaster load udp-echo`
//! exists.
//!
//! N client sockets (each `connect`ed to the server, so the kernel filters strangers) do
//! ping-pong: send one datagram, wait for its echo, send the next. A datagram carries the
//! socket's index and a sequence number; a reply that does not match the datagram in
//! flight byte for byte is counted (`bad`, or `late` for an old sequence number) and not
//! taken as the answer. A datagram unanswered after `--timeout-ms` is counted lost and
//! the socket sends the next one, so a lost datagram never stalls a socket.
//!
//! With `--server-pid PID` it reads the server's utime+stime (and VmRSS) from /proc before
//! and after the measured window and reports server CPU time per datagram. It also reports
//! its own CPU per datagram and the CPU time everything else on the machine used during
//! the window (from /proc/stat), to tell a quiet run from a disturbed one.
//!
//! Output: one JSON object on stdout.

use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};

const USAGE: &str = "usage: udp-load --addr IP:PORT [--sockets 100] [--size 64] [--duration 10] \
[--warmup 2] [--timeout-ms 200] [--server-pid PID] [--clk-tck 100]";

struct Args {
    addr: SocketAddr,
    sockets: usize,
    size: usize,
    duration: f64,
    warmup: f64,
    timeout: Duration,
    server_pid: Option<u32>,
    clk_tck: f64,
}

fn parse_args() -> Result<Args, String> {
    let mut addr = None;
    let mut a = Args {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        sockets: 100,
        size: 64,
        duration: 10.0,
        warmup: 2.0,
        timeout: Duration::from_millis(200),
        server_pid: None,
        clk_tck: 100.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        if arg == "-h" || arg == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let val = it.next().ok_or_else(|| format!("{arg} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("bad {arg} `{val}`: {e}");
        match arg.as_str() {
            "--addr" => addr = Some(val.parse().map_err(|e| bad(&e))?),
            "--sockets" => a.sockets = val.parse().map_err(|e| bad(&e))?,
            "--size" => a.size = val.parse().map_err(|e| bad(&e))?,
            "--duration" => a.duration = val.parse().map_err(|e| bad(&e))?,
            "--warmup" => a.warmup = val.parse().map_err(|e| bad(&e))?,
            "--timeout-ms" => a.timeout = Duration::from_millis(val.parse().map_err(|e| bad(&e))?),
            "--server-pid" => a.server_pid = Some(val.parse().map_err(|e| bad(&e))?),
            "--clk-tck" => a.clk_tck = val.parse().map_err(|e| bad(&e))?,
            _ => return Err(format!("unknown argument `{arg}`")),
        }
    }
    a.addr = addr.ok_or("--addr is required")?;
    if a.sockets == 0 || a.sockets > 10_000 {
        return Err("--sockets must be 1..=10000".into());
    }
    if !(16..=65_000).contains(&a.size) {
        return Err("--size must be 16..=65000 (the header is 16 bytes)".into());
    }
    if a.duration <= 0.0 || a.duration > 3600.0 || !(0.0..=600.0).contains(&a.warmup) {
        return Err("--duration must be in (0, 3600] and --warmup in [0, 600]".into());
    }
    Ok(a)
}

/// utime+stime of a process in clock ticks, from /proc/PID/stat (fields 14 and 15).
fn proc_ticks(pid: &str) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces: split after its closing parenthesis.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| io::Error::other("malformed stat"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let num = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    Ok(num(11) + num(12))
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// (busy, total) ticks over all CPUs, from the first line of /proc/stat.
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let nums: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|s| s.parse().ok())
        .collect();
    let total: u64 = nums.iter().sum();
    let idle = nums.get(3).copied().unwrap_or(0) + nums.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

struct Client {
    sock: UdpSocket,
    seq: u64,
    sent_at: Instant,
    expect: Vec<u8>,
}

impl Client {
    /// Sends the next datagram; false if the kernel refused it (counted by the caller).
    fn send_next(&mut self, now: Instant) -> bool {
        self.seq += 1;
        self.expect[8..16].copy_from_slice(&self.seq.to_le_bytes());
        self.sent_at = now;
        matches!(self.sock.send(&self.expect), Ok(n) if n == self.expect.len())
    }
}

#[derive(Default, Clone, Copy)]
struct Counts {
    replies: u64,
    lost: u64,
    late: u64,
    bad: u64,
    send_errors: u64,
}

fn run(a: &Args) -> io::Result<String> {
    let mut poll = Poll::new()?;
    let mut clients = Vec::with_capacity(a.sockets);
    let bind: SocketAddr = if a.addr.is_ipv4() {
        SocketAddr::from(([127, 0, 0, 1], 0))
    } else {
        "[::1]:0".parse().map_err(io::Error::other)?
    };
    let start = Instant::now();
    for i in 0..a.sockets {
        let mut sock = UdpSocket::bind(bind)?;
        sock.connect(a.addr)?;
        poll.registry()
            .register(&mut sock, Token(i), Interest::READABLE)?;
        let mut expect = vec![0u8; a.size];
        expect[..8].copy_from_slice(&(i as u64).to_le_bytes());
        for (j, b) in expect.iter_mut().enumerate().skip(16) {
            *b = (j * 7 + i) as u8;
        }
        clients.push(Client {
            sock,
            seq: 0,
            sent_at: start,
            expect,
        });
    }
    let mut counts = Counts::default();
    for c in &mut clients {
        if !c.send_next(start) {
            counts.send_errors += 1;
        }
    }

    let server = a.server_pid.map(|p| p.to_string());
    let self_pid = "self".to_string();
    let warm_end = start + Duration::from_secs_f64(a.warmup);
    let end = warm_end + Duration::from_secs_f64(a.duration);
    let mut measuring = false;
    let mut at_start = Counts::default();
    let (mut srv0, mut me0, mut mach0) = (0u64, 0u64, (0u64, 0u64));
    let mut t0 = warm_end;
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 65_536];
    let mut last_sweep = start;
    loop {
        let now = Instant::now();
        if !measuring && now >= warm_end {
            measuring = true;
            at_start = counts;
            t0 = now;
            srv0 = match &server {
                Some(p) => proc_ticks(p)?,
                None => 0,
            };
            me0 = proc_ticks(&self_pid)?;
            mach0 = machine_ticks();
        }
        if now >= end {
            break;
        }
        poll.poll(&mut events, Some(Duration::from_millis(10)))?;
        let now = Instant::now();
        for ev in &events {
            let Some(c) = clients.get_mut(ev.token().0) else {
                continue;
            };
            // Edge-triggered: drain the socket (bounded: at most 64 datagrams a wake).
            for _ in 0..64 {
                match c.sock.recv(&mut buf) {
                    Ok(n) => {
                        let got = &buf[..n];
                        if got == c.expect.as_slice() {
                            counts.replies += 1;
                            if !c.send_next(now) {
                                counts.send_errors += 1;
                            }
                        } else if n == c.expect.len()
                            && got[..8] == c.expect[..8]
                            && got[16..] == c.expect[16..]
                        {
                            counts.late += 1; // an earlier datagram's echo, after its timeout
                        } else {
                            counts.bad += 1;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    // ECONNREFUSED from an ICMP error: the server is gone or not there yet.
                    Err(_) => break,
                }
            }
        }
        // Timeouts: resend past the deadline (a sweep every 10 ms is enough).
        if now.duration_since(last_sweep) >= Duration::from_millis(10) {
            last_sweep = now;
            for c in &mut clients {
                if now.duration_since(c.sent_at) >= a.timeout {
                    counts.lost += 1;
                    if !c.send_next(now) {
                        counts.send_errors += 1;
                    }
                }
            }
        }
    }
    let t1 = Instant::now();
    let srv1 = match &server {
        Some(p) => proc_ticks(p)?,
        None => 0,
    };
    let me1 = proc_ticks(&self_pid)?;
    let mach1 = machine_ticks();
    let elapsed = t1.duration_since(t0).as_secs_f64();
    let d = Counts {
        replies: counts.replies - at_start.replies,
        lost: counts.lost - at_start.lost,
        late: counts.late - at_start.late,
        bad: counts.bad - at_start.bad,
        send_errors: counts.send_errors - at_start.send_errors,
    };
    let per = |ticks: u64| {
        if d.replies == 0 {
            "null".to_string()
        } else {
            format!("{:.3}", ticks as f64 / a.clk_tck * 1e6 / d.replies as f64)
        }
    };
    let srv_ticks = srv1 - srv0;
    let me_ticks = me1 - me0;
    // Machine busy ticks are in the same USER_HZ units as /proc/PID/stat.
    let other = (mach1.0 - mach0.0).saturating_sub(srv_ticks + me_ticks);
    let mut json = String::new();
    let _ = write!(
        json,
        "{{\"addr\":\"{}\",\"sockets\":{},\"size\":{},\"elapsed_s\":{:.3},\"datagrams\":{},\
\"datagrams_per_s\":{:.1},\"lost\":{},\"late\":{},\"bad\":{},\"send_errors\":{},",
        a.addr,
        a.sockets,
        a.size,
        elapsed,
        d.replies,
        d.replies as f64 / elapsed,
        d.lost,
        d.late,
        d.bad,
        d.send_errors
    );
    if let Some(pid) = a.server_pid {
        let rss = rss_kib(pid).map_or("null".to_string(), |k| k.to_string());
        let _ = write!(
            json,
            "\"server\":{{\"pid\":{},\"cpu_s\":{:.3},\"cpu_us_per_datagram\":{},\"rss_kib\":{}}},",
            pid,
            srv_ticks as f64 / a.clk_tck,
            per(srv_ticks),
            rss
        );
    }
    let _ = write!(
        json,
        "\"client\":{{\"cpu_s\":{:.3},\"cpu_us_per_datagram\":{}}},\"other_cpu_s\":{:.3}}}",
        me_ticks as f64 / a.clk_tck,
        per(me_ticks),
        other as f64 / a.clk_tck
    );
    Ok(json)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("udp-load: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("udp-load: {e}");
            ExitCode::from(1)
        }
    }
}
