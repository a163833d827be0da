//! What the AWS connectors share: their properties, Signature Version 4
//! (aws-sigv4) on the shared HTTP client's requests, and reading AWS's error answers.
mod classify;

pub use classify::{classify, xml_tag, AwsError};

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use switchyard_core::spec::{PropertyKind as K, PropertySpec as P};
use switchyard_core::{Integration, Secret, ValidationErrors};

use crate::egress::{BuildError, Outcome, Response, SendResult};
use crate::http::ANSWER_MAX;
use crate::shared::{objects_property, rate_property, reject, retry, Settings};
use switchyard_core::delivery::{excerpt, RESPONSE_EXCERPT_MAX};

/// The properties of an AWS target: `resource` (topic ARN, queue URL) first.
pub fn properties(resource: P) -> Vec<P> {
    vec![
        resource,
        P::new("region", "Region", K::String).required().describe("For example us-east-2."),
        P::new("accessKeyId", "Access key id", K::String).required(),
        P::new("secretAccessKey", "Secret access key", K::Secret).required(),
        P::new("endpointUrl", "Endpoint URL", K::Url)
            .describe("Overrides the AWS endpoint (a compatible service, or a VPC endpoint)."),
        objects_property(),
        rate_property(),
    ]
}

/// Keys, region and endpoint, read once per integration.
pub struct Aws {
    pub region: String,
    access_key_id: String,
    secret_access_key: Secret,
    pub endpoint: String,
    pub rate: f64,
}

impl Aws {
    /// `service`: `sns` or `sqs`, for the default endpoint and the signature.
    pub fn from_integration(i: &Integration, service: &str) -> Result<Self, BuildError> {
        let s = Settings::of(i)?;
        let region = s.required("region")?.to_owned();
        let endpoint = match s.text("endpointUrl")? {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("https://{service}.{region}.amazonaws.com"),
        };
        Ok(Self {
            access_key_id: s.required("accessKeyId")?.to_owned(),
            secret_access_key: s.need_secret("secretAccessKey")?,
            region,
            endpoint,
            rate: s.rate()?,
        })
    }

