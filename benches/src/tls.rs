//! TLS for the TCP targets (`--tls`): a transport between the engine's socket bytes
//! and any [`Conversation`].
//!
//! [`Tls`] is itself a conversation wrapped around the target's: what the inner one
//! sends (its own bytes, its requests) goes into the rustls connection's plaintext
//! writer and comes out as records; what is fed in is read as records, and the
//! plaintext goes on to the inner conversation. Requests may be written before the
//! handshake is done: rustls holds them until it is (the first flight after `Finished`
//! carries them), so the engines need no TLS state of their own, and latency with
//! `--connect-per-request` includes the handshake. A handshake or record failure counts
//! as [`ErrorKind::Tls`], not as a bad response.
//!
//! Every new connection makes a full handshake unless `--tls-resume` keeps rustls'
//! session cache (tickets, session ids), so `--connect-per-request` measures full
//! handshakes by default. `--tls-insecure` accepts any certificate but still checks
//! the handshake signatures with the provider: the server must hold the key of the
//! certificate it shows, so the cost measured is the real one.

use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    AlertDescription, ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme,
};

use crate::proto::{BadResponse, Conversation};
use crate::stats::ErrorKind;

/// How a run's TLS connections are made (`--tls-*`).
#[derive(Debug)]
pub(crate) struct TlsPlan {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    /// The protocol the server must choose by ALPN (`h2` for `--h2`), if any.
    require_alpn: Option<Vec<u8>>,
}

/// Whether the one-line explanation of a wrong ALPN choice was printed (once a run).
static ALPN_EXPLAINED: AtomicBool = AtomicBool::new(false);

/// Which certificates the client accepts.
pub(crate) enum Trust<'a> {
    /// Those chaining to a root in this PEM file (`--tls-ca`).
    Roots(&'a Path),
    /// Any (`--tls-insecure`); handshake signatures are still verified.
    Any,
}

