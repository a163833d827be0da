//! One broker connection per integration: a client, its event loop on a
//! task, and the sends waiting for their acknowledgement. rumqttc reports
//! a publish as sent (with its packet id) in the order it was queued, then
//! its PUBACK (QoS 1) or PUBCOMP (QoS 2) by that id; a waiter follows its
//! message through both. When the connection fails, every waiter learns why
//! and the link is dropped; the next send opens a new one.
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use super::classify;
use super::config::{Auth, MqttConfig, Protocol};
use crate::egress::Outcome;

/// Whether the broker took the message, or why not.
pub type Ack = Result<(), Outcome>;

#[derive(Default)]
struct Waiters {
    /// Queued, not yet sent, in queue order.
    queued: VecDeque<oneshot::Sender<Ack>>,
    /// Sent, waiting for the broker, by packet id.
    sent: HashMap<u16, oneshot::Sender<Ack>>,
}

impl Waiters {
    fn fail_all(&mut self, outcome: &Outcome) {
        for w in self.queued.drain(..).chain(self.sent.drain().map(|(_, w)| w)) {
            let _ = w.send(Err(outcome.clone()));
        }
    }
}

enum Client {
    V3(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

pub struct Link {
    client: Client,
    waiters: Arc<Mutex<Waiters>>,
    alive: Arc<AtomicBool>,
    /// Queue order must match waiter order: one publish is queued at a time.
    queue: tokio::sync::Mutex<()>,
    qos: u8,
    /// Dropping the link stops its event loop.
    _stop: oneshot::Sender<()>,
}

fn lock(w: &Mutex<Waiters>) -> std::sync::MutexGuard<'_, Waiters> {
    w.lock().unwrap_or_else(|e| e.into_inner())
}

impl Link {
    pub fn open(config: &MqttConfig, client_id: &str) -> Result<Link, String> {
        let waiters: Arc<Mutex<Waiters>> = Arc::default();
        let alive = Arc::new(AtomicBool::new(true));
        let (stop, stopped) = oneshot::channel();
        let qos = config.qos;
        let client = if config.v5 {
            let (client, events) = rumqttc::v5::AsyncClient::new(options_v5(config, client_id)?, 64);
            tokio::spawn(run_v5(events, waiters.clone(), alive.clone(), stopped));
            Client::V5(client)
        } else {
            let (client, events) = rumqttc::AsyncClient::new(options_v3(config, client_id)?, 64);
            tokio::spawn(run_v3(events, waiters.clone(), alive.clone(), stopped, qos));
            Client::V3(client)
        };
        Ok(Link { client, waiters, alive, queue: tokio::sync::Mutex::new(()), qos, _stop: stop })
    }

    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Relaxed)
    }

    /// Queues a message; the answer comes when the broker has it (QoS 1, 2)
    /// or when it was written (QoS 0).
    pub async fn publish(
        &self,
        topic: String,
        retain: bool,
        body: String,
        delivery_id: &str,
    ) -> Result<oneshot::Receiver<Ack>, Outcome> {
        let (tx, rx) = oneshot::channel();
        let _turn = self.queue.lock().await;
        lock(&self.waiters).queued.push_back(tx);
        let queued = match &self.client {
            Client::V3(c) => c.publish(topic, qos_v3(self.qos), retain, body).await.map_err(|e| e.to_string()),
            Client::V5(c) => {
                let properties = rumqttc::v5::mqttbytes::v5::PublishProperties {
                    user_properties: vec![("switchyard-delivery-id".into(), delivery_id.into())],
                    content_type: Some("application/json".into()),
                    payload_format_indicator: Some(1),
                    ..Default::default()
                };
                c.publish_with_properties(topic, qos_v5(self.qos), retain, body, properties)
                    .await
                    .map_err(|e| e.to_string())
            }
        };
        if let Err(e) = queued {
            lock(&self.waiters).queued.pop_back();
            return Err(Outcome::Retry { after: None, reason: format!("the connection is closed: {e}") });
        }
        Ok(rx)
    }
}

/// Where and how to connect: the broker address rumqttc takes, and the transport.
fn transport(config: &MqttConfig) -> Result<(String, rumqttc::Transport), String> {
    Ok(match config.protocol {
        Protocol::Mqtt => (config.host.clone(), rumqttc::Transport::Tcp),
        Protocol::Mqtts => {
            (config.host.clone(), rumqttc::Transport::Tls(rumqttc::TlsConfiguration::Rustls(config.tls()?)))
        }
        Protocol::Ws => (format!("ws://{}:{}{}", config.host, config.port, config.path), rumqttc::Transport::Ws),
        Protocol::Wss => (
            format!("wss://{}:{}{}", config.host, config.port, config.path),
            rumqttc::Transport::Wss(rumqttc::TlsConfiguration::Rustls(config.tls()?)),
        ),
    })
}

fn credentials(config: &MqttConfig) -> Option<(String, String)> {
    match &config.auth {
        Auth::Password(user, password) => Some((user.clone(), password.expose().to_owned())),
        _ => None,
    }
}

