//! Ingress end to end: a broker this test starts, a receiver the engine
//! supervises, records read back through the API and delivered to a webhook.
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::connectors::{free_port, PeerProcess};
use crate::receiver::{webhook_with_trigger, Receiver};
use crate::{spawn_configured, App, Backend};

/// A Mosquitto on one port that keeps sessions across its own restarts
/// (persistence in its directory, saved when it stops).
struct Broker {
    port: u16,
    conf: std::path::PathBuf,
    process: Option<PeerProcess>,
    _dir: tempfile::TempDir,
}

impl Broker {
    async fn start() -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "user root\nlistener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
                 persistence_location {dir}/\nmax_queued_messages 10000\nlog_type unsubscribe\nlog_dest file {dir}/unsubscribed.log\n",
                dir = dir.path().display()
            ),
        )
        .unwrap();
        let mut broker = Broker { port, conf, process: None, _dir: dir };
        broker.up().await;
        broker
    }

    async fn up(&mut self) {
        let child = std::process::Command::new("mosquitto")
            .args(["-c", self.conf.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("mosquitto from Debian's mosquitto package (scripts/services)");
        self.process = Some(PeerProcess::new(child));
        for _ in 0..500 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("mosquitto did not listen on {}", self.port);
    }

    /// The `client filter` lines of every UNSUBSCRIBE the broker took.
    fn unsubscribed(&self) -> String {
        std::fs::read_to_string(self.conf.with_file_name("unsubscribed.log")).unwrap_or_default()
    }

    /// Stops it as an operator would (SIGTERM: it saves its sessions).
    async fn down(&mut self) {
        if let Some(p) = self.process.take() {
            p.terminate().await;
        }
    }

    /// Publishes each payload to `topic` at QoS 1 and returns once the broker acknowledged them all.
    async fn publish(&self, topic: &str, payloads: &[Value]) {
        let raw: Vec<Vec<u8>> = payloads.iter().map(|p| serde_json::to_vec(p).unwrap()).collect();
        self.publish_raw(topic, &raw).await
    }

    async fn publish_raw(&self, topic: &str, payloads: &[Vec<u8>]) {
        use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
        let mut options = MqttOptions::new(format!("publisher-{}", free_port()), "127.0.0.1", self.port);
        options.set_inflight(100);
        let (client, mut events) = AsyncClient::new(options, payloads.len() + 10);
        for p in payloads {
            client.publish(topic, QoS::AtLeastOnce, false, p.clone()).await.unwrap();
        }
        let mut acked = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while acked < payloads.len() {
            let event = tokio::time::timeout_at(deadline, events.poll()).await.expect("the broker acknowledges");
            if let Ok(Event::Incoming(Packet::PubAck(_))) = event {
                acked += 1;
            }
        }
        let _ = client.disconnect().await;
    }
}

/// Polls `path` until `done` holds for its body (15 s at most).
pub(crate) async fn until(app: &App, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..1500 {
        last = app.get(path).await.body;
        if done(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}: {path} never did; last {last:#}");
}

pub(crate) fn state(integration: &Value) -> &str {
    integration["connection"]["state"].as_str().unwrap_or_default()
}

pub(crate) fn records(list: &Value) -> Vec<Value> {
    list["data"].as_array().cloned().unwrap_or_default()
}

/// A source an ingress type receives from, for the checks every ingress
/// type passes ([`conformance`]).
#[async_trait::async_trait]
pub trait Source: Send + Sync {
    fn type_key(&self) -> &'static str;
    /// The integration's properties: JSON messages (`format: json`), the
    /// device named by where this source puts the external id of [`Source::send`].
    fn properties(&self) -> Value;
    /// Where a message naming `external` comes from, as the message log shows it.
    fn source_ref(&self, external: &str) -> String;
    /// Sends each payload as a message naming `external`; returns once the source holds them all.
    async fn send(&self, external: &str, payloads: &[Vec<u8>]);
    /// The message a payload naming `external` is, as sent (a source with no
    /// topic or attributes puts the device into the payload).
    fn wire(&self, _external: &str, payload: &[u8]) -> Vec<u8> {
        payload.to_vec()
    }
    /// Stops the source as an operator would; [`Source::start`] brings it back with what it held.
    async fn stop(&mut self);
    async fn start(&mut self);
    /// Whether there is a source to stop: a broker is, a caller posting to Switchyard is not.
    fn stoppable(&self) -> bool {
        true
    }
    /// Told of the integration once it exists, with its create response
    /// (what was generated and shown once).
    fn attach(&self, _base: &str, _created: &Value) {}
    /// A payload the decoder refuses, and how its reason starts (a source
    /// that only carries JSON sends JSON that is not an object).
    fn poison(&self) -> (&'static [u8], &'static str) {
        (b"not json", "not JSON")
    }
}

#[async_trait::async_trait]
impl Source for Broker {
    fn type_key(&self) -> &'static str {
        "MQTT"
    }
    fn properties(&self) -> Value {
        json!({"host": "127.0.0.1", "port": self.port, "topics": ["sites/+/data"], "format": "json",
               "externalIdFrom": "topic:1"})
    }
    fn source_ref(&self, external: &str) -> String {
        format!("sites/{external}/data")
    }
    async fn send(&self, external: &str, payloads: &[Vec<u8>]) {
        self.publish_raw(&self.source_ref(external), payloads).await
    }
    async fn stop(&mut self) {
        self.down().await
    }
    async fn start(&mut self) {
        self.up().await
    }
}

pub(crate) fn json_payloads(values: &[Value]) -> Vec<Vec<u8>> {
    values.iter().map(|v| serde_json::to_vec(v).unwrap()).collect()
}

/// An ingress integration on `source` (the rate limit lifted unless `extra`
/// says otherwise), its `sensor-7` mapped to the device at `device_path`.
pub(crate) async fn ingress_on(app: &App, source: &dyn Source, device_path: &str, extra: Value) -> String {
    let mut properties = source.properties();
    properties["rateLimitPerSecond"] = json!(1000);
    properties.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let body = json!({"name": "source", "type": source.type_key(), "direction": "INGRESS", "properties": properties});
    let created = app.post("/v2/integrations", body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    source.attach(&app.base, &created.body);
    let m = app
        .post(
            "/v2/integrations/resource-mappings",
            json!({"integrationId": id, "externalId": "sensor-7", "resourcePath": device_path}),
        )
        .await;
    assert_eq!(m.status, StatusCode::CREATED, "{:?}", m.body);
    id
}

/// What every ingress type must do, end to end: records stored, routed to a
/// webhook and logged with their message; poison and unmapped messages
/// logged with why; the status through connect, the source stopping and
/// coming back (what it held meanwhile arrives, once); disable, enable, delete.
pub async fn conformance(backend: Backend, source: &mut dyn Source) {
    let app = spawn_configured(backend, |_| {}).await;
    let rx = Receiver::start(vec![]).await;
    let s = webhook_with_trigger(&app, &rx.url, json!({}), json!({"kinds": ["value"]})).await;
    let device_path = format!("/places/{}/devices/{}", s.place, s.device);
    let id = ingress_on(&app, &*source, &device_path, json!({})).await;
    let integration = format!("/v2/integrations/{id}");
    until(&app, &integration, "connected", |i| state(i) == "connected").await;

    source.send("sensor-7", &json_payloads(&[json!({"power": 12.5, "temp": 21})])).await;
    let telemetry = format!("/v2/telemetry?deviceId={}", s.device);
    let stored = until(&app, &telemetry, "two records", |l| records(l).len() == 2).await;
    let power = records(&stored).into_iter().find(|r| r["record"]["property"] == "power").unwrap();
    assert_eq!(power["record"]["payload"], 12.5);
    assert_eq!(power["source"]["kind"], "integration");
    assert_eq!(power["source"]["integrationId"], id.as_str());
    let got = rx.wait_for(2).await;
    assert!(got.iter().all(|r| r.json()["deviceId"] == s.device), "delivered by the webhook trigger");

    // The message log: stored with its records; the status tells of it.
    let log = app.get(&format!("{integration}/messages")).await.body;
    let message = &log["data"][0];
    assert_eq!(message["outcome"], "stored");
    assert_eq!(message["sourceRef"], source.source_ref("sensor-7"));
    assert_eq!(message["recordIds"].as_array().unwrap().len(), 2);
    let sent = source.wire("sensor-7", br#"{"power":12.5,"temp":21}"#);
    assert_eq!(message["payload"], String::from_utf8(sent).unwrap());
    assert_eq!(power["source"]["messageId"], message["id"], "a record names its message");
    let view = app.get(&integration).await.body;
    assert!(view["connection"]["lastMessageAt"].as_i64().is_some(), "{view:#}");
    assert_eq!(view["connection"]["counters"]["stored"], 1);
    assert_eq!(view["connection"]["counters"]["records"], 2);

    // A poison message and an unmapped one are logged with why, and acknowledged.
    let (poison, why) = source.poison();
    source.send("sensor-7", &[poison.to_vec()]).await;
    source.send("sensor-8", &json_payloads(&[json!({"power": 1})])).await;
    let log = until(&app, &format!("{integration}/messages"), "three messages", |l| records(l).len() == 3).await;
    let outcomes: Vec<String> = records(&log).iter().map(|m| m["outcome"].as_str().unwrap().to_owned()).collect();
    assert_eq!(outcomes, ["unmapped", "decode_error", "stored"], "newest first");
    assert_eq!(log["data"][0]["reason"], "no resource mapping for sensor-8");
    assert!(log["data"][1]["reason"].as_str().unwrap().starts_with(why), "{:#}", log["data"][1]);
    let unmapped = app.get(&format!("{integration}/messages?outcome=unmapped")).await.body;
    assert_eq!(records(&unmapped).len(), 1);

    if source.stoppable() {
        stop_and_start(&app, &integration, &telemetry, source).await;
    }

    // Disabled: it lets go of the source, which keeps what comes meanwhile; enabled: it arrives.
    let off = app.put(&integration, json!({"enabled": false})).await;
    assert_eq!(off.status, StatusCode::OK, "{:?}", off.body);
    until(&app, &integration, "disabled", |i| state(i) == "disabled").await;
    source.send("sensor-7", &json_payloads(&[json!({"late": 1})])).await;
    app.put(&integration, json!({"enabled": true})).await;
    let late = format!("{telemetry}&property=late");
    until(&app, &late, "the message sent while disabled", |l| records(l).len() == 1).await;

    // Deleted: its task stops and its log goes with it.
    assert_eq!(app.delete(&integration).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&format!("{integration}/messages")).await.status, StatusCode::NOT_FOUND);
}

/// The source stops: the status says so, with the error; it starts again,
/// and what it was sent meanwhile arrives, once.
async fn stop_and_start(app: &App, integration: &str, telemetry: &str, source: &mut dyn Source) {
    source.stop().await;
    let down = until(app, integration, "reconnecting", |i| state(i) == "reconnecting").await;
    assert!(down["connection"]["lastError"].as_str().is_some_and(|e| !e.is_empty()), "{down:#}");
    // It starts again: what it is sent before Switchyard is back is kept for it, and arrives once.
    source.start().await;
    let burst: Vec<Value> = (0..20).map(|n| json!({"n": n})).collect();
    source.send("sensor-7", &json_payloads(&burst)).await;
    until(app, integration, "connected again", |i| state(i) == "connected").await;
    let arrived =
        until(app, &format!("{telemetry}&property=n&limit=200"), "the burst", |l| records(l).len() >= 20).await;
    let mut seen: Vec<i64> = records(&arrived).iter().map(|r| r["record"]["payload"].as_i64().unwrap()).collect();
    seen.sort();
    assert_eq!(seen, (0..20).collect::<Vec<_>>(), "each once");
    let history = app.get(&format!("{integration}/status-history")).await.body;
    let states: Vec<&str> = history["data"].as_array().unwrap().iter().map(|c| c["state"].as_str().unwrap()).collect();
    assert_eq!(&states[..3], ["connected", "reconnecting", "connected"], "{states:?}");
}

/// MQTT against a Mosquitto that keeps sessions across its restarts.
async fn mqtt_messages_are_stored_delivered_logged_and_survive_a_broker_restart(backend: Backend) {
    conformance(backend, &mut Broker::start().await).await;
}

async fn a_message_id_deduplicates_redelivered_messages(backend: Backend) {
    let broker = Broker::start().await;
    let app = spawn_configured(backend, |_| {}).await;
    let rx = Receiver::start(vec![]).await;
    let s = webhook_with_trigger(&app, &rx.url, json!({}), json!({"kinds": ["value"]})).await;
    let device_path = format!("/places/{}/devices/{}", s.place, s.device);
    let id = ingress_on(&app, &broker, &device_path, json!({"messageIdFrom": "pointer:/id"})).await;
    let integration = format!("/v2/integrations/{id}");
    until(&app, &integration, "connected", |i| state(i) == "connected").await;
    let again = json!({"id": "m-1", "power": 3});
    broker.publish("sites/sensor-7/data", &[again.clone(), again, json!({"id": "m-2", "power": 4})]).await;
    let log = until(&app, &format!("{integration}/messages"), "three messages", |l| records(l).len() == 3).await;
    let outcomes: Vec<String> = records(&log).iter().map(|m| m["outcome"].as_str().unwrap().to_owned()).collect();
    assert_eq!(outcomes, ["stored", "duplicate", "stored"]);
    assert_eq!(log["data"][1]["sourceId"], Value::Null, "a duplicate keeps no id");
    assert_eq!(log["data"][0]["sourceId"], "m-2");
    let stored = app.get(&format!("/v2/telemetry?deviceId={}", s.device)).await.body;
    let powers: Vec<i64> = records(&stored).iter().map(|r| r["record"]["payload"].as_i64().unwrap()).collect();
    assert_eq!(powers, [4, 3], "stored once each, newest first; the id is no value");
    assert_eq!(rx.settled(Duration::from_millis(300)).await.len(), 2, "delivered once each");
}

async fn settings_that_cannot_work_are_refused_and_secrets_never_shown(backend: Backend) {
    let app = spawn_configured(backend, |_| {}).await;
    let bad = app
        .post(
            "/v2/integrations",
            json!({"name": "b", "type": "MQTT", "direction": "INGRESS",
                   "properties": {"host": "h", "topics": ["a/#/b"], "format": "json"}}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", bad.body);
    assert_eq!(bad.fields(), ["properties.topics[0]", "properties.externalIdFrom"]);
    assert!(app.get("/v2/integrations?direction=INGRESS").await.body["data"].as_array().unwrap().is_empty());
    let ok = app
        .post(
            "/v2/integrations",
            json!({"name": "b", "type": "MQTT", "direction": "INGRESS", "enabled": false,
                   "properties": {"host": "127.0.0.1", "topics": ["a/+"], "externalIdFrom": "topic:1",
                                  "authMethod": "PASSWORD", "username": "u", "password": "hunter2-secret"}}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{:?}", ok.body);
    assert!(!ok.body.to_string().contains("hunter2-secret"));
    assert_eq!(ok.body["secretsSet"], json!(["password"]));
    assert_eq!(state(&ok.body), "disabled");
}

/// Runs `replay-unmapped` and waits until it finished.
async fn replay_unmapped(app: &App, integration: &str) -> Value {
    let started = app.post(&format!("{integration}/actions/replay-unmapped"), json!({})).await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{:?}", started.body);
    crate::actions::finished(app, started.body["id"].as_str().unwrap()).await
}

async fn unmapped_messages_replay_after_a_mapping_and_a_place_creates_devices(backend: Backend) {
    let broker = Broker::start().await;
    let app = spawn_configured(backend, |_| {}).await;
    let (place, device, device_path) = app.place_and_device("meter").await;
    let id = ingress_on(&app, &broker, &device_path, json!({})).await;
    let integration = format!("/v2/integrations/{id}");
    until(&app, &integration, "connected", |i| state(i) == "connected").await;
    broker.publish("sites/sensor-9/data", &[json!({"kwh": 9})]).await;
    until(&app, &format!("{integration}/messages?outcome=unmapped"), "unmapped", |l| records(l).len() == 1).await;
    let m = app
        .post(
            "/v2/integrations/resource-mappings",
            json!({"integrationId": id, "externalId": "sensor-9", "resourcePath": device_path}),
        )
        .await;
    assert_eq!(m.status, StatusCode::CREATED, "{:?}", m.body);
    let done = replay_unmapped(&app, &integration).await;
    assert_eq!(done["result"], json!({"replayed": 1, "stillUnmapped": 0, "payloadCut": 0}), "{done:#}");
    let log = app.get(&format!("{integration}/messages")).await.body;
    assert_eq!(log["data"][0]["outcome"], "stored");
    assert_eq!(log["data"][0]["recordIds"].as_array().unwrap().len(), 1);
    let stored = app.get(&format!("/v2/telemetry?deviceId={device}")).await.body;
    assert_eq!(stored["data"][0]["record"]["payload"], 9);
    assert_eq!(replay_unmapped(&app, &integration).await["result"]["replayed"], 0, "nothing is replayed twice");

    // With a Place, an unknown external id gets a device there, mapped to it.
    let with_place = app.put(&integration, json!({"properties": {"place": format!("/places/{place}")}})).await;
    assert_eq!(with_place.status, StatusCode::OK, "{:?}", with_place.body);
    until(&app, &integration, "reconnected with the change", |i| {
        state(i) == "connected" && i["connection"]["since"].as_i64() >= with_place.body["updatedAt"].as_i64()
    })
    .await;
    broker.publish("sites/new-meter/data", &[json!({"kwh": 1})]).await;
    until(&app, &format!("{integration}/messages?outcome=stored"), "stored", |l| records(l).len() == 2).await;
    let mappings = app.get(&format!("{integration}/resource-mappings")).await.body;
    let created = records(&mappings).into_iter().find(|m| m["externalId"] == "new-meter").expect("a mapping");
    let new_device = created["resourcePath"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
    let device = app.get(&format!("/v2/devices/{new_device}")).await.body;
    assert_eq!((device["name"].as_str(), device["placeId"].as_str()), (Some("new-meter"), Some(place.as_str())));
    let stored = app.get(&format!("/v2/telemetry?deviceId={new_device}")).await.body;
    assert_eq!(stored["data"][0]["record"]["payload"], 1);
}

async fn a_burst_waits_for_the_rate_limit_and_all_of_it_is_stored(backend: Backend) {
    burst_conformance(backend, &Broker::start().await).await;
}

/// A burst of 200 at 20 messages a second: it waits at the source (or is
/// told to come back), takes about 10 s, and all of it is stored, once.
pub async fn burst_conformance(backend: Backend, source: &dyn Source) {
    let app = spawn_configured(backend, |_| {}).await;
    let (_, device, device_path) = app.place_and_device("meter").await;
    let id = ingress_on(&app, source, &device_path, json!({"rateLimitPerSecond": 20})).await;
    let integration = format!("/v2/integrations/{id}");
    until(&app, &integration, "connected", |i| state(i) == "connected").await;
    let burst: Vec<Value> = (0..200).map(|n| json!({"n": n})).collect();
    let started = std::time::Instant::now();
    source.send("sensor-7", &json_payloads(&burst)).await;
    until(&app, &integration, "throttled", |i| i["connection"]["throttled"] == true).await;
    let telemetry = format!("/v2/telemetry?deviceId={device}&limit=200");
    let all = until(&app, &telemetry, "all 200", |l| records(l).len() == 200).await;
    let took = started.elapsed();
    // 20 at once (the bucket's burst), then 20 a second: 9 s for the other 180.
    assert!(took >= Duration::from_millis(8_500), "the rate limit spaced them: {took:?}");
    let mut seen: Vec<i64> = records(&all).iter().map(|r| r["record"]["payload"].as_i64().unwrap()).collect();
    seen.sort();
    assert_eq!(seen, (0..200).collect::<Vec<_>>(), "none dropped, none twice");
    let metrics = app.client.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap();
    let stored = format!("switchyard_ingress_messages_total{{integration=\"{id}\",outcome=\"stored\"}} 200");
    assert!(metrics.contains(&stored), "{metrics}");
    assert!(
        metrics.contains(&format!("switchyard_ingress_connection_state{{integration=\"{id}\",state=\"connected\"}} 1"))
    );
}

async fn connection_settings_are_templates_over_the_globals(backend: Backend) {
    let broker = Broker::start().await;
    let app = spawn_configured(backend, |_| {}).await;
    let (_, device, device_path) = app.place_and_device("meter").await;
    let set = |site: &str| json!({"globals": {"broker": "127.0.0.1", "site": site}});
    assert_eq!(app.put("/v2/globals", set("sites")).await.status, StatusCode::OK);
    let templated = json!({"host": "{{ globals.broker }}", "topics": ["{{ globals.site }}/+/data"]});
    let id = ingress_on(&app, &broker, &device_path, templated).await;
    let integration = format!("/v2/integrations/{id}");
    let view = until(&app, &integration, "connected", |i| state(i) == "connected").await;
    assert_eq!(view["properties"]["host"], "{{ globals.broker }}", "shown as written");
    broker.publish("sites/sensor-7/data", &[json!({"a": 1})]).await;
    let telemetry = format!("/v2/telemetry?deviceId={device}");
    until(&app, &telemetry, "the first record", |l| records(l).len() == 1).await;

    // A global it uses changes: it reconnects with the new topic.
    let changed = app.put("/v2/globals", set("plant")).await;
    assert_eq!(changed.status, StatusCode::OK);
    let since = now();
    until(&app, &integration, "reconnected", |i| {
        state(i) == "connected" && i["connection"]["since"].as_i64().unwrap() >= since
    })
    .await;
    broker.publish("sites/sensor-7/data", &[json!({"old": 1})]).await;
    broker.publish("plant/sensor-7/data", &[json!({"b": 2})]).await;
    broker.publish("plant/sensor-7/data", &[json!({"c": 3})]).await;
    let after = until(&app, &telemetry, "the new topic's records", |l| records(l).len() >= 3).await;
    let properties: Vec<&str> =
        after["data"].as_array().unwrap().iter().map(|r| r["record"]["property"].as_str().unwrap()).collect();
    assert_eq!(properties, ["c", "b", "a"], "what the session still holds for the old topic is not stored");
    // The persistent session lets go of the filter the settings no longer name.
    let old = format!("switchyard-{id} sites/+/data");
    for _ in 0..500 {
        if broker.unsubscribed().contains(&old) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(broker.unsubscribed().contains(&old), "{}", broker.unsubscribed());
    assert!(!broker.unsubscribed().contains("plant/+/data"), "the filter it uses stays");

    // A global it needs is gone: the status says which.
    assert_eq!(app.put("/v2/globals", json!({"globals": {"broker": "127.0.0.1"}})).await.status, StatusCode::OK);
    let failed = until(&app, &integration, "failed", |i| state(i) == "failed").await;
    let error = failed["connection"]["lastError"].as_str().unwrap();
    assert!(error.starts_with("topics[0]:") && error.contains("globals"), "{error}");
    let bad = app.put(&integration, json!({"properties": {"host": "{{ globals.broker"}})).await;
    assert_eq!(bad.fields(), ["properties.host"], "a template that does not compile is refused when saved");
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

on_both_stores!(
    connection_settings_are_templates_over_the_globals,
    unmapped_messages_replay_after_a_mapping_and_a_place_creates_devices,
    a_burst_waits_for_the_rate_limit_and_all_of_it_is_stored,
    mqtt_messages_are_stored_delivered_logged_and_survive_a_broker_restart,
    a_message_id_deduplicates_redelivered_messages,
    settings_that_cannot_work_are_refused_and_secrets_never_shown,
);