impl TlsPlan {
    /// The client configuration: `sni` names the server (and the certificate must be
    /// for it, unless `Trust::Any`), `alpn` is offered in order, `resume` keeps a
    /// session cache; `require_alpn`, the protocol the server must pick (the
    /// handshake then fails as a TLS error otherwise). Errors are one line for the user.
    pub(crate) fn new(
        trust: Trust<'_>,
        sni: &str,
        alpn: &[String],
        resume: bool,
        require_alpn: Option<&str>,
    ) -> Result<TlsPlan, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?;
        let mut config = match trust {
            Trust::Roots(path) => {
                let mut roots = rustls::RootCertStore::empty();
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(|e| format!("--tls-ca {}: {e}", path.display()))?;
                for c in certs {
                    let c = c.map_err(|e| format!("--tls-ca {}: {e}", path.display()))?;
                    roots
                        .add(c)
                        .map_err(|e| format!("--tls-ca {}: {e}", path.display()))?;
                }
                if roots.is_empty() {
                    return Err(format!(
                        "--tls-ca {}: no PEM certificate in the file",
                        path.display()
                    ));
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            Trust::Any => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        if !resume {
            config.resumption = Resumption::disabled();
        }
        let name = ServerName::try_from(sni.to_string())
            .map_err(|_| format!("--tls-sni `{sni}` is not a DNS name or an IP address"))?;
        Ok(TlsPlan {
            config: Arc::new(config),
            name,
            require_alpn: require_alpn.map(|p| p.as_bytes().to_vec()),
        })
    }
}

/// `--tls-insecure`: any certificate is accepted, but the handshake signature must be
/// valid for the certificate shown (with the provider's algorithms), so the server's
/// private-key work is still done and checked.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The conversation `C` over TLS, on one connection at a time.
pub(crate) struct Tls<C> {
    plan: Arc<TlsPlan>,
    /// This connection's TLS state (`None` only if rustls refused to start one).
    conn: Option<ClientConnection>,
    inner: C,
    /// The inner conversation's plaintext on its way into `conn`.
    plain: Vec<u8>,
    /// Why the last feed failed.
    fault: ErrorKind,
    /// The protocol chosen by ALPN was checked (when the plan requires one).
    alpn_checked: bool,
}

impl<C: Conversation> Tls<C> {
    /// `inner` over TLS as `plan` says.
    pub(crate) fn new(plan: Arc<TlsPlan>, inner: C) -> Self {
        Tls {
            plan,
            conn: None,
            inner,
            plain: Vec::new(),
            fault: ErrorKind::Tls,
            alpn_checked: false,
        }
    }

    /// Encrypts `self.plain` and appends every record rustls has to send to `out`.
    fn seal(&mut self, out: &mut Vec<u8>) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        if !self.plain.is_empty() {
            // Cannot fail: the buffer limit is off, so everything is taken (and held
            // until the handshake is done).
            let _ = conn.writer().write_all(&self.plain);
            self.plain.clear();
        }
        while conn.wants_write() {
            match conn.write_tls(out) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}

impl<C: Conversation> Conversation for Tls<C> {
    fn reset(&mut self) {
        self.inner.reset();
        self.plain.clear();
        self.fault = ErrorKind::Tls;
        self.alpn_checked = false;
        self.conn =
            ClientConnection::new(Arc::clone(&self.plan.config), self.plan.name.clone()).ok();
        if let Some(c) = self.conn.as_mut() {
            // Requests written during the handshake wait in rustls, however many the
            // pipeline holds.
            c.set_buffer_limit(None);
        }
    }

    fn poll_output(&mut self, out: &mut Vec<u8>) {
        self.inner.poll_output(&mut self.plain);
        self.seal(out);
    }

    fn ready(&self) -> bool {
        self.inner.ready()
    }

    fn push_request(&mut self, out: &mut Vec<u8>) {
        self.inner.push_request(&mut self.plain);
        self.seal(out);
    }

    fn feed(&mut self, mut data: &[u8]) -> Result<usize, BadResponse> {
        self.fault = ErrorKind::Tls;
        let Some(conn) = self.conn.as_mut() else {
            return Err(BadResponse);
        };
        let mut done = 0;
        while !data.is_empty() {
            // rustls takes at most one buffer's worth per call: loop until all is in.
            match conn.read_tls(&mut data) {
                Ok(0) | Err(_) => return Err(BadResponse),
                Ok(_) => {}
            }
            if let Err(e) = conn.process_new_packets() {
                // A server without the protocol we require may refuse the handshake.
                let refused = rustls::Error::AlertReceived(AlertDescription::NoApplicationProtocol);
                if let (Some(want), true) = (&self.plan.require_alpn, e == refused) {
                    explain_alpn(want, None);
                }
                return Err(BadResponse);
            }
            if !self.alpn_checked && !conn.is_handshaking() {
                self.alpn_checked = true;
                if let Some(want) = &self.plan.require_alpn {
                    if conn.alpn_protocol() != Some(want.as_slice()) {
                        explain_alpn(want, conn.alpn_protocol());
                        return Err(BadResponse);
                    }
                }
            }
            let mut reader = conn.reader();
            loop {
                // WouldBlock: no plaintext for now; empty: the server sent close_notify
                // (the engine sees the close that follows).
                let chunk = match reader.fill_buf() {
                    Ok(b) if !b.is_empty() => b,
                    _ => break,
                };
                let n = chunk.len();
                match self.inner.feed(chunk) {
                    Ok(k) => done += k,
                    Err(e) => {
                        self.fault = self.inner.fault();
                        return Err(e);
                    }
                }
                reader.consume(n);
            }
        }
        Ok(done)
    }

    fn fault(&self) -> ErrorKind {
        self.fault
    }

    fn out_of_order(&mut self) -> Option<&mut Vec<usize>> {
        self.inner.out_of_order()
    }
}

/// Says once on stderr that the server did not pick the protocol `want` (each such
/// connection also counts a TLS error).
fn explain_alpn(want: &[u8], got: Option<&[u8]>) {
    if ALPN_EXPLAINED.swap(true, Ordering::Relaxed) {
        return;
    }
    let want = String::from_utf8_lossy(want);
    let what = match got {
        Some(g) => format!(
            "chose `{}` by ALPN, not `{want}`",
            String::from_utf8_lossy(g)
        ),
        None => format!("accepted no protocol offered by ALPN (`{want}`)"),
    };
    eprintln!(
        "ringmaster load: the server {what}: it does not serve {want} over TLS (is HTTP/2 off on it?)"
    );
}
