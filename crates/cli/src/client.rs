//! Calls to a Switchyard's API, for the commands that act through a
//! running server (`actions`) and for the bench.
use std::time::Duration;

use serde_json::Value;
use switchyard_connectors::http::{HttpClient, ANSWER_MAX};

const TIMEOUT: Duration = Duration::from_secs(60);

/// One server's `/v2`, called with one API key.
#[derive(Clone)]
pub struct Api {
    client: HttpClient,
    /// `http://host:port/v2`.
    pub base: String,
    key: String,
}

impl Api {
    pub fn new(client: HttpClient, base: String, key: String) -> Self {
        Self { client, base, key }
    }

    /// For a server the user names: any address may be called.
    pub fn to(server: &str, key: String) -> anyhow::Result<Self> {
        let any = switchyard_connectors::EgressPolicy::parse_list("0.0.0.0/0,::/0").map_err(anyhow::Error::msg)?;
        let client = HttpClient::new(switchyard_connectors::EgressPolicy::new(any), 4);
        Ok(Self::new(client, format!("{}/v2", server.trim_end_matches('/')), key))
    }

    pub async fn call(&self, method: http::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("x-api-key", self.key.as_str())
            .header("content-type", "application/json")
            .body(body.into())?;
        let res = self.client.send(request, TIMEOUT).await.map_err(|e| anyhow::anyhow!("{}: {e}", self.base))?;
        let status = res.status();
        let body: Value = serde_json::from_slice(&res.bytes(ANSWER_MAX).await).unwrap_or(Value::Null);
        if !(200..300).contains(&status) {
            let detail = body["detail"].as_str().map(str::to_owned).unwrap_or_else(|| body.to_string());
            anyhow::bail!("{path}: {status} {detail}");
        }
        Ok(body)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(http::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(http::Method::POST, path, Some(body)).await
    }
}
