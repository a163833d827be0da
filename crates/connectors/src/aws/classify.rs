//! AWS answers: the message id on success, the error code and message on
//! failure, whether the body is XML (query protocol: SNS) or JSON (SQS).
use std::time::Duration;

use crate::egress::Outcome;

#[derive(Debug, Clone, PartialEq)]
pub struct AwsError {
    pub code: String,
    pub message: String,
}

impl AwsError {
    /// From an XML `<Error><Code>…</Code><Message>…</Message></Error>` or a
    /// JSON `{"__type": "…#Code", "message": "…"}` body.
    pub fn parse(body: &str) -> Option<AwsError> {
        if let Ok(json) = serde_json::from_str::<serde_json::Value>(body) {
            let code = json.get("__type").or_else(|| json.get("code")).and_then(|v| v.as_str())?;
            let message = json.get("message").or_else(|| json.get("Message")).and_then(|v| v.as_str()).unwrap_or("");
            let code = code.rsplit('#').next().unwrap_or(code).to_owned();
            return Some(AwsError { code, message: message.to_owned() });
        }
        let code = xml_tag(body, "Code")?;
        Some(AwsError { code, message: xml_tag(body, "Message").unwrap_or_default() })
    }
}

/// The text of the first `<tag>…</tag>`, with XML's five entities decoded.
pub fn xml_tag(xml: &str, tag: &str) -> Option<String> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(
        xml[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// Codes that mean "slow down" or "try later".
const TRANSIENT: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "KMSThrottlingException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalError",
    "InternalFailure",
    "InternalErrorException",
    "RequestTimeout",
    "RequestTimeoutException",
    "RequestLimitExceeded",
    "KMSInternalException",
];

/// 5xx and throttling retry (429 and throttling codes after a pause);
/// authorization, validation and not-found errors do not: retrying cannot help.
pub fn classify(status: u16, error: Option<&AwsError>) -> Outcome {
    let reason = match error {
        Some(e) if e.message.is_empty() => e.code.clone(),
        Some(e) => format!("{}: {}", e.code, e.message),
        None => format!("HTTP {status}"),
    };
    let transient = error.is_some_and(|e| TRANSIENT.contains(&e.code.as_str()));
    let throttled = status == 429 || error.is_some_and(|e| e.code.contains("Throttl"));
    if throttled {
        Outcome::Retry { after: Some(Duration::from_secs(1)), reason }
    } else if status >= 500 || transient {
        Outcome::Retry { after: None, reason }
    } else {
        Outcome::Reject { reason, deactivate: false }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_authorization_error_from_sns_is_permanent_with_its_text() {
        let body = r#"<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>Sender</Type>
            <Code>AuthorizationError</Code><Message>User: arn:aws:iam::123456789012:user/push is not authorized to
            perform: SNS:Publish on resource: arn:aws:sns:us-east-2:123456789012:Main because no resource-based policy
            allows the SNS:Publish action</Message></Error><RequestId>1</RequestId></ErrorResponse>"#;
        let e = AwsError::parse(body).unwrap();
        assert_eq!(e.code, "AuthorizationError");
        match classify(403, Some(&e)) {
            Outcome::Reject { reason, .. } => {
                assert!(reason.starts_with("AuthorizationError: User: arn:aws:iam"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn throttling_and_server_faults_retry() {
        let throttled = AwsError::parse(r#"{"__type":"com.amazonaws.sqs#RequestThrottled","message":"Rate exceeded"}"#);
        assert!(matches!(classify(400, throttled.as_ref()), Outcome::Retry { after: Some(_), .. }));
        let sns = AwsError::parse(
            "<ErrorResponse><Error><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>",
        );
        assert!(matches!(classify(400, sns.as_ref()), Outcome::Retry { .. }));
        assert!(matches!(classify(503, None), Outcome::Retry { after: None, .. }));
        let internal = AwsError::parse("<Error><Code>InternalError</Code></Error>");
        assert!(matches!(classify(500, internal.as_ref()), Outcome::Retry { .. }));
    }

    #[test]
    fn not_found_and_bad_signatures_are_permanent() {
        let missing = AwsError::parse(
            r#"{"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"The specified queue does not exist."}"#,
        )
        .unwrap();
        assert_eq!(missing.code, "QueueDoesNotExist");
        assert!(matches!(classify(400, Some(&missing)), Outcome::Reject { .. }));
        let sig =
            AwsError::parse("<Error><Code>SignatureDoesNotMatch</Code><Message>a &amp; b</Message></Error>").unwrap();
        assert_eq!(sig.message, "a & b");
        assert!(matches!(classify(403, Some(&sig)), Outcome::Reject { .. }));
    }
}
