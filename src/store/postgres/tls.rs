//! TLS to PostgreSQL, with rustls (the same rustls and the same `ring`
//! crypto provider as pagerd's HTTPS and SMTP clients).
//!
//! `store.tls` picks one of three modes ([`StoreTls`]):
//! - `disable`: plaintext. The default for a loopback host (`localhost`,
//!   `127.0.0.0/8`, `::1`) and a Unix socket.
//! - `require`: encrypted, the server's certificate *not* verified (libpq's
//!   `sslmode=require`): safe from passive eavesdropping only, not from an
//!   active attacker who can answer in the server's place.
//! - `verify-full`: encrypted, the certificate chain verified up to a root
//!   in `store.ca_file` (or, without it, the Mozilla roots bundled through
//!   `webpki-roots`, as for pagerd's HTTPS calls), and the certificate must
//!   be for the host named in `store.url`. The default for any other host.
//!
//! Neither mode that wants TLS ever falls back to plaintext: a server that
//! does not offer TLS is an error.

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::config::Host;
use tokio_postgres_rustls::MakeRustlsConnect;

pub use crate::config::StoreTls;

/// `store.ca_file` cannot be used. The message names the file; the caller
/// names the key.
#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    /// The file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A `CERTIFICATE` block is broken.
    #[error("{} is not a valid PEM bundle: {reason}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What the PEM reader said.
        reason: String,
    },
    /// No `CERTIFICATE` block at all (a DER file, a key, an empty file).
    #[error(
        "{} holds no PEM certificate (expected one or more \"-----BEGIN CERTIFICATE-----\" blocks)",
        path.display()
    )]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A certificate that parses as PEM but not as an X.509 trust anchor.
    #[error("{}: certificate {index} cannot be a trust anchor: {reason}", path.display())]
    Anchor {
        /// The file.
        path: PathBuf,
        /// 1-based position in the bundle.
        index: usize,
        /// What rustls said.
        reason: String,
    },
}

