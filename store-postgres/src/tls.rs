//! TLS to the server, through rustls, as the URL's `sslmode` asks (libpq's names and meanings):
//! `disable` (and no `sslmode`) connects in plain text; `allow` connects in plain text and
//! tries TLS only if the server refuses that log-in; `prefer` tries TLS and falls back to
//! plain text when the server has none; `require` insists on TLS without checking the server's
//! certificate; `verify-ca` checks that a trusted authority signed it; `verify-full` checks
//! that too and that it names the host connected to. The authorities trusted are those of the
//! PEM file `sslrootcert=PATH`, which the verifying modes need.
//!
//! The driver knows only `disable`, `prefer` and `require`: the two settings are taken out of
//! the URL here ([`Location`](crate::Location)) and the driver is told `require` for the
//! verifying modes, with a connector that does the checks; `allow` is two log-ins, the second
//! one's made only when the server answered the first with an error (`pool.rs`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// What the URL asks of TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsSettings {
    pub mode: Mode,
    pub root_cert: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl Mode {
    pub(crate) const NAMES: &str = "disable, allow, prefer, require, verify-ca or verify-full";

    pub(crate) fn parse(text: &str) -> Option<Mode> {
        Some(match text {
            "disable" => Mode::Disable,
            "allow" => Mode::Allow,
            "prefer" => Mode::Prefer,
            "require" => Mode::Require,
            "verify-ca" => Mode::VerifyCa,
            "verify-full" => Mode::VerifyFull,
            _ => return None,
        })
    }

    /// What the driver is told (for `allow`, at the first log-in).
    pub(crate) fn driver_mode(self) -> SslMode {
        match self {
            Mode::Disable | Mode::Allow => SslMode::Disable,
            Mode::Prefer => SslMode::Prefer,
            Mode::Require | Mode::VerifyCa | Mode::VerifyFull => SslMode::Require,
        }
    }
}

/// How connections are made: in plain text, through rustls, or in plain text and then through
/// rustls if the server refused that (`allow`).
#[derive(Clone)]
pub(crate) enum Tls {
    Plain,
    Rustls(MakeRustlsConnect),
    PlainFirst(MakeRustlsConnect),
}

impl TlsSettings {
    /// The connector for these settings; an error says why it cannot be made (a missing or
    /// unreadable certificate file, a verifying mode without one).
    pub(crate) fn connector(&self) -> Result<Tls, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match self.mode {
            Mode::Disable => return Ok(Tls::Plain),
            Mode::Allow | Mode::Prefer | Mode::Require => {
                Arc::new(Unchecked(Arc::clone(&provider)))
            }
            Mode::VerifyCa | Mode::VerifyFull => {
                let Some(path) = &self.root_cert else {
                    return Err(
                        "sslmode=verify-ca and verify-full need sslrootcert=PATH, the PEM file of \
                         the authority that signed the server's certificate"
                            .to_owned(),
                    );
                };
                let roots = Arc::new(roots(path)?);
                let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|error| format!("sslrootcert {}: {error}", path.display()))?;
                if self.mode == Mode::VerifyFull { webpki } else { Arc::new(AnyName(webpki)) }
            }
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| error.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        let connector = MakeRustlsConnect::new(config);
        Ok(if self.mode == Mode::Allow {
            Tls::PlainFirst(connector)
        } else {
            Tls::Rustls(connector)
        })
    }
}

/// The authorities of the PEM file at `path`.
fn roots(path: &Path) -> Result<RootCertStore, String> {
    let unreadable = |error: &dyn std::fmt::Display| {
        format!("sslrootcert {} cannot be read: {error}", path.display())
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|error| unreadable(&error))? {
        let cert = cert.map_err(|error| unreadable(&error))?;
        roots.add(cert).map_err(|error| unreadable(&error))?;
    }
    if roots.is_empty() {
        return Err(unreadable(&"it holds no certificate"));
    }
    Ok(roots)
}

/// `verify-ca`: the chain must lead to a trusted authority; the name it is for is not checked.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            checked => checked,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `require`, `prefer` and `allow`: encrypted, the certificate taken as it is (the handshake's
/// signatures are still checked against it).
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
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
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
