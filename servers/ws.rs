//! `ringmaster ws`: the WebSocket echo (or broadcast) server.
//!
//! Every connection starts as HTTP/1.1; a valid upgrade request (any target) becomes a
//! WebSocket connection. Each message is sent back to its sender, or with `--broadcast`
//! to every WebSocket connection on every shard (through the runtime's cross-shard
//! messages), for a chat-style fan-out benchmark. A plain HTTP request gets a short
//! page saying where the WebSocket is, except `GET /stats` and `GET /metrics`: every
//! shard's runtime, HTTP and WebSocket counters and its HTTP request-latency histogram,
//! as for `ringmaster http` (see [`crate::metrics`]). TLS flags give `wss://`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use ringmaster_protocols::http1::{App, Exchange, Http, Limits, Request, Response};
use ringmaster_protocols::tls::TlsOptions;
use ringmaster_protocols::websocket::{HttpWs, Message, Ws, WsApp, WsIo, WsLimits};
use ringmaster_runtime::CallDone;

use crate::cli::ServerArgs;
use crate::metrics::{Gather, Latency, Snapshot};
use crate::tls::{run_maybe_tls, TlsArgs};

/// Flags of `ringmaster ws`.
#[derive(Args, Debug, Clone)]
pub struct WsArgs {
    #[command(flatten)]
    pub server: ServerArgs,

    #[command(flatten)]
    pub tls: TlsArgs,

    /// Send every message to every connection on every shard instead of echoing it
    #[arg(long)]
    pub broadcast: bool,

    /// Largest message (all fragments) in bytes; larger closes with 1009
    #[arg(long, value_name = "BYTES", default_value_t = WsLimits::default().max_message)]
    pub max_message: usize,

    /// Seconds of silence before a connection is pinged (0: never); no answer within as long again closes it with 1001
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    pub ws_idle_timeout: f64,
}

/// The handler every shard runs (plain, or under TLS).
type Served = HttpWs<Landing, EchoWs>;

/// Answers plain HTTP requests on the WebSocket server: `/stats` and `/metrics`, and a
/// 426 for everything else. Its only state is the shard's request-latency histogram.
struct Landing {
    /// How many shards the server runs (`/stats` asks each).
    shards: usize,
    latency: Latency,
}

/// One shard's snapshot: the call's closure, with the shard's whole handler.
fn ws_snapshot(served: &mut Served, shard: &mut ringmaster_runtime::ShardIo<'_>) -> Snapshot {
    Snapshot::runtime(shard.shard_id(), shard.counters())
        .http(served.http().counters())
        .websocket(served.ws().counters())
        .latency(&served.http().app().latency)
}

impl App for Landing {
    /// A `/stats` or `/metrics` in progress, and when it was parsed.
    type Task = (Instant, Gather);

    fn on_request(&mut self, req: &Request<'_>, ex: &mut Exchange<'_>) -> Option<Self::Task> {
        let get = matches!(req.method(), "GET" | "HEAD");
        if let (true, Some(prometheus)) = (get, crate::metrics::route(req.path())) {
            let since = ex.now();
            let gather = Gather::start(ex, self.shards, prometheus, |ex, shard| {
                ex.call_handler(shard, ws_snapshot)
            });
            if let Some(gather) = gather {
                return Some((since, gather));
            }
        } else {
            // RFC 9110 15.5.22: a 426 names the protocol to upgrade to.
            ex.respond(
                Response::new(426)
                    .fields(&[("Upgrade", "websocket"), ("Content-Type", "text/plain")])
                    .body(b"ringmaster ws: connect with a WebSocket client (Upgrade: websocket)\n"),
            );
        }
        self.latency.observe(Duration::ZERO);
        None
    }

    fn on_call_done(&mut self, task: &mut Self::Task, done: CallDone, ex: &mut Exchange<'_>) {
        task.1.on_done(done, ex);
        if ex.is_done() {
            self.latency
                .observe(ex.now().saturating_duration_since(task.0));
        }
    }
}

/// A message on its way to every shard.
enum Shared {
    Text(String),
    Binary(Vec<u8>),
}

/// Echo, or fan-out with `--broadcast`.
struct EchoWs {
    broadcast: bool,
}

impl WsApp for EchoWs {
    type Conn = ();

    fn on_open(&mut self, _ws: &mut WsIo<'_, '_>) {}

    fn on_message(&mut self, _conn: &mut (), msg: Message<'_>, ws: &mut WsIo<'_, '_>) {
        if !self.broadcast {
            return ws.send_message(msg);
        }
        let shared = match msg {
            Message::Text(t) => Shared::Text(t.to_owned()),
            Message::Binary(b) => Shared::Binary(b.to_vec()),
        };
        ws.broadcast(Arc::new(shared));
    }

    fn on_broadcast(
        &mut self,
        _conn: &mut (),
        msg: &ringmaster_runtime::Broadcast,
        ws: &mut WsIo<'_, '_>,
    ) {
        match msg.downcast_ref::<Shared>() {
            Some(Shared::Text(t)) => ws.send_text(t),
            Some(Shared::Binary(b)) => ws.send_binary(b),
            None => {}
        }
    }
}

/// Runs the WebSocket server until SIGINT/SIGTERM.
pub fn run(args: &WsArgs) -> ExitCode {
    let idle = args.ws_idle_timeout;
    let idle = (idle.is_finite() && idle > 0.0).then(|| Duration::from_secs_f64(idle.min(1e6)));
    let limits = WsLimits {
        max_message: args.max_message,
        idle_timeout: idle,
        ping_timeout: idle.unwrap_or(Duration::from_secs(30)),
        ..WsLimits::default()
    };
    let broadcast = args.broadcast;
    let mode = if broadcast { "ws (broadcast)" } else { "ws" };
    let builder = args.server.builder();
    let shards = builder.config().shards;
    run_maybe_tls(
        mode,
        builder,
        &args.tls,
        TlsOptions::http1(),
        None,
        move |_shard| {
            let landing = Landing {
                shards,
                latency: Latency::default(),
            };
            HttpWs::new(
                Http::new(landing, Limits::default()),
                Ws::new(EchoWs { broadcast }, limits.clone()),
            )
        },
    )
}
