//! What an application says about an upstream: where it is, how many connections to
//! keep, how long to wait, whether to speak TLS to it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};

use crate::http1::limits::Limits;
use crate::tls::config::load_certs;
use crate::tls::TlsConfigError;

/// Upstream ids, unique in the process: a pool is found by the id of the `Upstream`
/// handle it serves.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// An upstream HTTP service an application calls with
/// [`Exchange::fetch`](crate::http1::Exchange::fetch): its address and how to pool
/// connections to it. A cheap handle (`Clone`, `Send`, `Sync`): make it once, give a
/// clone to each shard's application; each shard keeps its own pool for it.
#[derive(Debug, Clone)]
pub struct Upstream(Arc<Spec>);

/// The settings behind an [`Upstream`].
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub(crate) id: u64,
    pub(crate) addr: SocketAddr,
    pub(crate) host: String,
    pub(crate) max_idle: usize,
    pub(crate) max_conns: usize,
    pub(crate) max_queued: usize,
    pub(crate) idle_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) response_timeout: Duration,
    pub(crate) limits: Limits,
    pub(crate) tls: Option<UpstreamTls>,
    pub(crate) sources: Vec<std::net::IpAddr>,
    pub(crate) health_check: Option<(String, Duration)>,
}

impl Upstream {
    /// An upstream at `addr` with the default settings (see [`UpstreamBuilder`]).
    pub fn new(addr: SocketAddr) -> Self {
        Self::builder(addr).build()
    }

    /// Settings for an upstream at `addr`, starting from the defaults.
    pub fn builder(addr: SocketAddr) -> UpstreamBuilder {
        UpstreamBuilder {
            spec: Spec {
                id: 0,
                addr,
                host: addr.to_string(),
                max_idle: 256,
                max_conns: 1024,
                max_queued: 1024,
                idle_timeout: Duration::from_secs(30),
                connect_timeout: Duration::from_secs(5),
                response_timeout: Duration::from_secs(30),
                limits: Limits {
                    max_body: u64::MAX,
                    ..Limits::default()
                },
                tls: None,
                sources: Vec::new(),
                health_check: None,
            },
        }
    }

    /// The upstream's address.
    pub fn addr(&self) -> SocketAddr {
        self.0.addr
    }

    /// The `Host` its requests carry unless they name one.
    pub fn host(&self) -> &str {
        &self.0.host
    }

    pub(crate) fn spec(&self) -> &Arc<Spec> {
        &self.0
    }
}

/// Settings for an [`Upstream`]; every limit is per shard.
#[derive(Debug, Clone)]
pub struct UpstreamBuilder {
    spec: Spec,
}

impl UpstreamBuilder {
    /// The `Host` field of requests that do not name one. Default: the address.
    pub fn host(mut self, host: &str) -> Self {
        self.spec.host = host.to_owned();
        self
    }

    /// Idle keep-alive connections kept for reuse (the most recently used is handed
    /// out first). Default 256. Connections past it that go idle are kept 2 s (a burst
    /// that follows reuses them) and then closed; 0 keeps none.
    pub fn max_idle(mut self, n: usize) -> Self {
        self.spec.max_idle = n;
        self
    }

    /// Connections open at once (idle, busy or connecting); requests past it wait in
    /// the queue. Default 1024.
    pub fn max_conns(mut self, n: usize) -> Self {
        self.spec.max_conns = n.max(1);
        self
    }

    /// Requests that may wait for a connection; past it a request fails at once with
    /// [`UpstreamError::QueueFull`](super::UpstreamError::QueueFull). Default 1024.
    pub fn max_queued(mut self, n: usize) -> Self {
        self.spec.max_queued = n;
        self
    }

