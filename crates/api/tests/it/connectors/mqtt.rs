//! MQTT against a Mosquitto this test starts: a TCP listener, a WebSocket
//! listener and a listener that wants a password.
use std::time::Duration;

use async_trait::async_trait;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde_json::{json, Value};
use tokio::sync::{mpsc, Mutex};

use super::{certificates, conformance, free_port, ingest, integration, start_peer_on_ports, Got, Peer, PeerProcess};
use crate::receiver::{value, wait_status};
use crate::Backend;

struct Mosquitto {
    tcp: u16,
    ws: u16,
    auth: u16,
    /// TLS, requiring a client certificate from the test CA.
    tls: u16,
    /// Secure WebSocket (server certificate from the test CA; no client certificate).
    wss: u16,
    /// PEM: the test CA, and a client certificate and key it signed.
    ca: String,
    client: (String, String),
    _process: PeerProcess,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    async fn start() -> Mosquitto {
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("passwd");
        let made = std::process::Command::new("mosquitto_passwd")
            .args(["-b", "-c", passwd.to_str().unwrap(), "switchyard", "right-password"])
            .status()
            .expect("mosquitto_passwd from Debian's mosquitto package");
        assert!(made.success());
        certificates(dir.path());
        let path = |f: &str| dir.path().join(f).to_string_lossy().into_owned();
        let conf = dir.path().join("mosquitto.conf");
        let (process, ports) = start_peer_on_ports("mosquitto", 5, |ports| {
            let [tcp, ws, auth, tls, wss] = ports else { unreachable!("five ports") };
            std::fs::write(
                &conf,
                format!(
                    "per_listener_settings true\nuser root\n\
                     listener {tcp} 127.0.0.1\nallow_anonymous true\n\
                     listener {ws} 127.0.0.1\nprotocol websockets\nallow_anonymous true\n\
                     listener {auth} 127.0.0.1\nallow_anonymous false\npassword_file {}\n\
                     listener {tls} 127.0.0.1\nallow_anonymous true\ncafile {}\ncertfile {}\nkeyfile {}\n\
                     require_certificate true\n\
                     listener {wss} 127.0.0.1\nprotocol websockets\nallow_anonymous true\ncertfile {}\nkeyfile {}\n",
                    passwd.display(),
                    path("ca.crt"),
                    path("server.crt"),
                    path("server.key"),
                    path("server.crt"),
                    path("server.key"),
                ),
            )
            .unwrap();
            vec!["-c".into(), conf.to_string_lossy().into_owned()]
        })
        .await;
        let [tcp, ws, auth, tls, wss] = ports[..] else { unreachable!("five ports") };
        let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
        let (ca, client) = (read("ca.crt"), (read("client.crt"), read("client.key")));
        Mosquitto { tcp, ws, auth, tls, wss, ca, client, _process: process, _dir: dir }
    }
}

/// A subscriber to everything under a fresh topic prefix.
struct Subscriber {
    prefix: String,
    messages: Mutex<mpsc::UnboundedReceiver<rumqttc::v5::mqttbytes::v5::Publish>>,
    _client: AsyncClient,
}

impl Subscriber {
    async fn start(port: u16) -> Subscriber {
        let prefix = format!("sytest/{}", free_port());
        let (client, mut events) = AsyncClient::new(MqttOptions::new(format!("sub-{prefix}"), "127.0.0.1", port), 64);
        client.subscribe(format!("{prefix}/#"), QoS::AtLeastOnce).await.unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let mut subscribed_tx = Some(subscribed_tx);
            while let Ok(event) = events.poll().await {
                match event {
                    Event::Incoming(Packet::SubAck(_)) => {
                        let _ = subscribed_tx.take().map(|t| t.send(()));
                    }
                    Event::Incoming(Packet::Publish(p)) => {
                        let _ = tx.send(p);
                    }
                    _ => {}
                }
            }
        });
        subscribed.await.unwrap();
        Subscriber { prefix, messages: Mutex::new(rx), _client: client }
    }

    async fn next(&self, n: usize, v5: bool) -> Vec<Got> {
        let mut messages = self.messages.lock().await;
        let mut got = Vec::new();
        while got.len() < n {
            let p = tokio::time::timeout(Duration::from_secs(10), messages.recv())
                .await
                .unwrap_or_else(|_| panic!("the broker passed on {} messages, expected {n}", got.len()))
                .unwrap();
            let body: Value = serde_json::from_slice(&p.payload).unwrap();
            let topic = String::from_utf8(p.topic.to_vec()).unwrap();
            assert_eq!(
                topic,
                format!("{}/{}/{}", self.prefix, body["kind"].as_str().unwrap(), body["object"].as_str().unwrap())
            );
            let delivery_id = if v5 {
                let props = p.properties.expect("MQTT 5 properties");
                assert_eq!(props.content_type.as_deref(), Some("application/json"));
                let (_, id) =
                    props.user_properties.iter().find(|(k, _)| k == "switchyard-delivery-id").expect("user property");
                id.clone()
            } else {
                body["delivery_id"].as_str().unwrap().to_owned()
            };
            got.push(Got { body, delivery_id });
        }
        got
    }
}

