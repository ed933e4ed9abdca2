//! `axum-gateway`: the axum peer of ringmaster's gateway benchmark.
//!
//! Every request `METHOD PATH` becomes `GET PATH` to the backend over hyper-util's pooled
//! keep-alive HTTP/1.1 client; the answer carries the backend's status, `Content-Type`
//! and `Content-Length` (chunked when it had none) and its body upper-cased, streamed
//! frame by frame. No response head within 5 s: 504; any other backend error: 502.
//!
//! Usage: `axum-gateway --listen ADDR --backend HOST:PORT` (one thread; port 0 picks a
//! free one). When ready it prints `axum-gateway listening on ADDR` on stderr.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::uri::Authority;
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use axum::Router;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;

const USAGE: &str = "usage: axum-gateway --listen ADDR --backend HOST:PORT";
/// How long the backend may take to send its response head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
struct Gateway {
    client: Client<HttpConnector, Body>,
    backend: Authority,
}

async fn proxy(State(gw): State<Gateway>, uri: Uri) -> Response {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = Request::get(format!("http://{}{path}", gw.backend))
        .body(Body::empty())
        .expect("a valid request");
    let response = match tokio::time::timeout(HEAD_TIMEOUT, gw.client.request(request)).await {
        Ok(Ok(response)) => response,
        Ok(Err(_)) => return StatusCode::BAD_GATEWAY.into_response(),
        Err(_) => return StatusCode::GATEWAY_TIMEOUT.into_response(),
    };
    let (parts, body) = response.into_parts();
    let body =
        body.map_frame(|frame| frame.map_data(|data| Bytes::from(data.to_ascii_uppercase())));
    let mut out = Response::builder().status(parts.status);
    for name in [header::CONTENT_TYPE, header::CONTENT_LENGTH] {
        if let Some(value) = parts.headers.get(&name) {
            out = out.header(name, value);
        }
    }
    out.body(Body::new(body)).expect("a valid response")
}

fn parse_args() -> Result<(String, String), String> {
    let (mut listen, mut backend) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next(),
            "--backend" => backend = args.next(),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok((
        listen.ok_or("--listen ADDR is required")?,
        backend.ok_or("--backend HOST:PORT is required")?,
    ))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (listen, backend) = parse_args().map_err(|e| format!("{e}\n{USAGE}"))?;
    let backend: Authority = backend.parse()?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new()).build(connector);
    let app = Router::new()
        .fallback(proxy)
        .with_state(Gateway { client, backend });
    let listener = TcpListener::bind(&listen).await?;
    eprintln!("axum-gateway listening on {}", listener.local_addr()?);
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await?;
    Ok(())
}
