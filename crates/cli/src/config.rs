//! Layered configuration: built-in defaults → `switchyard.toml` →
//! `SWITCHYARD_*` environment → command-line flags; validated before use.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP API listens on.
    pub listen: String,
    /// Where the embedded database, the secret key file and the admin key live.
    pub data_dir: PathBuf,
    /// `postgres://…` to use PostgreSQL; the SQLite file in `data_dir` when absent.
    pub database_url: Option<String>,
    /// Base64 of 32 bytes; encrypts secrets at rest. A key file in `data_dir` when absent.
    pub secret_key: Option<String>,
    pub log_format: LogFormat,
    /// A tracing filter, e.g. `info` or `switchyard_api=debug,info`.
    pub log_level: String,
    /// Largest accepted request body.
    pub body_limit_bytes: usize,
    pub egress: EgressConfig,
    /// Days finished deliveries (with their attempts) and records are kept.
    pub retention_days: f64,
    /// Memory, in MiB, that deliveries waiting in the workers' queues may
    /// hold together; beyond it they wait in the database.
    pub queue_memory_mb: u64,
}

/// Outbound safety.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressConfig {
    /// CIDRs that delivery may reach although they are not public (loopback,
    /// private networks). A list, or one comma-separated string
    /// (`SWITCHYARD_EGRESS_ALLOW=127.0.0.1/32,::1/128`).
    #[serde(default, deserialize_with = "list_or_commas")]
    pub allow: Vec<String>,
}

fn list_or_commas<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Form::deserialize(d)? {
        Form::List(items) => items,
        Form::Text(text) => text.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect(),
    })
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            secret_key: None,
            log_format: LogFormat::Pretty,
            log_level: "info".into(),
            body_limit_bytes: switchyard_api::DEFAULT_BODY_LIMIT,
            egress: EgressConfig::default(),
            retention_days: 7.0,
            queue_memory_mb: 64,
        }
    }
}

/// Values given as flags; only those present override the other layers.
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
}

impl Config {
    /// `file`: the `--config` path (must exist), else `./switchyard.toml` if present.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) if !path.exists() => bail!("config file {} does not exist", path.display()),
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None if Path::new("switchyard.toml").exists() => {
                figment = figment.merge(Toml::file_exact("switchyard.toml"))
            }
            None => {}
        }
        let config: Config = figment
            .merge(
                Env::prefixed("SWITCHYARD_")
                    .only(&[
                        "listen",
                        "data_dir",
                        "database_url",
                        "secret_key",
                        "log_format",
                        "log_level",
                        "body_limit_bytes",
                        "egress_allow",
                        "retention_days",
                        "queue_memory_mb",
                    ])
                    .map(|key| if key == "egress_allow" { "egress.allow".into() } else { key.into() }),
            )
            .merge(Serialized::defaults(overrides))
            .extract()
            .map_err(|e| anyhow::anyhow!(describe(e)))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        self.listen_addr()?;
        if let Some(url) = &self.database_url {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://") || url.starts_with("sqlite:")) {
                bail!(
                    "database_url: `{}` is not supported; use postgres://USER@HOST/DB (or leave it out for SQLite in data_dir)",
                    switchyard_store::redact_url(url)
                );
            }
        }
        if let Some(key) = &self.secret_key {
            switchyard_core::Cipher::from_base64(key).map_err(|e| anyhow::anyhow!("secret_key: {e}"))?;
        }
        self.egress_policy()?;
        if !(self.retention_days > 0.0 && self.retention_days <= 3650.0) {
            bail!("retention_days: must be more than 0 and at most 3650");
        }
        if !(1..=1 << 20).contains(&self.queue_memory_mb) {
            bail!("queue_memory_mb: must be 1 to 1048576 (MiB)");
        }
        if self.body_limit_bytes < 1024 {
            bail!("body_limit_bytes: must be at least 1024");
        }
        tracing_subscriber::EnvFilter::try_new(&self.log_level)
            .map_err(|e| anyhow::anyhow!("log_level: `{}` is not a valid filter: {e}", self.log_level))?;
        Ok(())
    }

    pub fn egress_policy(&self) -> anyhow::Result<switchyard_connectors::EgressPolicy> {
        let nets = switchyard_connectors::EgressPolicy::parse_list(&self.egress.allow.join(","))
            .map_err(|e| anyhow::anyhow!("egress.allow: {e}"))?;
        Ok(switchyard_connectors::EgressPolicy::new(nets))
    }

    pub fn listen_addr(&self) -> anyhow::Result<SocketAddr> {
        self.listen
            .parse()
            .with_context(|| format!("listen: `{}` is not an address such as 127.0.0.1:8080", self.listen))
    }

    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("switchyard.db").display()))
    }
}

/// Figment's message, naming the key and where its value came from, without the value
/// itself (it may be a secret).
fn describe(e: figment::Error) -> String {
    e.into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let source = e.metadata.as_ref().map(|m| m.name.to_string()).unwrap_or_else(|| "configuration".into());
            let what = match &e.kind {
                figment::error::Kind::InvalidType(_, expected) if key.contains("secret") || key.contains("url") => {
                    format!("expected {expected}")
                }
                figment::error::Kind::InvalidType(actual, expected) => format!("expected {expected}, found {actual}"),
                figment::error::Kind::UnknownField(field, _) => format!("unknown setting `{field}`"),
                other => other.to_string(),
            };
            if key.is_empty() {
                format!("configuration error in {source}: {what}")
            } else {
                format!("configuration error in {source}: {key}: {what}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}
