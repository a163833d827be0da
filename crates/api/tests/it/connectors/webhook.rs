//! WEBHOOK through the same connector checks as every other type, against
//! the axum receiver of the delivery tests.
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{conformance, free_port, Got, Peer};
use crate::receiver::{Answer, Receiver};
use crate::Backend;

struct Hook {
    receiver: Receiver,
    /// Answers 400 to everything: the far side refusing for good.
    refusing: Receiver,
    seen: Mutex<usize>,
}

#[async_trait]
impl Peer for Hook {
    fn type_key(&self) -> &'static str {
        "WEBHOOK"
    }
    fn properties(&self) -> Value {
        json!({"url": self.receiver.url})
    }
    fn unreachable(&self) -> Value {
        json!({"url": format!("http://127.0.0.1:{}", free_port())})
    }
    fn refused(&self) -> (Value, &'static str) {
        (json!({"url": self.refusing.url}), "HTTP 400")
    }
    fn has_objects(&self) -> bool {
        false
    }
    fn published_shape(&self) -> bool {
        false
    }
    async fn receive(&self, n: usize) -> Vec<Got> {
        let seen = *self.seen.lock().unwrap();
        let got = self.receiver.wait_for(seen + n).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        *self.seen.lock().unwrap() = seen + n;
        got[seen..seen + n]
            .iter()
            .map(|r| Got { body: r.json(), delivery_id: r.header("webhook-id").to_owned() })
            .collect()
    }
}

async fn webhook_passes_the_connector_checks(backend: Backend) {
    let hook = Hook {
        receiver: Receiver::start(vec![]).await,
        refusing: Receiver::start(vec![Answer(400, vec![], Duration::ZERO)]).await,
        seen: Mutex::new(0),
    };
    conformance(backend, &hook).await;
}

on_both_stores!(webhook_passes_the_connector_checks);