struct Target {
    broker: Mosquitto,
    subscriber: Subscriber,
    /// Connection properties of the flavour under test.
    connection: Value,
    v5: bool,
}

#[async_trait]
impl Peer for Target {
    fn type_key(&self) -> &'static str {
        "MQTT"
    }
    fn properties(&self) -> Value {
        let mut p = self.connection.clone();
        p["topicTemplate"] =
            json!(format!("{}/{{{{ record.kind }}}}/{{{{ record.property }}}}", self.subscriber.prefix));
        p
    }
    fn unreachable(&self) -> Value {
        let mut p = self.properties();
        p["port"] = json!(free_port());
        p
    }
    fn refused(&self) -> (Value, &'static str) {
        let mut p = self.properties();
        p["protocol"] = json!("mqtt");
        p["port"] = json!(self.broker.auth);
        p["authMethod"] = json!("PASSWORD");
        p["username"] = json!("switchyard");
        p["password"] = json!("wrong-password");
        (p, "the broker refused the connection")
    }
    async fn receive(&self, n: usize) -> Vec<Got> {
        self.subscriber.next(n, self.v5).await
    }
}

async fn mqtt_3_over_tcp_passes_the_connector_checks(backend: Backend) {
    let broker = Mosquitto::start().await;
    let subscriber = Subscriber::start(broker.tcp).await;
    let connection =
        json!({"protocol": "mqtt", "host": "127.0.0.1", "port": broker.tcp, "version": "3.1.1", "qos": "1"});
    conformance(backend, &Target { broker, subscriber, connection, v5: false }).await;
}

async fn mqtt_5_over_websocket_passes_the_connector_checks(backend: Backend) {
    let broker = Mosquitto::start().await;
    let subscriber = Subscriber::start(broker.tcp).await;
    let connection =
        json!({"protocol": "ws", "host": "127.0.0.1", "port": broker.ws, "path": "/mqtt", "version": "5", "qos": "2"});
    conformance(backend, &Target { broker, subscriber, connection, v5: true }).await;
}

/// mqtts with a private CA and a client certificate (the listener requires
/// one); a broker whose certificate the CA did not sign is refused for good.
async fn mqtts_with_a_client_certificate_passes_the_connector_checks(backend: Backend) {
    let broker = Mosquitto::start().await;
    let subscriber = Subscriber::start(broker.tcp).await;
    let connection = json!({"protocol": "mqtts", "host": "127.0.0.1", "port": broker.tls, "version": "5", "qos": "1",
        "authMethod": "CERTIFICATE", "caCertificate": broker.ca, "clientCertificate": broker.client.0,
        "privateKey": broker.client.1});
    let target = Target { broker, subscriber, connection, v5: true };
    conformance(backend, &target).await;

    let app = crate::spawn_configured(backend, |_| {}).await;
    let (_, device, _) = app.place_and_device("meter").await;
    let other = tempfile::tempdir().unwrap();
    certificates(other.path());
    let mut props = target.properties();
    props["caCertificate"] = json!(std::fs::read_to_string(other.path().join("ca.crt")).unwrap());
    let id = integration(&app, &target, "unknown CA", props, json!({"kinds": ["value"]})).await;
    ingest(&app, vec![value(&device, "power", json!(1))]).await;
    let dead = wait_status(&app, &id, "dead").await;
    assert_eq!(dead["attemptCount"], 1, "{dead}");
    assert!(dead["lastError"].as_str().unwrap().contains("TLS"), "{dead}");
    // Certificates are checked when saved.
    let mut bad = target.properties();
    bad["caCertificate"] = json!("not a certificate");
    bad["privateKey"] = json!("not a key");
    let res = app
        .post("/v2/integrations", json!({"name": "x", "type": "MQTT", "direction": "EGRESS", "properties": bad}))
        .await;
    assert_eq!(res.fields(), ["properties.caCertificate", "properties.privateKey"]);
}

/// MQTT 3.1.1 over secure WebSocket, trusting the private CA.
async fn mqtt_over_wss_passes_the_connector_checks(backend: Backend) {
    let broker = Mosquitto::start().await;
    let subscriber = Subscriber::start(broker.tcp).await;
    let connection = json!({"protocol": "wss", "host": "127.0.0.1", "port": broker.wss, "path": "/mqtt",
        "version": "3.1.1", "qos": "1", "caCertificate": broker.ca});
    conformance(backend, &Target { broker, subscriber, connection, v5: false }).await;
}

