//! A gateway: answers each request by calling a backend HTTP service over a pooled
//! keep-alive connection and streaming its reply back upper-cased; 504 when the backend
//! does not answer in time, 502 when it cannot be reached. docs/EMBEDDING.md shows it.
//!
//! `gateway --listen 127.0.0.1:8080 --backend 127.0.0.1:9000 [--shards N]`
use std::time::Duration;

use ringmaster_protocols::http1::app::relay;
use ringmaster_protocols::http1::{
    App, Exchange, Fetch, Http, Limits, Request, Response, Upstream, UpstreamEvent, UpstreamRequest,
};
use ringmaster_runtime::Server;

struct Gateway {
    backend: Upstream,
}

impl App for Gateway {
    type Task = ();

    fn on_request(&mut self, req: &Request<'_>, ex: &mut Exchange<'_>) -> Option<()> {
        let call = UpstreamRequest::new(req.method(), req.target()).body(req.body());
        match ex.fetch(&self.backend, call) {
            Ok(_) => Some(()),
            Err(e) => {
                ex.respond(Response::text(e.status(), "backend unavailable\n"));
                None
            }
        }
    }

    fn on_upstream(&mut self, _: &mut (), _: Fetch, ev: UpstreamEvent<'_>, ex: &mut Exchange<'_>) {
        match ev {
            UpstreamEvent::Body(piece) => ex.send_chunk_owned(piece.to_ascii_uppercase()),
            other => relay(other, ex), // head, end, and errors as 502/504
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let need = |name: &str| arg(name).ok_or(format!("missing {name} ADDR"));
    let backend = Upstream::builder(need("--backend")?.parse()?)
        .response_timeout(Duration::from_secs(5))
        .build();
    let shards = arg("--shards").map_or(Ok(1), |n| n.parse())?;
    let server = Server::builder()
        .listen(need("--listen")?.parse()?)
        .shards(shards)
        .build()?;
    let running = server.start(move |_shard| {
        Http::new(
            Gateway {
                backend: backend.clone(),
            },
            Limits::default(),
        )
    })?;
    eprintln!("gateway listening on {}", running.local_addr());
    running.wait()?;
    Ok(())
}