/// A 3.1.1 session's options, for either direction.
pub(super) fn options_v3(config: &MqttConfig, client_id: &str) -> Result<rumqttc::MqttOptions, String> {
    let (host, transport) = transport(config)?;
    let mut options = rumqttc::MqttOptions::new(client_id, host, config.port);
    options
        .set_transport(transport)
        .set_keep_alive(Duration::from_secs(config.keep_alive))
        .set_clean_session(config.clean_session);
    if let Some((user, password)) = credentials(config) {
        options.set_credentials(user, password);
    }
    Ok(options)
}

/// A 5 session's options, for either direction.
pub(super) fn options_v5(config: &MqttConfig, client_id: &str) -> Result<rumqttc::v5::MqttOptions, String> {
    let (host, transport) = transport(config)?;
    let mut options = rumqttc::v5::MqttOptions::new(client_id, host, config.port);
    options
        .set_transport(transport)
        .set_keep_alive(Duration::from_secs(config.keep_alive))
        .set_clean_start(config.clean_session);
    if !config.clean_session {
        // A persistent session lasts while disconnected (5 ends it at once by default).
        options.set_session_expiry_interval(Some(u32::MAX));
    }
    if let Some((user, password)) = credentials(config) {
        options.set_credentials(user, password);
    }
    Ok(options)
}

pub(super) fn qos_v3(q: u8) -> rumqttc::QoS {
    match q {
        0 => rumqttc::QoS::AtMostOnce,
        2 => rumqttc::QoS::ExactlyOnce,
        _ => rumqttc::QoS::AtLeastOnce,
    }
}

pub(super) fn qos_v5(q: u8) -> rumqttc::v5::mqttbytes::QoS {
    match q {
        0 => rumqttc::v5::mqttbytes::QoS::AtMostOnce,
        2 => rumqttc::v5::mqttbytes::QoS::ExactlyOnce,
        _ => rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
    }
}

/// A publish left the client: QoS 0 is done; otherwise it now waits by packet id.
fn sent(waiters: &Mutex<Waiters>, pkid: u16) {
    let mut w = lock(waiters);
    if let Some(waiter) = w.queued.pop_front() {
        if pkid == 0 {
            let _ = waiter.send(Ok(()));
        } else {
            w.sent.insert(pkid, waiter);
        }
    }
}

fn acked(waiters: &Mutex<Waiters>, pkid: u16, answer: Ack) {
    if let Some(waiter) = lock(waiters).sent.remove(&pkid) {
        let _ = waiter.send(answer);
    }
}

async fn run_v3(
    mut events: rumqttc::EventLoop,
    waiters: Arc<Mutex<Waiters>>,
    alive: Arc<AtomicBool>,
    mut stopped: oneshot::Receiver<()>,
    qos: u8,
) {
    use rumqttc::{Event, Outgoing, Packet};
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            event = events.poll() => match event {
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => sent(&waiters, pkid),
                Ok(Event::Incoming(Packet::PubAck(a))) if qos == 1 => acked(&waiters, a.pkid, Ok(())),
                Ok(Event::Incoming(Packet::PubComp(c))) => acked(&waiters, c.pkid, Ok(())),
                Ok(_) => {}
                Err(e) => {
                    alive.store(false, Ordering::Relaxed);
                    lock(&waiters).fail_all(&classify::v3(&e));
                    break;
                }
            }
        }
    }
    alive.store(false, Ordering::Relaxed);
    lock(&waiters).fail_all(&Outcome::Retry { after: None, reason: "the connection was closed".into() });
}

async fn run_v5(
    mut events: rumqttc::v5::EventLoop,
    waiters: Arc<Mutex<Waiters>>,
    alive: Arc<AtomicBool>,
    mut stopped: oneshot::Receiver<()>,
) {
    use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason, PubCompReason, PubRecReason};
    use rumqttc::v5::Event;
    use rumqttc::Outgoing;
    let refused = |what: String| {
        Err(Outcome::Reject { reason: format!("the broker refused the message: {what}"), deactivate: false })
    };
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            event = events.poll() => match event {
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => sent(&waiters, pkid),
                Ok(Event::Incoming(Packet::PubAck(a))) => {
                    let answer = match a.reason {
                        PubAckReason::Success | PubAckReason::NoMatchingSubscribers => Ok(()),
                        PubAckReason::QuotaExceeded => Err(Outcome::Retry { after: None, reason: "the broker's quota is exceeded".into() }),
                        other => refused(format!("{other:?}")),
                    };
                    acked(&waiters, a.pkid, answer);
                }
                Ok(Event::Incoming(Packet::PubRec(r))) => {
                    if !matches!(r.reason, PubRecReason::Success | PubRecReason::NoMatchingSubscribers) {
                        acked(&waiters, r.pkid, refused(format!("{:?}", r.reason)));
                    }
                }
                Ok(Event::Incoming(Packet::PubComp(c))) => {
                    let answer = match c.reason {
                        PubCompReason::Success => Ok(()),
                        other => refused(format!("{other:?}")),
                    };
                    acked(&waiters, c.pkid, answer);
                }
                Ok(_) => {}
                Err(e) => {
                    alive.store(false, Ordering::Relaxed);
                    lock(&waiters).fail_all(&classify::v5(&e));
                    break;
                }
            }
        }
    }
    alive.store(false, Ordering::Relaxed);
    lock(&waiters).fail_all(&Outcome::Retry { after: None, reason: "the connection was closed".into() });
}
