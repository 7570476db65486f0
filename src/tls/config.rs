//! TLS settings from PEM files: a server's certificate and key (and the CA
//! its clients' certificates must chain to, for mutual TLS), a client's
//! trusted roots. Every error names the file and what is wrong with it, so
//! that `twirl serve` can refuse to start with a useful message.

use std::fs;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// How long a handshake may take unless told otherwise.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The crypto provider: *ring*, which builds with only a C compiler.
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// An error about `path`: `InvalidInput` (or the I/O error's kind) with the
/// file's name and the problem.
fn file_error(path: &Path, kind: io::ErrorKind, problem: impl std::fmt::Display) -> io::Error {
    io::Error::new(kind, format!("{}: {problem}", path.display()))
}

fn read(path: &Path) -> io::Result<Vec<u8>> {
    fs::read(path).map_err(|e| file_error(path, e.kind(), format_args!("cannot read: {e}")))
}

/// Reads every certificate in a PEM file (at least one).
pub fn load_certs(path: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, io::ErrorKind::InvalidData, format_args!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(file_error(path, io::ErrorKind::InvalidData, "no certificate in it (no BEGIN CERTIFICATE block)"));
    }
    Ok(certs)
}

/// Reads the first private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &Path) -> io::Result<PrivateKeyDer<'static>> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        let problem = match e {
            rustls::pki_types::pem::Error::NoItemsFound => "no private key in it (no BEGIN PRIVATE KEY block)".into(),
            e => format!("not a PEM private key: {e}"),
        };
        file_error(path, io::ErrorKind::InvalidData, problem)
    })
}

fn roots_from(path: &Path) -> io::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).map_err(|e| {
            file_error(path, io::ErrorKind::InvalidData, format_args!("not a usable CA certificate: {e}"))
        })?;
    }
    Ok(roots)
}

/// A TLS server's settings: what [`crate::tls::server`] wraps a factory with.
///
/// ```no_run
/// let tls = twirl::tls::TlsServer::from_pem_files("c/cert.pem", "c/key.pem")?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct TlsServer {
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) handshake_timeout: Duration,
}

impl TlsServer {
    /// Loads a certificate chain and its private key from PEM files. Fails,
    /// naming the file, if either is missing, unreadable or not PEM, or if
    /// the key does not match the certificate.
    pub fn from_pem_files(cert: impl AsRef<Path>, key: impl AsRef<Path>) -> io::Result<TlsServer> {
        TlsServer::load(cert.as_ref(), key.as_ref(), None)
    }

    /// [`from_pem_files`](Self::from_pem_files), also requiring every
    /// client to present a certificate signed by the CA in `client_ca`
    /// (mutual TLS).
    pub fn load(cert: &Path, key: &Path, client_ca: Option<&Path>) -> io::Result<TlsServer> {
        let chain = load_certs(cert)?;
        let private = load_key(key)?;
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?;
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let verifier =
                    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots_from(ca)?), provider())
                        .build()
                        .map_err(|e| file_error(ca, io::ErrorKind::InvalidData, e))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder.with_single_cert(chain, private).map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => file_error(
                key,
                io::ErrorKind::InvalidInput,
                format_args!("this key does not match the certificate in {}", cert.display()),
            ),
            e => file_error(key, io::ErrorKind::InvalidData, format_args!("unusable with {}: {e}", cert.display())),
        })?;
        Ok(TlsServer { config: Arc::new(config), handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT })
    }

    /// A server from a rustls configuration built elsewhere.
    pub fn from_config(config: Arc<ServerConfig>) -> TlsServer {
        TlsServer { config, handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT }
    }

    /// Sets how long a handshake may take before the connection is closed
    /// (default 10 s).
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> TlsServer {
        self.handshake_timeout = timeout;
        self
    }

    /// The rustls configuration.
    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }
}

/// A TLS client's settings: the roots it trusts and the name the server's
/// certificate must be valid for.
///
/// ```
/// let tls = twirl::tls::TlsClient::new(None, "example.com")?;
/// assert_eq!(tls.server_name(), "example.com");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct TlsClient {
    pub(crate) config: Arc<ClientConfig>,
    pub(crate) name: ServerName<'static>,
    pub(crate) handshake_timeout: Duration,
}

impl TlsClient {
    /// Trusts the CA certificates in `ca` (PEM), or the bundled Mozilla
    /// roots (`webpki-roots`) when `None`; the server's certificate must
    /// be valid for `name` (a DNS name or an IP address; it is also sent
    /// as SNI).
    pub fn new(ca: Option<&Path>, name: &str) -> io::Result<TlsClient> {
        let roots = match ca {
            Some(path) => roots_from(path)?,
            None => RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() },
        };
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsClient::from_config(Arc::new(config), name)
    }

    /// A client from a rustls configuration built elsewhere (one with a
    /// client certificate, say), for the server `name`.
    pub fn from_config(config: Arc<ClientConfig>, name: &str) -> io::Result<TlsClient> {
        let name = ServerName::try_from(name.to_string()).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("'{name}' is not a DNS name or an IP address"))
        })?;
        Ok(TlsClient { config, name, handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT })
    }

    /// Sets how long a handshake may take (default 10 s).
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> TlsClient {
        self.handshake_timeout = timeout;
        self
    }

    /// The name the server's certificate must be valid for.
    pub fn server_name(&self) -> String {
        self.name.to_str().into_owned()
    }
}