    /// Signs a POST of `body` to the endpoint for `service` and returns the
    /// headers to add (Authorization, X-Amz-Date).
    pub fn sign(&self, service: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Vec<(String, String)>, String> {
        let identity = Credentials::new(
            &self.access_key_id,
            self.secret_access_key.expose(),
            None,
            None,
            "switchyard-integration",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(service)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| e.to_string())?
            .into();
        let url = format!("{}/", self.endpoint);
        let request = SignableRequest::new("POST", &url, headers.iter().copied(), SignableBody::Bytes(body))
            .map_err(|e| e.to_string())?;
        let (instructions, _) = sign(request, &params).map_err(|e| e.to_string())?.into_parts();
        Ok(instructions.headers().map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
    }

    pub fn url(&self) -> String {
        format!("{}/", self.endpoint)
    }

    /// Signs and POSTs `body` with `headers` to the endpoint; the answer's
    /// status and (at most `limit` bytes of) text, or why there is none.
    pub async fn exchange(
        &self,
        http: &crate::http::HttpClient,
        service: &str,
        headers: &[(&str, &str)],
        body: String,
        timeout: Duration,
        limit: usize,
    ) -> Result<(u16, String), Unanswered> {
        if let Some(blocked) = http.refuses(&self.url()) {
            return Err(Unanswered { permanent: true, reason: blocked.to_string() });
        }
        let signed = self
            .sign(service, headers, body.as_bytes())
            .map_err(|e| Unanswered { permanent: true, reason: format!("signing failed: {e}") })?;
        let signed: Vec<(&str, &str)> = signed.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let all: Vec<(&str, &str)> = headers.iter().copied().chain(signed).collect();
        let response = http.post(&self.url(), &all, body, timeout).await.map_err(|e| Unanswered {
            permanent: e.is_permanent(),
            reason: format!("{} could not be reached: {e}", service.to_uppercase()),
        })?;
        let status = response.status();
        Ok((status, response.text(limit).await))
    }

    /// Signs and POSTs `body` with `headers` to the endpoint, and reads the
    /// answer: Delivered with the id `message_id` finds in a 2xx body, or the
    /// AWS error classified. `target` names where it went, for the log.
    pub async fn call(
        &self,
        http: &crate::http::HttpClient,
        service: &str,
        headers: &[(&str, &str)],
        body: String,
        target: &str,
        message_id: fn(&str) -> Option<String>,
    ) -> SendResult {
        let (status, text) =
            match self.exchange(http, service, headers, body, Duration::from_secs(15), ANSWER_MAX).await {
                Ok(answer) => answer,
                Err(Unanswered { permanent: true, reason }) => return reject(target, reason),
                Err(Unanswered { reason, .. }) => return retry(target, reason),
            };
        let mut answer =
            Response { status: Some(status), remote_id: None, excerpt: Some(excerpt(&text, RESPONSE_EXCERPT_MAX)) };
        let outcome = if (200..300).contains(&status) {
            answer.remote_id = message_id(&text);
            Outcome::Delivered
        } else {
            classify(status, AwsError::parse(&text).as_ref())
        };
        SendResult { sent: None, outcome, response: answer, target: target.to_owned() }
    }
}

/// Why a call to AWS got no answer.
#[derive(Debug)]
pub struct Unanswered {
    /// Retrying cannot help (a refused address, a request that cannot be signed).
    pub permanent: bool,
    pub reason: String,
}

/// The region must look like one; the resource must be given.
pub fn check_region(s: &Settings<'_>, errors: &mut ValidationErrors) {
    if let Some(region) = s.text("region").ok().flatten().filter(|r| !r.contains("{{")) {
        let ok = region.split('-').count() >= 3
            && region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            errors.push("properties.region", "must be an AWS region such as us-east-2");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};

    fn hmac(key: &[u8], data: &str) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(data.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// The signature, recomputed here from the Signature Version 4 steps as
    /// AWS documents them, matches the one the connector sends.
    #[test]
    fn the_signature_is_signature_version_4() {
        let aws = Aws {
            region: "us-east-2".into(),
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            endpoint: "https://sqs.us-east-2.amazonaws.com".into(),
            rate: 20.0,
        };
        let body = br#"{"QueueUrl":"q","MessageBody":"m"}"#;
        let given = [("content-type", "application/x-amz-json-1.0"), ("x-amz-target", "AmazonSQS.SendMessage")];
        let signed = aws.sign("sqs", &given, body).unwrap();
        let header = |name: &str| signed.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
        let amz_date = header("x-amz-date").expect("x-amz-date");
        let authorization = header("authorization").expect("authorization");
        let date = &amz_date[..8];
        let scope = format!("{date}/us-east-2/sqs/aws4_request");
        assert!(
            authorization.starts_with(&format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/{scope}, ")),
            "{authorization}"
        );
        let signed_headers = authorization.split("SignedHeaders=").nth(1).unwrap().split(',').next().unwrap();
        assert_eq!(signed_headers, "content-type;host;x-amz-date;x-amz-target");
        let canonical = format!(
            "POST\n/\n\ncontent-type:application/x-amz-json-1.0\nhost:sqs.us-east-2.amazonaws.com\nx-amz-date:{amz_date}\n\
             x-amz-target:AmazonSQS.SendMessage\n\n{signed_headers}\n{}",
            hex::encode(Sha256::digest(body))
        );
        let to_sign =
            format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", hex::encode(Sha256::digest(canonical.as_bytes())));
        let key = ["us-east-2", "sqs", "aws4_request"]
            .iter()
            .fold(hmac(b"AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", date), |k, part| hmac(&k, part));
        let expected = hex::encode(hmac(&key, &to_sign));
        assert!(authorization.ends_with(&format!("Signature={expected}")), "{authorization} vs {expected}");
    }
}
