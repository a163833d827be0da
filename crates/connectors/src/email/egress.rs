//! One e-mail per delivery, to every active recipient.
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use switchyard_core::{Integration, IntegrationId, Metadata, OrgId, Recipient};

use super::config::{EmailConfig, Security};
use crate::egress::{BuildError, Egress, EgressContext, Outbound, Outcome, Response, SendResult};
use crate::notify::Scope;
use crate::shared::{is_certificate_error, reject, resolve_allowed, Template};

pub struct EmailEgress {
    config: EmailConfig,
    org: OrgId,
    integration: IntegrationId,
    to: Vec<Mailbox>,
    subject: Template,
    body: Template,
    html: Option<Template>,
    ctx: EgressContext,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    target: String,
}

impl EmailEgress {
    pub fn new(
        config: EmailConfig,
        integration: &Integration,
        globals: &Metadata,
        recipients: &[Recipient],
        ctx: &EgressContext,
    ) -> Result<Self, BuildError> {
        let bad = |e: String| BuildError::Config(e);
        let to = recipients
            .iter()
            .map(|r| r.address.parse::<lettre::Address>().map(|a| Mailbox::new(r.name.clone(), a)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("recipient: {e}")))?;
        let builder = match (config.security, &config.ca) {
            (Security::None, _) => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(config.host.as_str()),
            (Security::StartTls, None) => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host).map_err(|e| bad(e.to_string()))?
            }
            (Security::Tls, None) => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host).map_err(|e| bad(e.to_string()))?
            }
            (security, Some(ca)) => {
                // The public roots and the relay's own CA.
                let ca = Certificate::from_pem(ca.as_bytes()).map_err(|e| bad(format!("caCertificate: {e}")))?;
                let params = TlsParameters::builder(config.host.clone())
                    .add_root_certificate(ca)
                    .build_rustls()
                    .map_err(|e| bad(e.to_string()))?;
                let tls = if security == Security::Tls { Tls::Wrapper(params) } else { Tls::Required(params) };
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(config.host.as_str()).tls(tls)
            }
        };
        let mut builder = builder.port(config.port).timeout(Some(Duration::from_secs(15)));
        if let Some((user, password)) = &config.login {
            builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        Ok(Self {
            target: format!("smtp://{}:{}", config.host, config.port),
            subject: Template::lenient("subjectTemplate", &config.subject, globals)?,
            body: Template::lenient("bodyTemplate", &config.body, globals)?,
            html: config.html.as_deref().map(|h| Template::lenient("htmlTemplate", h, globals)).transpose()?,
            transport: builder.build(),
            config,
            org: integration.org_id.clone(),
            integration: integration.id.clone(),
            to,
            ctx: ctx.clone(),
        })
    }

    /// The e-mail, and its text (what the delivery log shows as sent).
    fn message(&self, message: &Outbound<'_>, scope: &Scope) -> Result<(Message, String), String> {
        let record = message.record;
        let subject = scope.render(&self.subject, record)?;
        let text = scope.render(&self.body, record)?;
        let sent = text.clone();
        let from: lettre::Address = self.config.from.parse().map_err(|e| format!("from: {e}"))?;
        let mut builder = Message::builder()
            .from(Mailbox::new(Some(self.config.from_name.clone()), from))
            .subject(subject.lines().next().unwrap_or_default())
            .message_id(Some(format!("<{}@switchyard>", message.delivery_id)))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("Switchyard-Delivery-Id"),
                message.delivery_id.to_owned(),
            ));
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        let text_part = SinglePart::builder().header(ContentType::TEXT_PLAIN).body(text);
        let built = match &self.html {
            Some(html) => {
                let html = scope.render(html, record)?;
                builder.multipart(
                    MultiPart::alternative()
                        .singlepart(text_part)
                        .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(html)),
                )
            }
            None => builder.singlepart(text_part),
        };
        built.map(|m| (m, sent)).map_err(|e| e.to_string())
    }
}

#[async_trait]
impl Egress for EmailEgress {
    async fn send(&self, message: &Outbound<'_>) -> SendResult {
        let target = &self.target;
        if self.to.is_empty() {
            return reject(target, "nothing sent: the integration has no active recipients");
        }
        let scope = Scope::of(&self.ctx, &self.org, &self.integration, message.record, message.delivery_id).await;
        let (email, sent) = match self.message(message, &scope) {
            Ok(m) => m,
            Err(e) => return reject(target, e),
        };
        if let Err(e) = resolve_allowed(&self.ctx.policy, &self.config.host, self.config.port).await {
            return reject(target, e);
        }
        let result = match self.transport.send(email).await {
            Ok(answer) => SendResult {
                sent: None,
                outcome: Outcome::Delivered,
                response: Response {
                    status: Some(u16::from(answer.code())),
                    remote_id: Some(format!("<{}@switchyard>", message.delivery_id)),
                    excerpt: Some(answer.message().collect::<Vec<_>>().join(" ")),
                },
                target: target.clone(),
            },
            Err(e) => {
                let mut reason = e.to_string();
                if reason.contains("STARTTLS is not supported") {
                    // Say which setting fits the relay, not only what failed.
                    reason = format!(
                        "the relay at {}:{} does not offer STARTTLS: set security to TLS if it takes implicit TLS \
                         (usually port 465), or to NONE to send unencrypted (only on a network you trust)",
                        self.config.host, self.config.port
                    );
                }
                let outcome = if e.is_permanent() || e.is_tls() || e.is_client() || is_certificate_error(&e) {
                    Outcome::Reject { reason, deactivate: false }
                } else {
                    Outcome::Retry { after: None, reason }
                };
                SendResult {
                    sent: None,
                    outcome,
                    response: Response { status: e.status().map(u16::from), remote_id: None, excerpt: None },
                    target: target.clone(),
                }
            }
        };
        result.with_sent(&sent)
    }

    fn rate_limit(&self) -> Option<f64> {
        Some(self.config.rate)
    }
}
