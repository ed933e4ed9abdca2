//! `rm-callbench`: the round trip of a ringmaster cross-shard call.
//!
//! Starts a runtime `Server` with two shards (pinned, one per CPU of `--cpus`) and no
//! listener. From shard 0 it makes cross-shard calls to shard 1, each a trivial closure
//! returning a `u64`, in three phases of `--duration / 3` seconds (or `--calls` calls)
//! each:
//!
//! 1. `rtt`: one call at a time: the round trip (caller's mailbox send and wake, the
//!    target's turn, the reply's send and wake, the caller's turn);
//! 2. `inflight`: `--inflight K` calls in flight, each replaced as it returns: the
//!    throughput;
//! 3. `same-shard`: one call at a time from shard 0 to itself, the same mailbox path
//!    without crossing cores (the baseline).
//!
//! Latency is read with `Instant::now()` at the call and at its outcome and recorded in
//! an HDR histogram (ns). CPU time is the whole process's (`getrusage(RUSAGE_SELF)`:
//! both shards) over the phase, divided by its calls.
//!
//! Run: `cargo run --release -p ringmaster-bench --bin rm-callbench -- --duration 6`

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use ringmaster_runtime::{Called, Close, Handler, Input, Io, Server, ShardEvent, ShardIo};

/// Cross-shard call round trip and throughput, from shard 0 to shard 1.
#[derive(Parser, Debug)]
#[command(name = "rm-callbench", version, about)]
struct Args {
    /// Seconds for the whole run, split evenly over the three phases
    #[arg(long, value_name = "SECS", default_value_t = 6.0)]
    duration: f64,

    /// Most calls per phase (a phase ends at whichever bound comes first)
    #[arg(long, value_name = "N", default_value_t = 50_000_000)]
    calls: u64,

    /// Calls kept in flight in the throughput phase (at most the mailbox bound, 4096)
    #[arg(long, value_name = "K", default_value_t = 64)]
    inflight: usize,

    /// The two CPUs to pin shard 0 and shard 1 to
    #[arg(long, value_name = "A,B", value_delimiter = ',', default_values_t = [0, 1])]
    cpus: Vec<usize>,
}

/// What one phase measured.
struct Phase {
    name: &'static str,
    calls: u64,
    elapsed: Duration,
    cpu: Duration,
    latency: Histogram<u64>,
}

/// Shard 0's state while it measures; the phases finished so far go to `done`.
struct Bench {
    id: usize,
    plan: Plan,
    run: Option<Run>,
    done: Arc<Mutex<Vec<Phase>>>,
    /// Calls shard 1 served (its only state).
    served: u64,
}

/// The run's bounds.
#[derive(Clone, Copy)]
struct Plan {
    phase_time: Duration,
    calls: u64,
    inflight: usize,
}

/// The phase in progress.
struct Run {
    index: usize,
    target: usize,
    started: Instant,
    cpu0: Duration,
    /// When each in-flight call (by tag) was made.
    sent: Vec<Instant>,
    calls: u64,
    stopping: bool,
    outstanding: usize,
    latency: Histogram<u64>,
}

const PHASES: [(&str, usize, bool); 3] = [
    ("rtt", 1, false),
    ("inflight", 1, true),
    ("same-shard", 0, false),
];

/// The process's CPU time so far: the sum over its threads of the time each has run
/// (`/proc/self/task/*/schedstat`, nanoseconds; no `unsafe` outside the runtime's ring
/// layer, so no `getrusage` here). Every thread of the bench lives until it ends.
fn cpu_time() -> Duration {
    let mut ns = 0u64;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            let stat = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
            ns += stat
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Duration::from_nanos(ns)
}

impl Bench {
    /// Starts phase `index` (or stops the server after the last).
    fn start_phase(&mut self, index: usize, shard: &mut ShardIo<'_>) {
        let Some(&(_, target, many)) = PHASES.get(index) else {
            shard.shutdown_all();
            return;
        };
        let width = if many { self.plan.inflight } else { 1 };
        let now = Instant::now();
        let mut run = Run {
            index,
            target,
            started: now,
            cpu0: cpu_time(),
            sent: vec![now; width],
            calls: 0,
            stopping: false,
            outstanding: 0,
            latency: Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds"),
        };
        for tag in 0..width {
            if send(&mut run, tag, shard) {
                run.outstanding += 1;
            }
        }
        self.run = Some(run);
    }