/// Reads a PEM bundle of CA certificates (other PEM blocks, like comments
/// or keys, are skipped).
pub fn load_ca_file(path: &Path) -> Result<RootCertStore, CaFileError> {
    let bytes = std::fs::read(path).map_err(|source| CaFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut roots = RootCertStore::empty();
    for (i, cert) in CertificateDer::pem_slice_iter(&bytes).enumerate() {
        let cert = cert.map_err(|e| CaFileError::Pem {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        roots.add(cert).map_err(|e| CaFileError::Anchor {
            path: path.to_path_buf(),
            index: i + 1,
            reason: e.to_string(),
        })?;
    }
    if roots.is_empty() {
        return Err(CaFileError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(roots)
}

/// Splits `sslmode=…` off a `postgres://` URL's query: returns the URL
/// without it (tokio-postgres does not know `verify-full`) and its value.
/// The last one wins when repeated, as in libpq.
pub fn split_sslmode(url: &str) -> (String, Option<String>) {
    let Some((head, rest)) = url.split_once('?') else {
        return (url.to_string(), None);
    };
    let (query, fragment) = match rest.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (rest, None),
    };
    let mut mode = None;
    let mut kept = Vec::new();
    for param in query.split('&') {
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        if percent_decode(key) == "sslmode" {
            mode = Some(percent_decode(value));
        } else {
            kept.push(param);
        }
    }
    let mut out = head.to_string();
    if !kept.is_empty() {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    (out, mode)
}

/// `%xx` decoding, enough for an option name or an `sslmode` value.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).copied(), b.get(i + 2).copied()) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                let v = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a URL's `sslmode` asks for, in `store.tls` terms. `Err` explains a
/// value pagerd does not take.
pub fn from_sslmode(value: &str) -> Result<StoreTls, String> {
    match value {
        "disable" => Ok(StoreTls::Disable),
        "require" => Ok(StoreTls::Require),
        "verify-full" => Ok(StoreTls::VerifyFull),
        "prefer" | "allow" => Err(format!(
            "sslmode={value} falls back to plaintext without saying so; remove it and set store.tls \
             (\"verify-full\", \"require\" or \"disable\")"
        )),
        "verify-ca" => Err(
            "sslmode=verify-ca is not supported (it trusts any certificate the CA signed, for any host); \
             remove it and set store.tls = \"verify-full\""
                .to_string(),
        ),
        _ => Err(
            "sslmode must be one of disable, require, verify-full (better: remove it and set store.tls)"
                .to_string(),
        ),
    }
}

/// True when every host of `config` is on this machine: `localhost`, a
/// loopback address, or a Unix socket (and every `hostaddr` is loopback).
pub fn is_local(config: &tokio_postgres::Config) -> bool {
    let loopback = |name: &str| {
        name.eq_ignore_ascii_case("localhost")
            || name
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    };
    config.get_hosts().iter().all(|h| match h {
        Host::Tcp(name) => loopback(name),
        Host::Unix(_) => true,
    }) && config.get_hostaddrs().iter().all(IpAddr::is_loopback)
}

/// True when one of the hosts of `config` is a Unix socket.
pub fn has_unix_socket(config: &tokio_postgres::Config) -> bool {
    config
        .get_hosts()
        .iter()
        .any(|h| matches!(h, Host::Unix(_)))
}

/// The crypto provider pagerd's other rustls clients use (reqwest and
/// lettre are built with `ring`), so no second one is compiled in.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Why no TLS connector could be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// `store.ca_file` cannot be used.
    #[error("store.ca_file: {0}")]
    CaFile(#[from] CaFileError),
    /// rustls refused the settings (not expected with its defaults).
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The connector for `mode` (`None` for `disable`): `verify-full` trusts
/// the roots in `ca_file`, or the bundled Mozilla roots without it;
/// `require` trusts any certificate but still checks that the server holds
/// its key (so the session keys are really shared with whoever answered).
pub fn connector(
    mode: StoreTls,
    ca_file: Option<&Path>,
) -> Result<Option<MakeRustlsConnect>, TlsSetupError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let config = match mode {
        StoreTls::Disable => return Ok(None),
        StoreTls::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth(),
        StoreTls::VerifyFull => {
            let roots = match ca_file {
                Some(path) => load_ca_file(path)?,
                None => RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                },
            };
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(Some(MakeRustlsConnect::new(config)))
}

/// `store.tls = "require"`: any certificate is accepted (no identity
/// check), while handshake signatures are still verified with the
/// certificate's key.
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
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
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

/// Where `verify-full` takes its roots from, for messages.
pub fn roots_source(ca_file: Option<&Path>) -> String {
    match ca_file {
        Some(path) => format!("store.ca_file ({})", path.display()),
        None => "the bundled Mozilla roots (no store.ca_file)".to_string(),
    }
}

/// Explains a failed connection when TLS is why: an untrusted or
/// misnamed certificate, or a server without TLS. `None` otherwise.
pub fn explain(
    error: &(dyn std::error::Error + 'static),
    mode: StoreTls,
    ca_file: Option<&Path>,
) -> Option<String> {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.to_string() == "server does not support TLS" {
            return Some(format!(
                "the server does not offer TLS (ssl = off in its postgresql.conf) and store.tls = \"{mode}\" \
                 never falls back to plaintext; turn ssl on in the server, or set store.tls = \"disable\" \
                 if the network to it is trusted"
            ));
        }
        let rustls = e.downcast_ref::<rustls::Error>().or_else(|| {
            e.downcast_ref::<io::Error>()
                .and_then(io::Error::get_ref)
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(rustls::Error::InvalidCertificate(cert)) = rustls {
            return Some(certificate_problem(cert, ca_file));
        }
        next = e.source();
    }
    None
}

/// One sentence for a refused server certificate.
fn certificate_problem(cert: &CertificateError, ca_file: Option<&Path>) -> String {
    let roots = roots_source(ca_file);
    match cert {
        CertificateError::UnknownIssuer | CertificateError::BadSignature => {
            let fix = match ca_file {
                Some(_) => "put the CA that signed the server's certificate in that file",
                None => {
                    "set store.ca_file to the PEM file of the CA that signed the server's certificate"
                }
            };
            format!(
                "store.tls = \"verify-full\": the server's certificate is not signed by a CA in {roots}; {fix}"
            )
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "store.tls = \"verify-full\": the server's certificate is not for the host in store.url; \
             connect by a name the certificate lists, or reissue it for this name"
                .to_string()
        }
        _ => format!(
            "store.tls = \"verify-full\": the server's certificate was refused (trusted roots: {roots})"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_is_split_off_the_url() {
        let (url, mode) = split_sslmode("postgres://u:p%40ss@h:5/db?sslmode=verify-full");
        assert_eq!(url, "postgres://u:p%40ss@h:5/db");
        assert_eq!(mode.as_deref(), Some("verify-full"));
        let (url, mode) =
            split_sslmode("postgres://h/db?application_name=x&sslmode=require&connect_timeout=3");
        assert_eq!(url, "postgres://h/db?application_name=x&connect_timeout=3");
        assert_eq!(mode.as_deref(), Some("require"));
        let (url, mode) = split_sslmode("postgres://h/db?%73slmode=disable");
        assert_eq!(url, "postgres://h/db");
        assert_eq!(mode.as_deref(), Some("disable"));
        let (url, mode) = split_sslmode("postgres://h/db");
        assert_eq!((url.as_str(), mode), ("postgres://h/db", None));
    }

    #[test]
    fn url_sslmodes_map_to_store_tls_or_are_refused() {
        assert_eq!(from_sslmode("disable"), Ok(StoreTls::Disable));
        assert_eq!(from_sslmode("require"), Ok(StoreTls::Require));
        assert_eq!(from_sslmode("verify-full"), Ok(StoreTls::VerifyFull));
        for weak in ["prefer", "allow", "verify-ca", "bogus"] {
            assert!(from_sslmode(weak).is_err(), "{weak}");
        }
    }

    #[test]
    fn loopback_hosts_and_sockets_are_local() {
        let local = |url: &str| is_local(&url.parse::<tokio_postgres::Config>().unwrap());
        assert!(local("postgres://u@127.0.0.1/db"));
        assert!(local("postgres://u@127.0.0.2:5433/db"));
        assert!(local("postgres://u@localhost/db"));
        assert!(local("postgres://u@LOCALHOST/db"));
        assert!(local("postgres://u@[::1]:5432/db"));
        assert!(local("postgres://u@%2Fvar%2Frun%2Fpostgresql/db"));
        assert!(!local("postgres://u@db.internal/db"));
        assert!(!local("postgres://u@10.0.0.5/db"));
        assert!(!local("postgres://u@localhost,db.internal/db"));
        assert!(!local("postgres://u@localhost/db?hostaddr=10.0.0.5"));
    }

    #[test]
    fn ca_file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = load_ca_file(&missing).unwrap_err().to_string();
        assert!(
            e.contains("missing.pem") && e.contains("cannot read"),
            "{e}"
        );

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "just text\n").unwrap();
        let e = load_ca_file(&empty).unwrap_err().to_string();
        assert!(
            e.contains("empty.pem") && e.contains("no PEM certificate"),
            "{e}"
        );

        let broken = dir.path().join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\nnot base64!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = load_ca_file(&broken).unwrap_err().to_string();
        assert!(e.contains("broken.pem"), "{e}");

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = load_ca_file(&garbage).unwrap_err().to_string();
        assert!(
            e.contains("garbage.pem") && e.contains("certificate 1"),
            "{e}"
        );
    }

    #[test]
    fn a_pem_bundle_loads() {
        let roots = load_ca_file(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/store/postgres/testdata/other-ca.pem"
        )))
        .unwrap();
        assert_eq!(roots.len(), 1);
    }
}
