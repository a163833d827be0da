//! Receiving: one session per integration, subscribed on every connect.
//! Acknowledgements are manual: each message goes to the sink as it
//! arrives, and its PUBACK (QoS 1) or PUBREC (QoS 2) is sent once the sink
//! has stored it, in arrival order (as MQTT requires), while later messages
//! are already being stored. A QoS 1 or 2 message the link loses before its
//! acknowledgement the broker sends again on the persistent session.
use std::collections::VecDeque;

use async_trait::async_trait;
use switchyard_core::{now_ms, InboundMessage, Integration, Metadata};

use super::classify;
use super::config::MqttConfig;
use super::link::{options_v3, options_v5, qos_v3, qos_v5};
use crate::egress::{BuildError, EgressContext, Outcome};
use crate::ingress::{Handover, Ingress, IngressSink, LinkEvent};
use crate::policy::EgressPolicy;
use crate::shared::resolve_allowed;

/// Where the filters a persistent session is subscribed to are kept.
const SUBSCRIBED: &str = "mqtt.subscribed";

/// Messages being stored at once, at most; beyond it the link is not read
/// (QoS 1 and 2 brokers hold what is unacknowledged anyway).
const IN_FLIGHT: usize = 512;

pub struct MqttIngress {
    config: MqttConfig,
    client_id: String,
    policy: EgressPolicy,
}

impl MqttIngress {
    pub fn new(
        config: MqttConfig,
        integration: &Integration,
        _globals: &Metadata,
        ctx: &EgressContext,
    ) -> Result<Self, BuildError> {
        if config.topics.is_empty() {
            return Err(BuildError::Config("topics: subscribe to at least one topic filter".into()));
        }
        // Checked when saved, and again as rendered from the globals.
        for (i, topic) in config.topics.iter().enumerate() {
            super::config::topic_filter(topic)
                .map_err(|e| BuildError::Config(format!("topics[{i}] `{topic}`: {e}")))?;
        }
        // Stable across restarts, so the broker keeps the persistent session.
        let client_id = config.client_id.clone().unwrap_or_else(|| format!("switchyard-{}", integration.id));
        Ok(Self { config, client_id, policy: ctx.policy.clone() })
    }
}

fn reason(outcome: Outcome) -> String {
    match outcome {
        Outcome::Retry { reason, .. } | Outcome::Reject { reason, .. } => reason,
        Outcome::Delivered => "the connection ended".into(),
    }
}

/// What the two protocol versions report, in one shape.
enum Event<P> {
    Connected,
    Subscribed(Result<(), String>),
    Message(P, InboundMessage),
    /// The DISCONNECT asked for is written (after every acknowledgement queued before it).
    Disconnected,
    Other,
}

/// A session of either protocol version.
#[async_trait]
trait Session: Send {
    type Publish: Send;
    async fn poll(&mut self) -> Result<Event<Self::Publish>, String>;
    async fn subscribe(&mut self, topics: &[String], qos: u8) -> Result<(), String>;
    async fn unsubscribe(&mut self, topics: &[String]) -> Result<(), String>;
    /// Queues the acknowledgement; `false` when the client's queue is full
    /// (the event loop writes what it holds as it is polled).
    fn ack(&self, publish: &Self::Publish) -> bool;
    fn disconnect(&self);
}

struct V3(rumqttc::AsyncClient, rumqttc::EventLoop);
struct V5(rumqttc::v5::AsyncClient, rumqttc::v5::EventLoop);

