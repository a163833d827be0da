//! TLS for mqtts and wss: rustls with ring, the public roots plus the
//! integration's own CA, and an optional client certificate.
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::config::{Auth, MqttConfig};

pub fn certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("is not a PEM certificate: {e}"))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    Ok(certs)
}

pub fn private_key(pem: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|_| "is not a PEM private key".to_owned())
}

pub fn client_config(config: &MqttConfig) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(ca) = &config.ca {
        for cert in certificates(ca).map_err(|e| format!("caCertificate {e}"))? {
            roots.add(cert).map_err(|e| format!("caCertificate: {e}"))?;
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let tls = match &config.auth {
        Auth::Certificate { certificate, key } => builder
            .with_client_auth_cert(
                certificates(certificate.expose()).map_err(|e| format!("clientCertificate {e}"))?,
                private_key(key.expose()).map_err(|e| format!("privateKey {e}"))?,
            )
            .map_err(|e| format!("client certificate: {e}"))?,
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(tls))
}