/// The right password gets through on the listener that wants one, QoS 0 included.
async fn a_password_and_qos_0_deliver(backend: Backend) {
    let broker = Mosquitto::start().await;
    let subscriber = Subscriber::start(broker.tcp).await;
    let app = crate::spawn_configured(backend, |_| {}).await;
    let (_, device, _) = app.place_and_device("meter").await;
    let props = json!({"host": "127.0.0.1", "port": broker.auth, "version": "5", "qos": "0",
        "authMethod": "PASSWORD", "username": "switchyard", "password": "right-password",
        "topicTemplate": format!("{}/{{{{ record.kind }}}}/{{{{ record.property }}}}", subscriber.prefix)});
    let target = Target { broker, subscriber, connection: json!({}), v5: true };
    let id = integration(&app, &target, "auth", props, json!({"kinds": ["value"]})).await;
    ingest(&app, vec![value(&device, "power", json!(7))]).await;
    let got = target.receive(1).await.remove(0);
    assert_eq!(got.body["data"], 7);
    let delivery = wait_status(&app, &id, "succeeded").await;
    assert_eq!(delivery["id"], got.delivery_id.as_str());
    assert_eq!(
        delivery["target"],
        format!("mqtt://127.0.0.1:{} {}/value/power", target.broker.auth, target.subscriber.prefix)
    );
}

/// An ingress integration's view once it connected, or failed with an error (10 s at most).
async fn settled_state(app: &crate::App, id: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..1000 {
        last = app.get(&format!("/v2/integrations/{id}")).await.body;
        let s = last["connection"]["state"].as_str().unwrap_or_default();
        if s == "connected" || (s == "reconnecting" && last["connection"]["lastError"].is_string()) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{id} neither connected nor failed: {last:#}");
}

/// Receiving over every transport and authentication the broker offers:
/// each integration gets what is published on the plain listener; a wrong
/// password keeps it reconnecting with the broker's refusal in its status.
async fn ingress_connects_over_every_transport_and_authentication(backend: Backend) {
    let broker = Mosquitto::start().await;
    let app = crate::spawn_configured(backend, |_| {}).await;
    let (place, device, _) = app.place_and_device("meter").await;
    let cert = |p: Value| {
        let mut p = p;
        p["caCertificate"] = json!(broker.ca);
        p
    };
    let variants = [
        json!({"protocol": "ws", "port": broker.ws, "version": "5"}),
        cert(json!({"protocol": "mqtts", "port": broker.tls, "version": "5", "authMethod": "CERTIFICATE",
            "clientCertificate": broker.client.0, "privateKey": broker.client.1})),
        cert(json!({"protocol": "wss", "port": broker.wss, "version": "3.1.1"})),
        json!({"port": broker.auth, "authMethod": "PASSWORD", "username": "switchyard", "password": "right-password"}),
        json!({"port": broker.auth, "authMethod": "PASSWORD", "username": "switchyard", "password": "wrong"}),
    ];
    let mut ids = Vec::new();
    for (i, variant) in variants.iter().enumerate() {
        let mut props = json!({"host": "127.0.0.1", "topics": [format!("t{i}/+/data")], "externalIdFrom": "topic:1"});
        props.as_object_mut().unwrap().extend(variant.as_object().unwrap().clone());
        let body = json!({"name": format!("in {i}"), "type": "MQTT", "direction": "INGRESS", "properties": props});
        let created = app.post("/v2/integrations", body).await;
        assert_eq!(created.status, reqwest::StatusCode::CREATED, "{:?}", created.body);
        let id = created.body["id"].as_str().unwrap().to_owned();
        let path = format!("/places/{place}/devices/{device}");
        let mapping = json!({"integrationId": id, "externalId": "sensor-7", "resourcePath": path});
        assert_eq!(app.post("/v2/integrations/resource-mappings", mapping).await.status, reqwest::StatusCode::CREATED);
        ids.push(id);
    }
    let (publisher, mut events) = AsyncClient::new(MqttOptions::new("ingress-publisher", "127.0.0.1", broker.tcp), 64);
    tokio::spawn(async move { while events.poll().await.is_ok() {} });
    for (i, id) in ids.iter().enumerate().take(4) {
        let view = settled_state(&app, id).await;
        assert_eq!(view["connection"]["state"], "connected", "{view:#}");
        publisher
            .publish(format!("t{i}/sensor-7/data"), QoS::AtLeastOnce, false, format!(r#"{{"v{i}": {i}}}"#))
            .await
            .unwrap();
        let telemetry = format!("/v2/telemetry?deviceId={device}&property=v{i}");
        let mut stored = Value::Null;
        for _ in 0..1000 {
            stored = app.get(&telemetry).await.body;
            if stored["data"].as_array().is_some_and(|d| !d.is_empty()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(stored["data"][0]["record"]["payload"], i, "variant {i}: {stored:#}");
    }
    let refused = settled_state(&app, &ids[4]).await;
    assert_eq!(refused["connection"]["state"], "reconnecting");
    let error = refused["connection"]["lastError"].as_str().unwrap();
    assert!(error.starts_with("the broker refused the connection"), "{error}");
    assert!(!refused.to_string().contains("wrong\""), "the password is never shown");
}

on_both_stores!(
    ingress_connects_over_every_transport_and_authentication,
    mqtt_3_over_tcp_passes_the_connector_checks,
    mqtt_5_over_websocket_passes_the_connector_checks,
    mqtts_with_a_client_certificate_passes_the_connector_checks,
    mqtt_over_wss_passes_the_connector_checks,
    a_password_and_qos_0_deliver
);