    /// A call came back: record it, make the next, or end the phase.
    fn on_done(&mut self, tag: usize, shard: &mut ShardIo<'_>) {
        let Some(run) = self.run.as_mut() else { return };
        let now = Instant::now();
        let took = now.saturating_duration_since(run.sent[tag]);
        let _ = run.latency.record((took.as_nanos() as u64).max(1));
        run.calls += 1;
        run.outstanding -= 1;
        if now.duration_since(run.started) >= self.plan.phase_time || run.calls >= self.plan.calls {
            run.stopping = true;
        }
        if !run.stopping && send(run, tag, shard) {
            run.outstanding += 1;
        }
        if run.outstanding > 0 {
            return;
        }
        let run = self.run.take().expect("a phase in progress");
        let phase = Phase {
            name: PHASES[run.index].0,
            calls: run.calls,
            elapsed: run.started.elapsed(),
            cpu: cpu_time().saturating_sub(run.cpu0),
            latency: run.latency,
        };
        self.done.lock().expect("results").push(phase);
        self.start_phase(run.index + 1, shard);
    }
}

/// Makes one call from slot `tag`; false if it was refused (the slot stays empty).
fn send(run: &mut Run, tag: usize, shard: &mut ShardIo<'_>) -> bool {
    run.sent[tag] = Instant::now();
    let sent = shard.call::<Bench, u64>(run.target, tag as u64, |b, _| {
        b.served += 1;
        b.served
    });
    if let Err(e) = &sent {
        eprintln!("rm-callbench: a call was refused: {e}");
    }
    sent.is_ok()
}

impl Handler for Bench {
    type Conn = ();
    fn on_open(&mut self, _peer: std::net::SocketAddr, io: &mut Io<'_>) {
        io.abort();
    }
    fn on_data(&mut self, _c: &mut (), input: &mut Input<'_>, _io: &mut Io<'_>) {
        input.consume_all();
    }
    fn on_close(&mut self, _c: (), _why: Close) {}
    fn on_shard(&mut self, event: ShardEvent<'_>, shard: &mut ShardIo<'_>) {
        match event {
            // A call made before shard 1 runs its first turn waits in its mailbox, never
            // lost (the server starts only once every shard is ready anyway).
            ShardEvent::Start if self.id == 0 => self.start_phase(0, shard),
            ShardEvent::CallDone { tag, done } => {
                if let Err(e) = Called::<u64>::new().result(done) {
                    eprintln!("rm-callbench: a call failed: {e}");
                    shard.shutdown_all();
                    return;
                }
                self.on_done(tag as usize, shard);
            }
            _ => {}
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.cpus.len() != 2 || args.inflight == 0 || args.inflight > 4096 {
        eprintln!("rm-callbench: --cpus takes two CPUs and --inflight 1 to 4096");
        return ExitCode::from(2);
    }
    let secs = if args.duration.is_finite() {
        args.duration.clamp(0.3, 3600.0)
    } else {
        6.0
    };
    let plan = Plan {
        phase_time: Duration::from_secs_f64(secs / PHASES.len() as f64),
        calls: args.calls.max(1),
        inflight: args.inflight,
    };
    let server = Server::builder()
        .shards(2)
        .cpus(Some(args.cpus.clone()))
        .tcp(false)
        .udp(false)
        .offload_threads(0)
        .handle_signals(false)
        .build();
    let server = match server {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rm-callbench: {e}");
            return ExitCode::from(2);
        }
    };
    let done = Arc::new(Mutex::new(Vec::new()));
    let results = done.clone();
    let running = match server.start(move |id| Bench {
        id,
        plan,
        run: None,
        done: results.clone(),
        served: 0,
    }) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rm-callbench: {e}");
            return ExitCode::from(1);
        }
    };
    println!(
        "rm-callbench: 2 shards ({}), {:.1} s per phase, {} in flight",
        running.features(),
        plan.phase_time.as_secs_f64(),
        plan.inflight
    );
    if let Err(e) = running.wait() {
        eprintln!("rm-callbench: {e}");
        return ExitCode::from(1);
    }
    println!(
        "{:<11} {:>10} {:>12} {:>9} {:>9} {:>9} {:>9} {:>11}",
        "phase", "calls", "calls/s", "p50 us", "p99 us", "p99.9 us", "max us", "cpu ns/call"
    );
    for p in done.lock().expect("results").iter() {
        let us = |q: f64| p.latency.value_at_quantile(q) as f64 / 1000.0;
        let rate = p.calls as f64 / p.elapsed.as_secs_f64();
        let cpu = p.cpu.as_nanos() as f64 / p.calls.max(1) as f64;
        println!(
            "{:<11} {:>10} {:>12.0} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>11.0}",
            p.name,
            p.calls,
            rate,
            us(0.5),
            us(0.99),
            us(0.999),
            p.latency.max() as f64 / 1000.0,
            cpu
        );
    }
    ExitCode::SUCCESS
}
