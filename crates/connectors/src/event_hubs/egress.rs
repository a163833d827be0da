//! One AMQP 1.0 connection, session and sender link per integration, opened
//! on the first send and again after a failure; each message waits for the
//! hub's disposition.
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fe2o3_amqp::connection::ConnectionHandle;
use fe2o3_amqp::sasl_profile::SaslProfile;
use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::types::messaging::{
    ApplicationProperties, Data, Message, MessageAnnotations, MessageId, Outcome as Disposition, Properties,
};
use fe2o3_amqp::types::primitives::{Binary, Symbol};
use fe2o3_amqp::{Connection, Sender, Session};
use fe2o3_amqp_cbs::client::CbsClient;
use fe2o3_amqp_cbs::token::CbsToken;
use switchyard_core::{Integration, IntegrationId, Metadata};

use super::config::{EventHubsConfig, Namespace};
use super::sas;
use crate::connection::Held;
use crate::egress::{BuildError, Egress, EgressContext, Outbound, Outcome, SendResult};
use crate::policy::EgressPolicy;
use crate::shared::{delivered, failed, published, reject, resolve_allowed, retry, Template};

const TIMEOUT: Duration = Duration::from_secs(15);

struct Link {
    _connection: ConnectionHandle<()>,
    _session: SessionHandle<()>,
    sender: Sender,
}

pub struct EventHubsEgress {
    ns: Namespace,
    rate: f64,
    integration: IntegrationId,
    partition_key: Option<Template>,
    policy: EgressPolicy,
    target: String,
    link: Held<Link>,
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
fn classify(text: String) -> Outcome {
    let flat = text.to_ascii_lowercase().replace('-', "");
    let permanent = PERMANENT.iter().any(|c| flat.contains(c)) || flat.contains("sasl") && flat.contains("auth");
    if permanent {
        Outcome::Reject { reason: text, deactivate: false }
    } else {
        Outcome::Retry { after: None, reason: text }
    }
}

/// The hub refused the message: permanent unless it says it is busy or
/// over a limit.
fn rejected(error: Option<fe2o3_amqp::types::definitions::Error>) -> Outcome {
    use fe2o3_amqp::types::definitions::{AmqpError, ErrorCondition};
    let Some(e) = error else { return Outcome::Reject { reason: "rejected".into(), deactivate: false } };
    let reason = format!("rejected: {:?} {}", e.condition, e.description.unwrap_or_default());
    match e.condition {
        ErrorCondition::AmqpError(
            AmqpError::ResourceLimitExceeded | AmqpError::InternalError | AmqpError::ResourceLocked,
        ) => Outcome::Retry { after: None, reason },
        ErrorCondition::Custom(ref c) if c.0.contains("server-busy") => Outcome::Retry { after: None, reason },
        _ => Outcome::Reject { reason, deactivate: false },
    }
}

impl EventHubsEgress {
    pub fn new(
        config: EventHubsConfig,
        integration: &Integration,
        globals: &Metadata,
        ctx: &EgressContext,
    ) -> Result<Self, BuildError> {
        let partition_key = config
            .partition_key
            .as_deref()
            .map(|t| Template::compile("partitionKeyTemplate", t, globals))
            .transpose()?;
        let scheme = if config.namespace.emulator { "amqp" } else { "amqps" };
        Ok(Self {
            target: format!("{scheme}://{}:{}/{}", config.namespace.host, config.namespace.port, config.namespace.hub),
            ns: config.namespace,
            rate: config.rate,
            integration: integration.id.clone(),
            partition_key,
            policy: ctx.policy.clone(),
            link: Held::default(),
        })
    }

