//! EMAIL against aiosmtpd (scripts/test-peers) run by scripts/peers/smtp.py,
//! which keeps each message it accepts as JSON; and the recipients API.
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{
    certificates, conformance, free_port, ingest, integration, start_peer_on_ports, venv_bin, Got, Peer, PeerProcess,
};
use crate::receiver::wait_status;
use crate::{assert_problem, App, Backend};

struct Smtp {
    port: u16,
    dir: tempfile::TempDir,
    _process: PeerProcess,
}

impl Smtp {
    /// `tls`: `starttls` or `implicit`, with a server certificate from a test CA (in `dir`).
    async fn start(login: Option<(&str, &str)>, tls: Option<&str>) -> Smtp {
        let dir = tempfile::tempdir().unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/peers/smtp.py");
        let mail = dir.path().join("mail");
        std::fs::create_dir(&mail).unwrap();
        let mut args = vec!["--dir".to_owned(), mail.to_string_lossy().into_owned()];
        if let Some((user, password)) = login {
            args.extend(["--user".into(), user.into(), "--password".into(), password.into()]);
        }
        if let Some(mode) = tls {
            certificates(dir.path());
            let path = |f: &str| dir.path().join(f).to_string_lossy().into_owned();
            args.extend(["--cert".into(), path("server.crt"), "--key".into(), path("server.key")]);
            args.extend(["--tls".into(), mode.into()]);
        }
        let (process, ports) = start_peer_on_ports(&venv_bin("python"), 1, |p| {
            [vec![script.to_owned(), "--port".into(), p[0].to_string()], args.clone()].concat()
        })
        .await;
        let port = ports[0];
        Smtp { port, dir, _process: process }
    }

    /// Messages kept so far, oldest first.
    fn kept(&self) -> Vec<Value> {
        let mut files: Vec<_> = std::fs::read_dir(self.dir.path().join("mail"))
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        files.iter().map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()).collect()
    }

    fn properties(&self) -> Value {
        json!({"smtpHost": "127.0.0.1", "smtpPort": self.port, "security": "NONE", "from": "alerts@switchyard.test",
               "subjectTemplate": "{{ record.kind }} {{ record.property }} on {{ device.name }} in {{ place.name }}",
               "bodyTemplate": "{{ published | tojson }}",
               "htmlTemplate": "<p>{{ device.name }}: {{ record.payload }}</p>"})
    }
}

struct Mail {
    smtp: Smtp,
    /// Messages already handed out by `receive`.
    seen: std::sync::Mutex<usize>,
}

