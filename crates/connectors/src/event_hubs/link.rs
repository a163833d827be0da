//! Opening a connection to a namespace, for both directions: TCP through
//! the egress policy; against Azure TLS, SASL ANONYMOUS and a SAS token put
//! on the claims-based-security node (`$cbs`); against the development
//! emulator plain AMQP with SASL PLAIN. Then one session, on which the
//! direction attaches its links.
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fe2o3_amqp::connection::ConnectionHandle;
use fe2o3_amqp::sasl_profile::SaslProfile;
use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::{Connection, Session};
use fe2o3_amqp_cbs::client::CbsClient;
use fe2o3_amqp_cbs::token::CbsToken;

use super::config::Namespace;
use super::sas;
use crate::egress::Outcome;
use crate::policy::EgressPolicy;
use crate::shared::resolve_allowed;

/// How long opening, attaching or a reply may take.
pub const TIMEOUT: Duration = Duration::from_secs(15);

/// The link to a namespace: dropping it closes the connection.
pub struct Opened {
    pub connection: ConnectionHandle<()>,
    pub session: SessionHandle<()>,
    /// The SAS token put on `$cbs` (Azure), which `$management` requests carry too.
    pub token: Option<String>,
}

impl Opened {
    /// Ends the session and closes the connection, as a client leaving does (2 s at most).
    pub async fn close(mut self) {
        let closing = async {
            let _ = self.session.end().await;
            let _ = self.connection.close().await;
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), closing).await;
    }
}

/// Conditions retrying cannot fix, as they appear in an error's text either
/// spelled by the spec (`amqp:not-found`) or by fe2o3 (`NotFound`): compared
/// lowercased, without `-`.
const PERMANENT: &[&str] = &[
    "notfound",
    "unauthorizedaccess",
    "notallowed",
    "invalidfield",
    "decodeerror",
    "messagesizeexceeded",
    "argumenterror",
];

/// Why the connection did not open, in an operator's words: a refused key
/// names the key and where it comes from, not the library's debug text.
fn opening_failed(e: &fe2o3_amqp::connection::OpenError, key_name: &str) -> Outcome {
    use fe2o3_amqp::connection::OpenError;
    use fe2o3_amqp::types::sasl::SaslCode;
    match e {
        OpenError::SaslError { code: SaslCode::Auth, .. } => Outcome::Reject {
            reason: format!(
                "the namespace refused the shared access key `{key_name}` (authentication failed): check \
                 SharedAccessKeyName and SharedAccessKey in the connection string"
            ),
            deactivate: false,
        },
        OpenError::SaslError { code, .. } => Outcome::Retry {
            reason: format!("the namespace could not authenticate the connection now (SASL {code:?}); retrying"),
            after: None,
        },
        other => classify(format!("opening the connection failed: {other}")),
    }
}

/// For failures known only by their text (opening, attaching, sending).
pub fn classify(text: String) -> Outcome {
    let flat = text.to_ascii_lowercase().replace('-', "");
    let permanent = PERMANENT.iter().any(|c| flat.contains(c)) || flat.contains("sasl") && flat.contains("auth");
    if permanent {
        Outcome::Reject { reason: text, deactivate: false }
    } else {
        Outcome::Retry { after: None, reason: text }
    }
}

/// Opens the connection and its session as `container`, within [`TIMEOUT`].
pub async fn open(ns: &Namespace, policy: &EgressPolicy, container: String) -> Result<Opened, Outcome> {
    match tokio::time::timeout(TIMEOUT, opening(ns, policy, container)).await {
        Ok(opened) => opened,
        Err(_) => Err(Outcome::Retry {
            after: None,
            reason: format!("connecting to {}:{} did not finish within {TIMEOUT:?}", ns.host, ns.port),
        }),
    }
}

async fn opening(ns: &Namespace, policy: &EgressPolicy, container: String) -> Result<Opened, Outcome> {
    resolve_allowed(policy, &ns.host, ns.port).await.map_err(|reason| Outcome::Reject { reason, deactivate: false })?;
    let tcp = tokio::net::TcpStream::connect((ns.host.as_str(), ns.port))
        .await
        .map_err(|e| Outcome::Retry { after: None, reason: format!("{} could not be reached: {e}", ns.host) })?;
    let builder = Connection::builder()
        .container_id(container)
        .hostname(ns.host.as_str())
        .scheme("amqp")
        .idle_time_out(60_000u32);
    let open = if ns.emulator {
        let profile = SaslProfile::Plain { username: ns.key_name.clone(), password: ns.key.clone() };
        builder.sasl_profile(profile).open_with_stream(tcp).await
    } else {
        let tls = tls_connect(&ns.host, tcp).await?;
        builder.sasl_profile(SaslProfile::Anonymous).open_with_stream(tls).await
    };
    let mut connection = open.map_err(|e| opening_failed(&e, &ns.key_name))?;
    let mut session =
        Session::begin(&mut connection).await.map_err(|e| classify(format!("beginning a session failed: {e}")))?;
    let mut token = None;
    if !ns.emulator {
        let audience = format!("sb://{}/{}", ns.host, ns.hub);
        let expiry = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() + 3600;
        let sas = sas::token(&audience, &ns.key_name, &ns.key, expiry);
        let mut cbs =
            CbsClient::attach(&mut session).await.map_err(|e| classify(format!("attaching to $cbs failed: {e}")))?;
        cbs.put_token(audience.as_str(), CbsToken::new(sas.clone(), "servicebus.windows.net:sastoken", None))
            .await
            .map_err(|e| classify(format!("the SAS token was refused: {e}")))?;
        let _ = cbs.close().await;
        token = Some(sas);
    }
    Ok(Opened { connection, session, token })
}

async fn tls_connect(
    host: &str,
    tcp: tokio::net::TcpStream,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, Outcome> {
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| Outcome::Reject { reason: e.to_string(), deactivate: false })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| Outcome::Reject { reason: format!("{host}: {e}"), deactivate: false })?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| Outcome::Reject { reason: format!("TLS with {host} failed: {e}"), deactivate: false })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_are_read_however_they_are_spelled() {
        for text in ["attaching failed: AmqpError(NotFound)", "amqp:not-found: no such hub", "SASL auth failed"] {
            assert!(matches!(classify(text.into()), Outcome::Reject { .. }), "{text}");
        }
        assert!(matches!(classify("connection reset".into()), Outcome::Retry { .. }));
    }
}
