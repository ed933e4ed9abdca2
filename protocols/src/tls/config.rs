//! Loading a certificate and key, and building the rustls server configuration.
//!
//! This module owns every decision about what the server offers: TLS 1.3 and 1.2, the
//! `ring` provider's cipher suites and key exchange groups (all ECDHE with AEAD ciphers,
//! within Mozilla's "intermediate" profile), ALPN, stateless session tickets and the
//! session-ID cache. Errors name the file and the problem in one line, so the binary can
//! print them as they are.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::ServerSessionMemoryCache;
use rustls::ServerConfig;

/// Why a certificate or key could not be used. Each displays as one line naming the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// The file is missing or unreadable.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is not valid PEM.
    #[error("{path}: not valid PEM: {detail}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        detail: String,
    },
    /// The certificate file holds no `CERTIFICATE` section.
    #[error("{0}: no certificate found (expected a PEM 'BEGIN CERTIFICATE' section)")]
    NoCertificate(PathBuf),
    /// The key file holds no private key section.
    #[error("{0}: no private key found (expected a PEM 'BEGIN PRIVATE KEY' section, PKCS#8, PKCS#1 or SEC1)")]
    NoKey(PathBuf),
    /// The key is not the certificate's.
    #[error("{key}: the private key does not match the certificate in {cert}")]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused the certificate or key for another reason.
    #[error("{what}: unusable: {detail}")]
    Rustls {
        /// The file(s) concerned.
        what: String,
        /// What rustls said.
        detail: String,
    },
    /// A name an upstream's certificate must carry is neither a DNS name nor an IP
    /// address.
    #[error("{0}: not a valid server name (a DNS name or an IP address)")]
    BadServerName(String),
}

/// What the TLS layer offers, besides the certificate.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    /// ALPN protocols, most preferred first (e.g. `http/1.1`); empty: no ALPN. A client
    /// offering ALPN with none of these gets a `no_application_protocol` alert.
    pub alpn: Vec<Vec<u8>>,
    /// A handshake not finished this long after the connection opened is closed.
    pub handshake_timeout: Duration,
    /// Offer session resumption: TLS 1.3 tickets and TLS 1.2 tickets, keys rotated by
    /// rustls' ticketer, plus a TLS 1.2 session-ID cache.
    pub resumption: bool,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            alpn: Vec::new(),
            handshake_timeout: Duration::from_secs(10),
            resumption: true,
        }
    }
}

impl TlsOptions {
    /// The defaults with ALPN `http/1.1` (for HTTP and WebSocket servers).
    pub fn http1() -> Self {
        TlsOptions {
            alpn: vec![b"http/1.1".to_vec()],
            ..Self::default()
        }
    }
    /// HTTP/2 and HTTP/1.1 by ALPN, `h2` preferred (RFC 9113 §3.2): a client that
    /// picks `h2` starts with the HTTP/2 preface, which [`Http`](crate::http1::Http)
    /// serves as HTTP/2 when it has an HTTP/2 configuration.
    pub fn http() -> Self {
        TlsOptions {
            alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            ..Self::default()
        }
    }
}

/// A ready server configuration, shared by every shard.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// The rustls configuration (cheap to clone: an `Arc`).
    pub server: Arc<ServerConfig>,
    /// Handshake deadline.
    pub handshake_timeout: Duration,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path).map_err(|source| TlsConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

fn pem_err(path: &Path, e: rustls::pki_types::pem::Error) -> TlsConfigError {
    TlsConfigError::Pem {
        path: path.to_owned(),
        detail: e.to_string(),
    }
}

/// Reads a PEM certificate chain (leaf first) from `path`.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(path, e))?;
    if certs.is_empty() {
        return Err(TlsConfigError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

/// Reads the first PEM private key (PKCS#8, PKCS#1 or SEC1) from `path`.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    let pem = read(path)?;
    match PrivateKeyDer::from_pem_slice(&pem) {
        Ok(k) => Ok(k),
        Err(rustls::pki_types::pem::Error::NoItemsFound) => {
            Err(TlsConfigError::NoKey(path.to_owned()))
        }
        Err(e) => Err(pem_err(path, e)),
    }
}

impl TlsConfig {
    /// Loads `cert` and `key` (PEM files) and builds the configuration.
    pub fn from_pem_files(
        cert: &Path,
        key: &Path,
        opts: &TlsOptions,
    ) -> Result<Self, TlsConfigError> {
        let certs = load_certs(cert)?;
        let k = load_key(key)?;
        Self::from_der(certs, k, opts).map_err(|e| match e {
            TlsConfigError::KeyMismatch { .. } => TlsConfigError::KeyMismatch {
                cert: cert.to_owned(),
                key: key.to_owned(),
            },
            TlsConfigError::Rustls { detail, .. } => TlsConfigError::Rustls {
                what: format!("{} / {}", cert.display(), key.display()),
                detail,
            },
            e => e,
        })
    }

    /// Builds the configuration from a DER chain and key already in memory.
    pub fn from_der(
        certs: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        opts: &TlsOptions,
    ) -> Result<Self, TlsConfigError> {
        let rustls_err = |e: rustls::Error| match e {
            rustls::Error::InconsistentKeys(_) => TlsConfigError::KeyMismatch {
                cert: PathBuf::from("certificate"),
                key: PathBuf::from("key"),
            },
            e => TlsConfigError::Rustls {
                what: "certificate/key".into(),
                detail: e.to_string(),
            },
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(rustls_err)?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(rustls_err)?;
        config.alpn_protocols = opts.alpn.clone();
        if opts.resumption {
            config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(rustls_err)?;
            config.session_storage = ServerSessionMemoryCache::new(4096);
        } else {
            config.send_tls13_tickets = 0;
            config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        }
        Ok(TlsConfig {
            server: Arc::new(config),
            handshake_timeout: opts.handshake_timeout,
        })
    }
}