#[async_trait]
impl Peer for Mail {
    fn type_key(&self) -> &'static str {
        "EMAIL"
    }
    fn properties(&self) -> Value {
        self.smtp.properties()
    }
    fn unreachable(&self) -> Value {
        let mut p = self.properties();
        p["smtpPort"] = json!(free_port());
        p
    }
    fn refused(&self) -> (Value, &'static str) {
        // This server takes no AUTH: a client that insists is refused for good.
        let mut p = self.properties();
        p["username"] = json!("someone");
        p["password"] = json!("secret-password");
        (p, "authentication mechanism")
    }
    fn has_objects(&self) -> bool {
        false
    }
    async fn prepare(&self, app: &App, integration: &str) {
        let r = app
            .post(
                &format!("/v2/integrations/{integration}/recipients"),
                json!({"address": "ops@plant.test", "name": "Ops"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        assert_eq!(r.body["status"], "active", "an e-mail address is active at once");
    }
    async fn receive(&self, n: usize) -> Vec<Got> {
        for _ in 0..500 {
            if let Some(new) = self.take(n) {
                return new.into_iter().map(check).collect();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the SMTP server kept {} messages, expected {n} more", self.smtp.kept().len());
    }
}

impl Mail {
    /// The next `n` messages not handed out yet, once there are that many.
    fn take(&self, n: usize) -> Option<Vec<Value>> {
        let kept = self.smtp.kept();
        let mut seen = self.seen.lock().unwrap();
        (kept.len() >= *seen + n).then(|| {
            let new = kept[*seen..*seen + n].to_vec();
            *seen += n;
            new
        })
    }
}

/// One kept message: envelope, headers, subject and both bodies as the templates made them.
fn check(m: Value) -> Got {
    assert_eq!(m["rcpt_tos"], json!(["ops@plant.test"]), "{m}");
    assert_eq!(m["headers"]["To"], "Ops <ops@plant.test>", "{m}");
    let id = m["headers"]["Switchyard-Delivery-Id"].as_str().unwrap().to_owned();
    assert_eq!(m["headers"]["Message-ID"], format!("<{id}@switchyard>"));
    let body: Value = serde_json::from_str(m["text"].as_str().unwrap().trim()).unwrap();
    let subject = m["headers"]["Subject"].as_str().unwrap();
    let (kind, object) = (body["kind"].as_str().unwrap(), body["object"].as_str().unwrap());
    assert_eq!(subject, format!("{kind} {object} on Meter 1 in Plant A"));
    assert!(m["html"].as_str().unwrap().starts_with("<p>Meter 1: "), "{m}");
    Got { body, delivery_id: id }
}

async fn email_passes_the_connector_checks(backend: Backend) {
    let smtp = Smtp::start(None, None).await;
    conformance(backend, &Mail { smtp, seen: Default::default() }).await;
}

/// With AUTH required: the right password delivers, a wrong one is dead at
/// once (535), and nothing is sent while there are no active recipients.
async fn smtp_login_and_recipients(backend: Backend) {
    let smtp = Smtp::start(Some(("mailer", "right-password")), None).await;
    let mail = Mail { smtp, seen: Default::default() };
    let app = crate::spawn_configured(backend, |_| {}).await;
    let (_, device, _) = app.place_and_device("meter").await;
    let alarm = json!({"kind": "alarm", "deviceId": device, "property": "door", "timestamp": 1, "payload": true});

    let mut props = mail.properties();
    props["username"] = json!("mailer");
    props["password"] = json!("right-password");
    let good = integration(&app, &mail, "login", props.clone(), json!({"kinds": ["alarm"]})).await;
    ingest(&app, vec![alarm.clone()]).await;
    let got = mail.receive(1).await.remove(0);
    assert_eq!(got.body["object"], "door");
    wait_status(&app, &good, "succeeded").await;

    props["password"] = json!("wrong-password");
    let bad = integration(&app, &mail, "wrong", props.clone(), json!({"kinds": ["event"]})).await;
    ingest(&app, vec![json!({"kind": "event", "deviceId": device, "property": "boot", "timestamp": 1, "payload": 1})])
        .await;
    let dead = super::settled(&app, &bad).await;
    assert_eq!(dead["status"], "dead", "{dead}");
    assert_eq!(dead["attemptCount"], 1);
    assert!(dead["lastError"].as_str().unwrap().contains("535"), "{dead}");
    assert!(!dead.to_string().contains("wrong-password"));

    // No recipients: nothing is sent, and the log says why.
    let created =
        app.post("/v2/integrations", json!({"name": "nobody", "type": "EMAIL", "properties": mail.properties()})).await;
    let nobody = created.body["id"].as_str().unwrap().to_owned();
    app.post(&format!("/v2/integrations/{nobody}/triggers"), json!({"kinds": ["alarm"]})).await;
    ingest(&app, vec![alarm]).await;
    let dead = wait_status(&app, &nobody, "dead").await;
    assert!(dead["lastError"].as_str().unwrap().contains("no active recipients"), "{dead}");

    // The recipients API: syntax checked, duplicates refused, deletable.
    let path = format!("/v2/integrations/{nobody}/recipients");
    assert_problem(
        &app.post(&path, json!({"address": "not-an-address"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let bad = app.post(&path, json!({"address": "+14155550123"})).await;
    assert_eq!(bad.fields(), ["address"], "an e-mail integration takes e-mail addresses");
    let added = app.post(&path, json!({"address": "a@plant.test"})).await;
    assert_eq!(added.status, StatusCode::CREATED);
    assert!(added.body["id"].as_str().unwrap().starts_with("rcp_"));
    assert_problem(&app.post(&path, json!({"address": "a@plant.test"})).await, StatusCode::CONFLICT, "conflict");
    let listed = app.get(&path).await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 1);
    let one = format!("{path}/{}", added.body["id"].as_str().unwrap());
    assert_eq!(app.get(&one).await.body["address"], "a@plant.test");
    assert_eq!(app.delete(&one).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&one).await.status, StatusCode::NOT_FOUND);
    // Types without recipients have none.
    let hook = app.webhook("h").await;
    let none = app.get(&format!("/v2/integrations/{}/recipients", hook["id"].as_str().unwrap())).await;
    assert_problem(&none, StatusCode::NOT_FOUND, "not_found");
}

/// STARTTLS (required, with AUTH over it) and TLS from the first byte, to a
/// relay whose certificate a private CA signed; without that CA, the relay is
/// refused for good.
async fn starttls_and_tls_with_a_private_ca(backend: Backend) {
    let app = crate::spawn_configured(backend, |_| {}).await;
    let (_, device, _) = app.place_and_device("meter").await;
    let alarm = json!({"kind": "alarm", "deviceId": device, "property": "door", "timestamp": 1, "payload": true});
    for (mode, security) in [("starttls", "STARTTLS"), ("implicit", "TLS")] {
        let smtp = Smtp::start(Some(("mailer", "right-password")), Some(mode)).await;
        let ca = std::fs::read_to_string(smtp.dir.path().join("ca.crt")).unwrap();
        let mail = Mail { smtp, seen: Default::default() };
        let mut props = mail.properties();
        props["security"] = json!(security);
        props["caCertificate"] = json!(ca);
        props["username"] = json!("mailer");
        props["password"] = json!("right-password");
        let good = integration(&app, &mail, &format!("{mode} ok"), props.clone(), json!({"kinds": ["alarm"]})).await;
        props.as_object_mut().unwrap().remove("caCertificate");
        let untrusted =
            integration(&app, &mail, &format!("{mode} untrusted"), props, json!({"kinds": ["alarm"]})).await;
        ingest(&app, vec![alarm.clone()]).await;
        let first = super::settled(&app, &good).await;
        assert_eq!(first["status"], "succeeded", "{mode}: {first}");
        assert_eq!(mail.receive(1).await[0].body["object"], "door", "{mode}");
        wait_status(&app, &good, "succeeded").await;
        let dead = super::settled(&app, &untrusted).await;
        assert_eq!((&dead["status"], &dead["attemptCount"]), (&json!("dead"), &json!(1)), "{mode}: {dead}");
        app.put(&format!("/v2/integrations/{good}"), json!({"enabled": false})).await;
        app.put(&format!("/v2/integrations/{untrusted}"), json!({"enabled": false})).await;
    }
    // A relay without STARTTLS: the error says which setting to choose instead.
    let mail = Mail { smtp: Smtp::start(None, None).await, seen: Default::default() };
    let mut props = mail.properties();
    props["security"] = json!("STARTTLS");
    let plain = integration(&app, &mail, "no starttls", props, json!({"kinds": ["alarm"]})).await;
    ingest(&app, vec![alarm]).await;
    let dead = super::settled(&app, &plain).await;
    let error = dead["lastError"].as_str().unwrap_or_default();
    assert!(error.contains("does not offer STARTTLS") && error.contains("set security to TLS"), "{dead}");
}

on_both_stores!(email_passes_the_connector_checks, smtp_login_and_recipients, starttls_and_tls_with_a_private_ca);
