//! TLS for every server: the `--tls-*` flags, certificate loading, the development
//! certificate, and the one function that runs a server with or without TLS.
//!
//! `--tls-cert FILE --tls-key FILE` serve PEM files; `--tls-self-signed` makes a
//! development certificate for `localhost`, `127.0.0.1` and `::1` with rcgen (ECDSA
//! P-256, valid from yesterday for 90 days, signed by a throwaway self-signed CA made
//! with it) and writes the CA as PEM where the startup line says, so a client can trust
//! exactly it (`curl --cacert FILE`). Any problem with the
//! files is one line naming the file and what is wrong, and exit status 1.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use ringmaster_protocols::tls::rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer,
};
use ringmaster_protocols::tls::{Tls, TlsConfig, TlsOptions};
use ringmaster_runtime::{Handler, ServerBuilder};

use crate::cli::run_server;

/// TLS flags, common to every TCP server mode.
#[derive(Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// Serve TLS with this PEM certificate chain (leaf first); needs --tls-key
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key",
        conflicts_with = "tls_self_signed"
    )]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Serve TLS with a development certificate for localhost, 127.0.0.1 and ::1, made at startup; its PEM goes to --tls-self-signed-out (the startup line names the file)
    #[arg(long)]
    pub tls_self_signed: bool,

    /// Where --tls-self-signed writes its certificate [default: ringmaster-<pid>-cert.pem in the temp dir]
    #[arg(long, value_name = "FILE", requires = "tls_self_signed")]
    pub tls_self_signed_out: Option<PathBuf>,

    /// Seconds a TLS handshake may take before the connection is closed
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub tls_handshake_timeout: f64,
}

/// A loaded TLS configuration, and what to say about it at startup.
#[derive(Debug, Clone)]
pub struct LoadedTls {
    /// The configuration every shard shares.
    pub config: TlsConfig,
    /// Where the self-signed certificate was written, if one was made.
    pub self_signed: Option<PathBuf>,
}

impl TlsArgs {
    /// Loads (or makes) the certificate. `Ok(None)`: serve plaintext. On error the
    /// one-line message is already printed and the exit code is returned.
    pub fn load(&self, mut opts: TlsOptions) -> Result<Option<LoadedTls>, ExitCode> {
        let t = self.tls_handshake_timeout;
        opts.handshake_timeout = Duration::from_secs_f64(if t.is_finite() {
            t.clamp(0.01, 3600.0)
        } else {
            10.0
        });
        let fail = |msg: String| {
            eprintln!("ringmaster: {msg}");
            ExitCode::from(1)
        };
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            let config =
                TlsConfig::from_pem_files(cert, key, &opts).map_err(|e| fail(e.to_string()))?;
            return Ok(Some(LoadedTls {
                config,
                self_signed: None,
            }));
        }
        if !self.tls_self_signed {
            return Ok(None);
        }
        let path = self.tls_self_signed_out.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!("ringmaster-{}-cert.pem", std::process::id()))
        });
        let (cert, key) = self_signed(&path).map_err(fail)?;
        let config =
            TlsConfig::from_der(vec![cert], key, &opts).map_err(|e| fail(e.to_string()))?;
        Ok(Some(LoadedTls {
            config,
            self_signed: Some(path),
        }))
    }
}

/// Makes the development certificates and writes the CA's PEM to `path`.
///
/// Two certificates, as a real deployment has: a self-signed CA (the file clients trust)
/// and the server's leaf signed by it, with the extensions strict verifiers require
/// (authority key identifier, `serverAuth`, not a CA), both valid from yesterday for 90
/// days. Scanners following Mozilla's profile reject a leaf that is its own trust anchor.
fn self_signed(path: &Path) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), String> {
    let err = |e: rcgen::Error| format!("cannot make a self-signed certificate: {e}");
    let day = 86_400;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_date(now.saturating_sub(day));
    let not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = civil_date(now + 90 * day);
    let not_after = rcgen::date_time_ymd(y, m, d);

    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "ringmaster development CA");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = not_before;
    ca.not_after = not_after;
    let ca_key = rcgen::KeyPair::generate().map_err(err)?;
    let ca_cert = ca.self_signed(&ca_key).map_err(err)?;

    let names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let mut leaf = rcgen::CertificateParams::new(names).map_err(err)?;
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    leaf.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    leaf.use_authority_key_identifier_extension = true;
    leaf.not_before = not_before;
    leaf.not_after = not_after;
    let key = rcgen::KeyPair::generate().map_err(err)?;
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key).map_err(err)?;

    std::fs::write(path, ca_cert.pem()).map_err(|e| {
        format!(
            "{}: cannot write the self-signed certificate: {e}",
            path.display()
        )
    })?;
    Ok((
        cert.der().clone(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    ))
}

/// (year, month, day) of a Unix time (UTC), Howard Hinnant's `civil_from_days`.
fn civil_date(secs: u64) -> (i32, u8, u8) {
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let y = (yoe + era * 400 + i64::from(m <= 2)) as i32;
    (y, m, d)
}

/// Runs a server, under TLS if the flags ask for it: `factory` makes the plaintext
/// protocol, wrapped in [`Tls`] per shard when TLS is on. `opts` says what TLS offers
/// (ALPN: [`TlsOptions::http1`] for HTTP and WebSocket); `metrics` is
/// [`run_server`]'s.
pub fn run_maybe_tls<H, F>(
    mode: &str,
    builder: ServerBuilder,
    tls: &TlsArgs,
    opts: TlsOptions,
    metrics: Option<TcpListener>,
    factory: F,
) -> ExitCode
where
    H: Handler,
    F: Fn(usize) -> H + Send + Sync + 'static,
{
    match tls.load(opts) {
        Err(code) => code,
        Ok(None) => run_server(mode, builder, metrics, factory),
        Ok(Some(loaded)) => {
            let mode = match &loaded.self_signed {
                Some(p) => format!(
                    "{mode} over TLS (self-signed certificate in {})",
                    p.display()
                ),
                None => format!("{mode} over TLS"),
            };
            let config = loaded.config;
            run_server(&mode, builder, metrics, move |shard| {
                Tls::new(factory(shard), config.clone())
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::civil_date;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(951_782_400), (2000, 2, 29));
        assert_eq!(civil_date(1_767_225_599), (2025, 12, 31));
    }
}
