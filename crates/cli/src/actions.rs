//! `switchyard actions`: an organization's actions through a running
//! server's API (the key says which organization): list them, or follow
//! one to its end with a progress bar.
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::Value;

use crate::client::Api;

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The server (default: http:// and the configured listen address).
    #[arg(long, env = "SWITCHYARD_URL", value_name = "URL")]
    pub url: Option<String>,
    /// An API key of the organization (a read key is enough).
    #[arg(long, env = "SWITCHYARD_API_KEY", value_name = "KEY", hide_env_values = true)]
    pub api_key: String,
}

#[derive(Debug, Subcommand)]
pub enum ActionsCommand {
    /// List the organization's actions, newest first.
    List {
        /// Only this integration's (`int_` id).
        #[arg(long, value_name = "ID")]
        integration: Option<String>,
        /// Only those in this state: queued, running, succeeded, failed or cancelled.
        #[arg(long)]
        status: Option<String>,
        /// How many at most (1 to 200).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Follow an action until it ends, with its progress; exits 1 unless it succeeded.
    Watch {
        /// The action's id (`act_…`).
        action: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// How often `watch` asks.
const EVERY: Duration = Duration::from_millis(500);

pub async fn run(command: ActionsCommand, listen: &str) -> anyhow::Result<()> {
    let api = |server: &ServerArgs| {
        let url = server.url.clone().unwrap_or_else(|| format!("http://{listen}"));
        Api::to(&url, server.api_key.clone())
    };
    match command {
        ActionsCommand::List { integration, status, limit, server } => {
            let mut query = vec![format!("limit={limit}")];
            query.extend(integration.map(|i| format!("integrationId={i}")));
            query.extend(status.map(|s| format!("status={s}")));
            let found = api(&server)?.get(&format!("/actions?{}", query.join("&"))).await?;
            println!("{:<30} {:<16} {:<10} {:<30} PROGRESS", "ID", "KIND", "STATUS", "INTEGRATION");
            for a in found["data"].as_array().into_iter().flatten() {
                let text = |k: &str| a[k].as_str().unwrap_or_default().to_owned();
                println!(
                    "{:<30} {:<16} {:<10} {:<30} {}",
                    text("id"),
                    text("kind"),
                    text("status"),
                    text("integrationId"),
                    summary(&a["progress"])
                );
            }
            Ok(())
        }
        ActionsCommand::Watch { action, server } => watch(&api(&server)?, &action).await,
    }
}

/// A progress object in a line: its percent first, then its counters.
fn summary(progress: &Value) -> String {
    let Some(fields) = progress.as_object() else { return String::new() };
    let mut parts = Vec::new();
    if let Some(p) = fields.get("percent").and_then(Value::as_f64) {
        parts.push(format!("{p:.1}%"));
    }
    for (k, v) in fields {
        if v.is_number() && k != "percent" && k != "position" {
            parts.push(format!("{k} {v}"));
        }
    }
    parts.join(", ")
}

async fn watch(api: &Api, id: &str) -> anyhow::Result<()> {
    let path = format!("/actions/{id}");
    let bar = indicatif::ProgressBar::new(1000);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {elapsed_precise} [{bar:40}] {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    loop {
        let action = api.get(&path).await?;
        let status = action["status"].as_str().unwrap_or_default().to_owned();
        if let Some(p) = action["progress"]["percent"].as_f64() {
            bar.set_position((p * 10.0) as u64);
        }
        bar.set_message(format!("{status}: {}", summary(&action["progress"])));
        if !matches!(status.as_str(), "queued" | "running") {
            bar.finish_and_clear();
            let kind = action["kind"].as_str().unwrap_or_default();
            println!("{id} ({kind}) {status}: {}", summary(&action["progress"]));
            if let Some(e) = action["error"].as_str() {
                println!("error: {e}");
            }
            if !action["result"].is_null() {
                println!("result: {}", action["result"]);
            }
            anyhow::ensure!(status == "succeeded", "the action {status}");
            return Ok(());
        }
        bar.tick();
        tokio::time::sleep(EVERY).await;
    }
}
