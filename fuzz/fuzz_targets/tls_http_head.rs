//! The TLS-wrapped HTTP head path: bytes off the wire go through rustls (the same
//! server configuration `Tls<Http<..>>` builds) and whatever plaintext comes out goes to
//! the HTTP head parser. Mode 0 feeds the input as raw TLS records (garbage, truncated
//! or hostile handshakes); mode 1 completes a real handshake in memory and sends the
//! input as application data, so the head parser sees fuzzed requests that arrived
//! encrypted. Neither may panic.
#![no_main]

use std::io::{Read, Write};
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use ringmaster_protocols::http1::head::{header_buf, parse_head};
use ringmaster_protocols::http1::Limits;
use ringmaster_protocols::tls::rustls;
use ringmaster_protocols::tls::{TlsConfig, TlsOptions};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

struct Fixture {
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("rcgen");
        let cert = ck.cert.der().clone();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()));
        let server = TlsConfig::from_der(vec![cert.clone()], key, &TlsOptions::http1())
            .expect("server config")
            .server;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).expect("root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.alpn_protocols = vec![b"http/1.1".to_vec()];
        Fixture {
            server,
            client: Arc::new(client),
        }
    })
}

/// Moves what `from` has to send into `to`; false once either side fails.
fn pump(from: &mut rustls::Connection, to: &mut rustls::Connection) -> bool {
    let mut wire = Vec::new();
    while from.wants_write() {
        if from.write_tls(&mut wire).is_err() {
            return false;
        }
    }
    let mut rd = &wire[..];
    while !rd.is_empty() {
        if to.read_tls(&mut rd).is_err() || to.process_new_packets().is_err() {
            return false;
        }
    }
    true
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let Ok(server) = rustls::ServerConnection::new(f.server.clone()) else {
        return;
    };
    let mut server = rustls::Connection::Server(server);
    if mode & 1 == 0 {
        let mut rd = input;
        while !rd.is_empty() {
            if server.read_tls(&mut rd).is_err() || server.process_new_packets().is_err() {
                break;
            }
        }
    } else {
        let name = ServerName::try_from("localhost").expect("name");
        let Ok(client) = rustls::ClientConnection::new(f.client.clone(), name) else {
            return;
        };
        let mut client = rustls::Connection::Client(client);
        // A handshake takes a few flights; bounded.
        for _ in 0..8 {
            if !client.is_handshaking() && !server.is_handshaking() {
                break;
            }
            if !pump(&mut client, &mut server) || !pump(&mut server, &mut client) {
                return;
            }
        }
        if client.writer().write_all(input).is_err() || !pump(&mut client, &mut server) {
            return;
        }
    }
    let mut plain = Vec::new();
    let _ = server.reader().read_to_end(&mut plain);
    let mut headers = header_buf();
    if let Ok(Some(head)) = parse_head(&plain, &mut headers, &Limits::default()) {
        assert!(head.len() <= plain.len());
    }
});