#[async_trait]
impl Session for V3 {
    type Publish = rumqttc::Publish;
    async fn poll(&mut self) -> Result<Event<Self::Publish>, String> {
        use rumqttc::{Event as E, Packet, SubscribeReasonCode};
        Ok(match self.1.poll().await.map_err(|e| reason(classify::v3(&e)))? {
            E::Incoming(Packet::ConnAck(_)) => Event::Connected,
            E::Incoming(Packet::SubAck(a)) => {
                Event::Subscribed(if a.return_codes.iter().any(|c| matches!(c, SubscribeReasonCode::Failure)) {
                    Err("the broker refused a subscription".into())
                } else {
                    Ok(())
                })
            }
            E::Incoming(Packet::Publish(p)) => {
                let message = InboundMessage {
                    source_ref: p.topic.clone(),
                    payload: p.payload.to_vec(),
                    received_at: now_ms(),
                    ..Default::default()
                };
                Event::Message(p, message)
            }
            E::Outgoing(rumqttc::Outgoing::Disconnect) => Event::Disconnected,
            _ => Event::Other,
        })
    }
    async fn subscribe(&mut self, topics: &[String], qos: u8) -> Result<(), String> {
        let filters = topics.iter().map(|t| rumqttc::SubscribeFilter::new(t.clone(), qos_v3(qos)));
        self.0.subscribe_many(filters).await.map_err(|e| e.to_string())
    }
    async fn unsubscribe(&mut self, topics: &[String]) -> Result<(), String> {
        for t in topics {
            self.0.unsubscribe(t.clone()).await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }
    fn ack(&self, publish: &Self::Publish) -> bool {
        self.0.try_ack(publish).is_ok()
    }
    fn disconnect(&self) {
        let _ = self.0.try_disconnect();
    }
}

#[async_trait]
impl Session for V5 {
    type Publish = rumqttc::v5::mqttbytes::v5::Publish;
    async fn poll(&mut self) -> Result<Event<Self::Publish>, String> {
        use rumqttc::v5::mqttbytes::v5::{Packet, SubscribeReasonCode};
        use rumqttc::v5::Event as E;
        Ok(match self.1.poll().await.map_err(|e| reason(classify::v5(&e)))? {
            E::Incoming(Packet::ConnAck(_)) => Event::Connected,
            E::Incoming(Packet::SubAck(a)) => {
                Event::Subscribed(match a.return_codes.iter().find(|c| !matches!(c, SubscribeReasonCode::Success(_))) {
                    Some(refused) => Err(format!("the broker refused a subscription: {refused:?}")),
                    None => Ok(()),
                })
            }
            E::Incoming(Packet::Publish(p)) => {
                let mut attributes = Vec::new();
                if let Some(props) = &p.properties {
                    attributes.extend(props.user_properties.iter().cloned());
                    if let Some(c) = &props.correlation_data {
                        attributes.push(("correlationData".into(), String::from_utf8_lossy(c).into_owned()));
                    }
                    if let Some(t) = &props.content_type {
                        attributes.push(("contentType".into(), t.clone()));
                    }
                }
                let message = InboundMessage {
                    source_ref: String::from_utf8_lossy(&p.topic).into_owned(),
                    payload: p.payload.to_vec(),
                    attributes,
                    received_at: now_ms(),
                    ..Default::default()
                };
                Event::Message(p, message)
            }
            E::Outgoing(rumqttc::Outgoing::Disconnect) => Event::Disconnected,
            _ => Event::Other,
        })
    }
    async fn subscribe(&mut self, topics: &[String], qos: u8) -> Result<(), String> {
        let filters = topics.iter().map(|t| rumqttc::v5::mqttbytes::v5::Filter::new(t.clone(), qos_v5(qos)));
        self.0.subscribe_many(filters).await.map_err(|e| e.to_string())
    }
    async fn unsubscribe(&mut self, topics: &[String]) -> Result<(), String> {
        for t in topics {
            self.0.unsubscribe(t.clone()).await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }
    fn ack(&self, publish: &Self::Publish) -> bool {
        self.0.try_ack(publish).is_ok()
    }
    fn disconnect(&self) {
        let _ = self.0.try_disconnect();
    }
}

/// The session's loop: read; hand the messages over in arrival order while
/// earlier ones are stored; acknowledge in order; on a stop, acknowledge
/// what is stored and leave.
async fn serve<S: Session>(mut session: S, config: &MqttConfig, sink: &dyn IngressSink) -> Result<(), String> {
    let mut handover: Handover<'_, S::Publish> = Handover::new(sink);
    // Stored, in order, waiting for room in the client's queue.
    let mut acks: VecDeque<S::Publish> = VecDeque::new();
    let mut stopping = false;
    let stop = sink.stopping();
    tokio::pin!(stop);
    loop {
        while let Some(publish) = acks.front() {
            if !session.ack(publish) {
                break;
            }
            acks.pop_front();
        }
        if stopping && handover.is_empty() {
            break;
        }
        let held = handover.len() + acks.len();
        tokio::select! {
            _ = &mut stop, if !stopping => {
                // What waits its turn is left unacknowledged: the broker sends it again.
                stopping = true;
                handover.close();
            }
            Some((publish, stored)) = handover.next(), if !handover.is_empty() => {
                match stored {
                    Ok(_) => acks.push_back(publish),
                    // Stopping, the sink took no more: acknowledge nothing after it.
                    Err(_) if stopping => break,
                    Err(e) => return Err(e),
                }
            }
            // Polled while acknowledgements wait too: that is what writes them.
            event = session.poll(), if held < IN_FLIGHT || !acks.is_empty() => match event? {
                Event::Connected => {
                    if !config.clean_session {
                        // Filters a persistent session still holds that the settings no longer name.
                        let before: Vec<String> =
                            sink.progress(SUBSCRIBED).await.and_then(|v| serde_json::from_str(&v).ok()).unwrap_or_default();
                        let removed: Vec<String> = before.into_iter().filter(|f| !config.topics.contains(f)).collect();
                        if !removed.is_empty() {
                            session.unsubscribe(&removed).await?;
                        }
                    }
                    session.subscribe(&config.topics, config.qos).await?;
                    sink.link(LinkEvent::Connected);
                }
                Event::Subscribed(result) => {
                    result?;
                    if !config.clean_session {
                        let topics = serde_json::to_string(&config.topics).unwrap_or_default();
                        sink.save_progress(SUBSCRIBED, &topics).await?;
                    }
                }
                // What arrives once stopping is left unacknowledged: the broker sends it again.
                Event::Message(publish, message) if !stopping => {
                    if config.topics.iter().any(|f| super::config::topic_matches(f, &message.source_ref)) {
                        handover.push(publish, message);
                    } else {
                        // Sent for a filter unsubscribed just now, before the broker took the UNSUBSCRIBE.
                        handover.skip(publish);
                    }
                }
                _ => {}
            }
        }
    }
    // Write the acknowledgements queued, then leave the session as it is (a stop never unsubscribes).
    let flush = async {
        while let Some(publish) = acks.front() {
            if session.ack(publish) {
                acks.pop_front();
            } else if session.poll().await.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), flush).await;
    session.disconnect();
    let flush = async { while !matches!(session.poll().await, Ok(Event::Disconnected) | Err(_)) {} };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), flush).await;
    Ok(())
}

#[async_trait]
impl Ingress for MqttIngress {
    async fn run(&mut self, sink: &dyn IngressSink) -> Result<(), String> {
        resolve_allowed(&self.policy, &self.config.host, self.config.port).await?;
        let capacity = IN_FLIGHT * 2;
        if self.config.v5 {
            let mut options = options_v5(&self.config, &self.client_id)?;
            options.set_manual_acks(true);
            let (client, events) = rumqttc::v5::AsyncClient::new(options, capacity);
            serve(V5(client, events), &self.config, sink).await
        } else {
            let mut options = options_v3(&self.config, &self.client_id)?;
            options.set_manual_acks(true);
            let (client, events) = rumqttc::AsyncClient::new(options, capacity);
            serve(V3(client, events), &self.config, sink).await
        }
    }
}
