//! `hyper-h2`: the tokio + hyper peer of ringmaster's HTTP/2 benchmark.
//!
//! An idiomatic hyper 1.x HTTP/2 server (its `http2` feature, no HTTP/1.1) on tokio's
//! current-thread runtime: one task per connection, `TCP_NODELAY` on every accepted
//! socket. Cleartext by default, h2c with prior knowledge (the client starts with the
//! preface, as `ringmaster load --h2` and h2load do); with `--tls-cert`/`--tls-key`, h2
//! over TLS (rustls on ring, ALPN offering `h2` only, so a client that cannot speak it
//! fails its handshake instead of being served something else). Routes, the same as
//! `hyper-plaintext`'s: `GET /plaintext` → `Hello, World!` (text/plain); `GET /bytes/N`
//! → N bytes (N ≤ 16 MiB, sliced from one shared buffer, so no per-request fill: the
//! large-body workload); anything else 404. hyper adds `Date` and `content-length`.
//!
//! At most 128 concurrent streams per connection, the figure ringmaster and nginx
//! advertise (hyper's own default is higher), so every server runs the same shape.
//!
//! Usage: `hyper-h2 [--listen ADDR] [--tls-cert PEM --tls-key PEM]` (default
//! `127.0.0.1:8082`; port 0 picks a free one). When ready it prints
//! `hyper-h2 listening on ADDR` on stderr.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE, SERVER};
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

const USAGE: &str =
    "usage: hyper-h2 [--listen ADDR] [--tls-cert PEM --tls-key PEM]   (default 127.0.0.1:8082)";

/// Streams a client may have open at once on one connection (SETTINGS_MAX_CONCURRENT_STREAMS).
const MAX_STREAMS: u32 = 128;

/// Largest `/bytes/N` body.
const MAX_BYTES: usize = 16 << 20;

/// The command line.
struct Args {
    listen: SocketAddr,
    /// Certificate chain and key (PEM files), for h2 over TLS.
    tls: Option<(String, String)>,
}

fn parse_args() -> Result<Args, String> {
    let mut listen = String::from("127.0.0.1:8082");
    let (mut cert, mut key) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next().ok_or("--listen needs an address")?,
            "--tls-cert" => cert = Some(args.next().ok_or("--tls-cert needs a PEM file")?),
            "--tls-key" => key = Some(args.next().ok_or("--tls-key needs a PEM file")?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let tls = match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => return Err("--tls-cert and --tls-key go together".into()),
    };
    let listen = listen
        .parse()
        .map_err(|e| format!("bad --listen address `{listen}`: {e} (expected IP:PORT)"))?;
    Ok(Args { listen, tls })
}

/// The TLS acceptor for `cert` and `key`: rustls on ring (the provider ringmaster uses),
/// ALPN `h2` only.
fn tls_acceptor(cert: &str, key: &str) -> Result<TlsAcceptor, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read the certificates in {cert}: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read the private key in {key}: {e}"))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| format!("bad certificate or key: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The body `/bytes/N` slices from: filled once, shared by every response (cheap clones).
fn bytes_body() -> &'static Bytes {
    static BODY: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
    BODY.get_or_init(|| {
        Bytes::from(
            (0..MAX_BYTES)
                .map(|i| b'a' + (i % 26) as u8)
                .collect::<Vec<u8>>(),
        )
    })
}

async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path();
    let bytes_len = path
        .strip_prefix("/bytes/")
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| *n <= MAX_BYTES);
    let mut res = if let Some(n) = bytes_len {
        let mut r = Response::new(Full::new(bytes_body().slice(..n)));
        r.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        r
    } else if path == "/plaintext" {
        let mut r = Response::new(Full::new(Bytes::from_static(b"Hello, World!")));
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        r
    } else {
        let mut r = Response::new(Full::new(Bytes::from_static(b"Not Found\n")));
        *r.status_mut() = StatusCode::NOT_FOUND;
        r
    };
    res.headers_mut()
        .insert(SERVER, HeaderValue::from_static("hyper"));
    Ok(res)
}

/// Serves one connection (after its TLS handshake, if any) until the client leaves.
async fn serve(stream: TcpStream, tls: Option<TlsAcceptor>) {
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.max_concurrent_streams(MAX_STREAMS);
    let _ = match tls {
        Some(acceptor) => match acceptor.accept(stream).await {
            Ok(s) => {
                h2.serve_connection(TokioIo::new(s), service_fn(handle))
                    .await
            }
            Err(_) => return, // a failed handshake is the client's problem, not ours
        },
        None => {
            h2.serve_connection(TokioIo::new(stream), service_fn(handle))
                .await
        }
    };
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("hyper-h2: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let tls = match &args.tls {
        Some((cert, key)) => match tls_acceptor(cert, key) {
            Ok(a) => Some(a),
            Err(e) => {
                eprintln!("hyper-h2: {e}");
                return ExitCode::from(1);
            }
        },
        None => None,
    };
    let listener = match TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("hyper-h2: cannot listen on {}: {e}", args.listen);
            return ExitCode::from(1);
        }
    };
    match listener.local_addr() {
        Ok(a) => eprintln!("hyper-h2 listening on {a}"),
        Err(e) => {
            eprintln!("hyper-h2: {e}");
            return ExitCode::from(1);
        }
    }
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: say so and keep accepting.
                eprintln!("hyper-h2: accept: {e}");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve(stream, tls.clone()));
    }
}