    async fn open(&self) -> Result<Link, Outcome> {
        let ns = &self.ns;
        resolve_allowed(&self.policy, &ns.host, ns.port)
            .await
            .map_err(|reason| Outcome::Reject { reason, deactivate: false })?;
        let tcp = tokio::net::TcpStream::connect((ns.host.as_str(), ns.port))
            .await
            .map_err(|e| Outcome::Retry { after: None, reason: format!("{} could not be reached: {e}", ns.host) })?;
        let container = format!("switchyard-{}", self.integration);
        let builder = Connection::builder().container_id(container).hostname(ns.host.as_str()).scheme("amqp");
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
        if !ns.emulator {
            let audience = format!("sb://{}/{}", ns.host, ns.hub);
            let expiry =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs() + 3600;
            let token = sas::token(&audience, &ns.key_name, &ns.key, expiry);
            let mut cbs = CbsClient::attach(&mut session)
                .await
                .map_err(|e| classify(format!("attaching to $cbs failed: {e}")))?;
            cbs.put_token(audience.as_str(), CbsToken::new(token, "servicebus.windows.net:sastoken", None))
                .await
                .map_err(|e| classify(format!("the SAS token was refused: {e}")))?;
            let _ = cbs.close().await;
        }
        let sender = Sender::attach(&mut session, format!("switchyard-{}", self.integration), ns.hub.as_str())
            .await
            .map_err(|e| classify(format!("attaching to {} failed: {e}", ns.hub)))?;
        Ok(Link { _connection: connection, _session: session, sender })
    }
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

#[async_trait]
impl Egress for EventHubsEgress {
    async fn send(&self, message: &Outbound<'_>) -> SendResult {
        let partition_key = match &self.partition_key {
            Some(t) => match t.render(message.record, &[]) {
                Ok(k) => Some(k),
                Err(e) => return reject(&self.target, e),
            },
            None => None,
        };
        let body = published(message.record, &self.integration, message.delivery_id).to_string();
        let mut annotations = MessageAnnotations::builder();
        if let Some(key) = partition_key {
            annotations = annotations.insert(Symbol::from("x-opt-partition-key"), key);
        }
        let amqp = Message::builder()
            .properties(Properties {
                message_id: Some(MessageId::String(message.delivery_id.to_owned())),
                content_type: Some(Symbol::from("application/json")),
                ..Default::default()
            })
            .application_properties(
                ApplicationProperties::builder().insert("switchyard-delivery-id", message.delivery_id).build(),
            )
            .message_annotations(annotations.build())
            .data(Data(Binary::from(body.into_bytes())))
            .build();
        let mut slot = self.link.lock().await;
        let opened = slot
            .open(
                |_| true,
                || async {
                    match tokio::time::timeout(TIMEOUT, self.open()).await {
                        Ok(Ok(link)) => Ok(link),
                        Ok(Err(outcome)) => Err(failed(&self.target, outcome)),
                        Err(_) => Err(retry(&self.target, "connecting to the event hub timed out")),
                    }
                },
            )
            .await;
        let link = match opened {
            Ok(link) => link,
            Err(result) => return result,
        };
        let sent = tokio::time::timeout(TIMEOUT, link.sender.send(amqp)).await;
        match sent {
            Ok(Ok(Disposition::Accepted(_))) => delivered(&self.target, Some(message.delivery_id.to_owned())),
            Ok(Ok(Disposition::Rejected(r))) => failed(&self.target, rejected(r.error)),
            Ok(Ok(other)) => retry(&self.target, format!("not accepted: {other:?}")),
            Ok(Err(e)) => {
                let result = failed(&self.target, classify(format!("sending failed: {e}")));
                slot.failed(&result.to_string());
                result
            }
            Err(_) => {
                slot.failed("no disposition within 15 s");
                retry(&self.target, "no disposition within 15 s")
            }
        }
    }

    fn rate_limit(&self) -> Option<f64> {
        Some(self.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fe2o3_amqp::types::definitions::{AmqpError, Error};

    #[test]
    fn conditions_are_read_however_they_are_spelled() {
        for text in ["attaching failed: AmqpError(NotFound)", "amqp:not-found: no such hub", "SASL auth failed"] {
            assert!(matches!(classify(text.into()), Outcome::Reject { .. }), "{text}");
        }
        assert!(matches!(classify("connection reset".into()), Outcome::Retry { .. }));
        let refused = Error::new(AmqpError::UnauthorizedAccess, Some("no".into()), None);
        assert!(matches!(rejected(Some(refused)), Outcome::Reject { .. }));
        let busy = Error::new(AmqpError::ResourceLimitExceeded, None, None);
        assert!(matches!(rejected(Some(busy)), Outcome::Retry { .. }));
    }
}
