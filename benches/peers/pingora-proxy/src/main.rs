//! `pingora-proxy`: the Pingora peer of ringmaster's proxy benchmark.
//!
//! Cloudflare's `pingora` (crates.io, `proxy` and `lb` features, no TLS) as a plain
//! HTTP/1.1 reverse proxy: every request goes, unchanged but for Pingora's own re-framing,
//! to the one backend given (picked through a one-entry round-robin `LoadBalancer`, as a
//! Pingora deployment would), over Pingora's keep-alive upstream connection pool.
//! One service thread (`threads: 1`, no work stealing), no daemon, no config file.
//!
//! Usage: `pingora-proxy --listen ADDR --backend HOST:PORT` (port 0 picks a free one).
//! When the listener accepts connections it prints `pingora-proxy listening on ADDR` on
//! stderr. SIGINT or SIGTERM: exit within a second.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::lb::{selection::RoundRobin, LoadBalancer};
use pingora::prelude::{http_proxy_service, HttpPeer, ProxyHttp, Session};
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::Result;

const USAGE: &str = "usage: pingora-proxy --listen ADDR --backend HOST:PORT";

struct Proxy(Arc<LoadBalancer<RoundRobin>>);

#[async_trait]
impl ProxyHttp for Proxy {
    type CTX = ();
    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let backend = self.0.select(b"", 1).expect("one backend, always selectable");
        Ok(Box::new(HttpPeer::new(backend, false, String::new())))
    }
}

fn parse_args() -> std::result::Result<(SocketAddr, String), String> {
    let (mut listen, mut backend) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next(),
            "--backend" => backend = args.next(),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let listen: SocketAddr = listen
        .ok_or("--listen ADDR is required")?
        .parse()
        .map_err(|e| format!("--listen: {e}"))?;
    Ok((listen, backend.ok_or("--backend HOST:PORT is required")?))
}

fn main() {
    let (mut listen, backend) = parse_args().unwrap_or_else(|e| {
        eprintln!("pingora-proxy: {e}\n{USAGE}");
        std::process::exit(2);
    });
    if listen.port() == 0 {
        // Pingora binds inside its service runtime and does not report the port it got,
        // so a free one is picked here (the short race is harmless on a benchmark box).
        listen = TcpListener::bind(listen)
            .and_then(|l| l.local_addr())
            .unwrap_or_else(|e| {
                eprintln!("pingora-proxy: cannot pick a port on {listen}: {e}");
                std::process::exit(1);
            });
    }

    let conf = ServerConf {
        threads: 1,
        work_stealing: false,
        // Shutdown at once: this is a benchmark peer, not a deployment.
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        upstream_keepalive_pool_size: 1024,
        pid_file: format!("/tmp/pingora-proxy-{}.pid", std::process::id()),
        upgrade_sock: format!("/tmp/pingora-proxy-{}.sock", std::process::id()),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let upstreams = LoadBalancer::try_from_iter([backend.as_str()]).unwrap_or_else(|e| {
        eprintln!("pingora-proxy: --backend {backend}: {e}");
        std::process::exit(2);
    });
    let mut service = http_proxy_service(&server.configuration, Proxy(Arc::new(upstreams)));
    service.add_tcp(&listen.to_string());
    server.add_service(service);

    // Readiness: the first connection the listener accepts.
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if TcpStream::connect(listen).is_ok() {
                eprintln!("pingora-proxy listening on {listen}");
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("pingora-proxy: {listen} never accepted a connection");
        std::process::exit(1);
    });
    server.run_forever();
}