    /// How long an idle pooled connection is kept. Default 30 s; keep it below the
    /// upstream's own keep-alive timeout, so that the pool closes first.
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.spec.idle_timeout = d;
        self
    }

    /// How long a connect may take. Default 5 s.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.spec.connect_timeout = d;
        self
    }

    /// How long after a request is sent its response head must have arrived.
    /// Default 30 s.
    pub fn response_timeout(mut self, d: Duration) -> Self {
        self.spec.response_timeout = d;
        self
    }

    /// Limits on responses: head size and fields, body size (streamed, so the default
    /// has no bound on the body).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.spec.limits = limits;
        self
    }

    /// Local addresses to connect from, in turn (each with its port picked at connect
    /// time): a proxy with more upstream connections than one address has ephemeral
    /// ports (about 28,000 per destination) spreads them over several. A source out of
    /// ports fails that connect (`EADDRNOTAVAIL`, counted as `source_exhausted`); the
    /// request hears of it as a connect error. Default: none (the kernel's choice).
    pub fn sources(mut self, sources: Vec<std::net::IpAddr>) -> Self {
        self.spec.sources = sources;
        self
    }

    /// Checks the upstream every `every` with `GET path` over its pool (active health):
    /// it is down while the last check failed (no answer within the response timeout, or
    /// a status outside 2xx and 3xx), which [`Exchange::upstream_down`](
    /// crate::http1::Exchange::upstream_down) tells a balancer. Checks run on shards whose
    /// `Http` has the upstream registered ([`Http::register_upstream`](
    /// crate::http1::Http::register_upstream)), from the start. Default: none.
    pub fn health_check(mut self, path: &str, every: Duration) -> Self {
        self.spec.health_check = Some((path.to_owned(), every));
        self
    }

    /// Speaks TLS to the upstream.
    pub fn tls(mut self, tls: UpstreamTls) -> Self {
        self.spec.tls = Some(tls);
        self
    }

    /// The upstream.
    pub fn build(mut self) -> Upstream {
        self.spec.id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        Upstream(Arc::new(self.spec))
    }
}

/// TLS towards an upstream: a rustls client configuration and the name the upstream's
/// certificate must carry (also sent as SNI).
#[derive(Debug, Clone)]
pub struct UpstreamTls {
    pub(crate) config: Arc<ClientConfig>,
    pub(crate) name: ServerName<'static>,
}

impl UpstreamTls {
    /// From a rustls configuration made by the application.
    pub fn new(config: Arc<ClientConfig>, server_name: &str) -> Result<Self, TlsConfigError> {
        let name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| TlsConfigError::BadServerName(server_name.to_owned()))?;
        Ok(UpstreamTls { config, name })
    }

    /// Trusting the CA certificates in the PEM file at `path`.
    pub fn with_ca_file(path: &Path, server_name: &str) -> Result<Self, TlsConfigError> {
        let mut roots = RootCertStore::empty();
        for cert in load_certs(path)? {
            roots.add(cert).map_err(|e| rustls_err(path.display(), e))?;
        }
        Self::with_roots(roots, server_name)
    }

    /// Trusting the platform's CA certificates (the system store, e.g.
    /// `/etc/ssl/certs`).
    pub fn with_platform_roots(server_name: &str) -> Result<Self, TlsConfigError> {
        let found = rustls_native_certs::load_native_certs();
        let mut roots = RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            return Err(rustls_err(
                "the platform's CA store",
                "no usable CA certificate",
            ));
        }
        Self::with_roots(roots, server_name)
    }

    /// Without checking the upstream's certificate at all: for a test bed or a
    /// network where the upstream's certificate cannot be checked. Anyone on the path
    /// can read and change the traffic; the name is still sent as SNI.
    pub fn without_verification(server_name: &str) -> Result<Self, TlsConfigError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| rustls_err("the upstream TLS configuration", e))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth();
        Self::new(Arc::new(config), server_name)
    }

    fn with_roots(roots: RootCertStore, server_name: &str) -> Result<Self, TlsConfigError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| rustls_err("the upstream TLS configuration", e))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Self::new(Arc::new(config), server_name)
    }
}

fn rustls_err(what: impl std::fmt::Display, detail: impl std::fmt::Display) -> TlsConfigError {
    TlsConfigError::Rustls {
        what: what.to_string(),
        detail: detail.to_string(),
    }
}

/// Accepts any certificate ([`UpstreamTls::without_verification`]); signatures are still
/// checked, so the session is at least with whoever holds the certificate's key.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
