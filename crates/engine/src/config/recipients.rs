//! Recipients of notification integrations (e-mail, SMS, phone). An e-mail
//! address is active once its syntax checks out. A phone number is sent a
//! six-digit code by SMS and stays pending, receiving nothing, until the
//! code is confirmed; codes expire after 10 minutes and allow 5 tries. A
//! change of who is active rebuilds the integration's sender.
use switchyard_core::input::{CreateRecipient, VerifyRecipient};
use switchyard_core::recipient::CODE_ATTEMPTS;
use switchyard_core::spec::{is_e164, is_email};
use switchyard_core::{
    now_ms, Integration, IntegrationId, OrgId, Recipient, RecipientId, RecipientKind, RecipientStatus,
    ValidationErrors, Verification,
};

use super::{deleted, ConfigError, Configuration};

const NAME_MAX: usize = 200;

fn invalid(field: &str, message: impl Into<String>) -> ConfigError {
    ValidationErrors::one(field, message).into()
}

impl Configuration<'_> {
    /// The integration, which must take recipients, and the kind it takes.
    pub async fn notifier(&self, org: &OrgId, id: &IntegrationId) -> Result<(Integration, RecipientKind), ConfigError> {
        let integration = self.integration(org, id).await?;
        let kind = switchyard_connectors::find(&integration.type_key).and_then(|t| t.recipients).ok_or_else(|| {
            ConfigError::NotFound(format!("{} integrations have no recipients", integration.type_key))
        })?;
        Ok((integration, kind))
    }

    /// The integration's recipient.
    pub async fn recipient(
        &self,
        org: &OrgId,
        integration: &IntegrationId,
        id: &RecipientId,
    ) -> Result<(Integration, Recipient), ConfigError> {
        let (integration, _) = self.notifier(org, integration).await?;
        let recipient = self
            .engine
            .store
            .get_recipient(org, id)
            .await?
            .filter(|r| r.integration_id == integration.id)
            .ok_or_else(|| ConfigError::not_found("recipient", id))?;
        Ok((integration, recipient))
    }

    /// Sends a fresh code to a phone recipient; on failure nothing changes.
    async fn send_code(
        &self,
        integration: &Integration,
        recipient: &mut Recipient,
        now: i64,
    ) -> Result<(), ConfigError> {
        let (code, verification) = Verification::issue(&recipient.id, now);
        self.engine
            .send_verification_code(integration, &recipient.address, &code)
            .await
            .map_err(|e| ConfigError::Upstream(format!("the verification code could not be sent: {e}")))?;
        recipient.verification = Some(verification);
        Ok(())
    }

    /// An e-mail address is active at once; a phone number is sent a code
    /// and is pending (502, and nothing stored, when the code cannot be
    /// sent). 409 for an address the integration already has.
    pub async fn create_recipient(
        &self,
        org: &OrgId,
        integration: &IntegrationId,
        input: CreateRecipient,
    ) -> Result<Recipient, ConfigError> {
        let (integration, kind) = self.notifier(org, integration).await?;
        let address = input.address.trim().to_owned();
        match kind {
            RecipientKind::Email if !is_email(&address) => {
                return Err(invalid("address", "must be an e-mail address (name@example.com)"))
            }
            RecipientKind::Phone if !is_e164(&address) => {
                return Err(invalid(
                    "address",
                    "must be a phone number in E.164 form (+ then country code and number, e.g. +14155550123)",
                ))
            }
            _ => {}
        }
        let name = input.name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
        if name.as_ref().is_some_and(|n| n.chars().count() > NAME_MAX) {
            return Err(invalid("name", format!("must be at most {NAME_MAX} characters")));
        }
        let now = now_ms();
        let mut recipient = Recipient {
            id: RecipientId::new(),
            integration_id: integration.id.clone(),
            kind,
            address,
            name,
            status: if kind == RecipientKind::Email { RecipientStatus::Active } else { RecipientStatus::Pending },
            verification: None,
            created_at: now,
            updated_at: now,
        };
        if kind == RecipientKind::Phone {
            // No code goes to a number the integration already has.
            if self.engine.store.find_recipient(org, &integration.id, &recipient.address).await?.is_some() {
                return Err(ConfigError::Conflict(format!("`{}` is already a recipient", recipient.address)));
            }
            self.send_code(&integration, &mut recipient, now).await?;
        }
        self.engine.store.create_recipient(org, &recipient).await?;
        self.engine.integration_changed(org, &integration.id);
        Ok(recipient)
    }

    pub async fn delete_recipient(
        &self,
        org: &OrgId,
        integration: &IntegrationId,
        id: &RecipientId,
    ) -> Result<(), ConfigError> {
        let (integration, r) = self.recipient(org, integration, id).await?;
        let found = self.engine.store.delete_recipient(org, &r, now_ms()).await?;
        self.engine.integration_changed(org, &integration.id);
        deleted(found, "recipient", &r.id)
    }

    /// Confirms a phone number with the code sent to it: it becomes active.
    /// 422 for a wrong or expired code (naming `code`); after 5 wrong codes
    /// the code is void and a new one must be sent.
    pub async fn verify_recipient(
        &self,
        org: &OrgId,
        integration: &IntegrationId,
        id: &RecipientId,
        input: VerifyRecipient,
    ) -> Result<Recipient, ConfigError> {
        let (integration, mut r) = self.recipient(org, integration, id).await?;
        if r.status == RecipientStatus::Active {
            return Err(ConfigError::Conflict(format!("recipient {} is already active", r.id)));
        }
        let now = now_ms();
        let Some(mut v) = r.verification.clone() else {
            return Err(invalid("code", "no code is pending; send a new one with …/send-code"));
        };
        if v.attempts >= CODE_ATTEMPTS {
            return Err(invalid("code", "too many wrong codes; send a new one with …/send-code"));
        }
        if now > v.expires_at {
            return Err(invalid("code", "the code has expired; send a new one with …/send-code"));
        }
        if !v.matches(&r.id, &input.code) {
            v.attempts += 1;
            let left = CODE_ATTEMPTS - v.attempts;
            r.verification = Some(v);
            r.updated_at = now;
            self.engine.store.update_recipient(org, &r).await?;
            return Err(invalid("code", format!("is not the code sent ({left} tries left)")));
        }
        r.status = RecipientStatus::Active;
        r.verification = None;
        r.updated_at = now;
        self.engine.store.update_recipient(org, &r).await?;
        self.engine.integration_changed(org, &integration.id);
        Ok(r)
    }

    /// Sends a pending phone recipient a new code (the old one stops working).
    pub async fn send_recipient_code(
        &self,
        org: &OrgId,
        integration: &IntegrationId,
        id: &RecipientId,
    ) -> Result<Recipient, ConfigError> {
        let (integration, mut r) = self.recipient(org, integration, id).await?;
        if r.status == RecipientStatus::Active {
            return Err(ConfigError::Conflict(format!("recipient {} is already active", r.id)));
        }
        let now = now_ms();
        self.send_code(&integration, &mut r, now).await?;
        r.updated_at = now;
        self.engine.store.update_recipient(org, &r).await?;
        Ok(r)
    }
}
