//! The API against the real server on 127.0.0.1:0, over real HTTP.
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use switchyard_connectors::EgressPolicy;
use switchyard_core::{keys, now_ms, ApiKey, ApiKeyId, Cipher, Org, OrgId, Scope};
use switchyard_engine::{DispatcherConfig, Engine, EngineConfig};
use switchyard_store::Store;
use tokio_util::sync::CancellationToken;

/// Runs each named case (an `async fn(Backend)`) on SQLite and on PostgreSQL.
macro_rules! on_both_stores {
    ($($case:ident),* $(,)?) => {
        mod on_sqlite {
            $(#[tokio::test] async fn $case() { super::$case(crate::Backend::Sqlite).await })*
        }
        mod on_postgres {
            $(#[tokio::test] async fn $case() { super::$case(crate::Backend::Postgres).await })*
        }
    };
}

mod actions;
mod auth;
mod catalog;
mod connectors;
mod delivery;
mod errors;
mod http_poll;
mod inbound;
mod ingress;
mod integrations;
mod openapi;
mod ops;
mod particle;
mod receiver;
mod reliability;
mod resources;
mod utility;
mod weather;
mod websocket;

pub struct App {
    pub base: String,
    pub client: reqwest::Client,
    pub store: Arc<dyn Store>,
    pub engine: Arc<Engine>,
    pub org: Org,
    pub write_key: String,
    pub read_key: String,
    /// What a restart starts again with: the store's URL, the settings, the
    /// running node's stop and its tasks.
    url: String,
    config: EngineConfig,
    shutdown: CancellationToken,
    tasks: tokio_util::task::TaskTracker,
    _dir: Option<tempfile::TempDir>,
}

pub async fn spawn_app() -> App {
    spawn_configured(Backend::Sqlite, |_| {}).await
}

pub async fn spawn_app_on_postgres() -> App {
    spawn_configured(Backend::Postgres, |_| {}).await
}

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The server on either store, with loopback allowed as a delivery target
/// and the engine adjusted by `configure`.
pub async fn spawn_configured(backend: Backend, configure: impl FnOnce(&mut EngineConfig)) -> App {
    let (url, dir) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            (format!("sqlite://{}", dir.path().join("api.db").display()), Some(dir))
        }
        Backend::Postgres => (switchyard_store::testing::fresh_postgres_url().await, None),
    };
    let store = switchyard_store::open(&url, Cipher::new(&[3u8; 32])).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let loopback = EgressPolicy::parse_list("127.0.0.0/8,::1/128").unwrap();
    let mut engine_config = EngineConfig {
        egress: EgressPolicy::new(loopback),
        dispatcher: DispatcherConfig { poll: std::time::Duration::from_millis(20), ..Default::default() },
        ..Default::default()
    };
    configure(&mut engine_config);
    let (engine, shutdown, tasks) = serve(store.clone(), listener, engine_config.clone()).await;
    let (org, write_key) = new_org(&*store, "Acme", false).await;
    let read_key = new_key(&*store, &org.id, Scope::Read).await;
    let client = reqwest::Client::new();
    App {
        base,
        client,
        store,
        engine,
        org,
        write_key,
        read_key,
        url,
        config: engine_config,
        shutdown,
        tasks,
        _dir: dir,
    }
}

/// An engine and the API on `listener`, until the token it returns is cancelled.
async fn serve(
    store: Arc<dyn Store>,
    listener: tokio::net::TcpListener,
    config: EngineConfig,
) -> (Arc<Engine>, CancellationToken, tokio_util::task::TaskTracker) {
    let (shutdown, tasks) = (CancellationToken::new(), tokio_util::task::TaskTracker::new());
    let engine = Engine::start(store, config, shutdown.clone(), &tasks).await.unwrap();
    let state = switchyard_api::AppState::new(engine.clone());
    let stop = shutdown.clone();
    tasks.spawn(async move {
        let api = switchyard_api::ApiConfig::default();
        switchyard_api::serve(listener, state, &api, stop.cancelled_owned()).await
    });
    (engine, shutdown, tasks)
}

impl App {
    /// Stops this node as a shutdown does (receivers acknowledge what is
    /// stored and leave the rest), then starts a new one on the same store,
    /// on a new port; the organization and its keys are the same.
    pub async fn restart(self) -> App {
        self.shutdown.cancel();
        self.tasks.close();
        tokio::time::timeout(std::time::Duration::from_secs(30), self.tasks.wait()).await.expect("the node stops");
        drop(self.engine);
        drop(self.store);
        let store = switchyard_store::open(&self.url, Cipher::new(&[3u8; 32])).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (engine, shutdown, tasks) = serve(store.clone(), listener, self.config.clone()).await;
        App { base, store, engine, shutdown, tasks, ..self }
    }
}

pub async fn new_org(store: &dyn Store, name: &str, custom: bool) -> (Org, String) {
    let org = Org { id: OrgId::new(), name: name.into(), custom_integrations: custom, created_at: now_ms() };
    store.create_org(&org).await.unwrap();
    let key = new_key(store, &org.id, Scope::Write).await;
    (org, key)
}

pub async fn new_key(store: &dyn Store, org: &OrgId, scope: Scope) -> String {
    let new = keys::generate_api_key();
    let key = ApiKey {
        id: ApiKeyId::new(),
        org_id: org.clone(),
        name: "test".into(),
        prefix: new.prefix,
        scope,
        created_at: now_ms(),
        revoked_at: None,
    };
    store.create_key(&key, &new.hash).await.unwrap();
    new.plaintext
}

/// A response: status, content type and JSON body (Null when empty).
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Value,
}

impl Resp {
    /// The field paths of a 422.
    pub fn fields(&self) -> Vec<String> {
        self.body["errors"].as_array().into_iter().flatten().map(|e| e["field"].as_str().unwrap().to_owned()).collect()
    }
}

impl App {
    pub async fn call(&self, method: Method, path: &str, key: Option<&str>, body: Option<Value>) -> Resp {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(key) = key {
            req = req.header("x-api-key", key);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let content_type =
            res.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let bytes = res.bytes().await.unwrap();
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
        Resp { status, content_type, body }
    }
    pub async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, Some(&self.read_key), None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(&self.write_key), Some(body)).await
    }
    pub async fn put(&self, path: &str, body: Value) -> Resp {
        self.call(Method::PUT, path, Some(&self.write_key), Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> Resp {
        self.call(Method::DELETE, path, Some(&self.write_key), None).await
    }

    /// A root Place and a device in it; returns (place id, device id, device path).
    pub async fn place_and_device(&self, device_type: &str) -> (String, String, String) {
        let place = self.post("/v2/places", json!({"name": "Plant A"})).await;
        assert_eq!(place.status, StatusCode::CREATED, "{:?}", place.body);
        let place_id = place.body["id"].as_str().unwrap().to_owned();
        let device =
            self.post("/v2/devices", json!({"name": "Meter 1", "placeId": place_id, "deviceType": device_type})).await;
        assert_eq!(device.status, StatusCode::CREATED, "{:?}", device.body);
        let device_id = device.body["id"].as_str().unwrap().to_owned();
        let path = format!("/places/{place_id}/devices/{device_id}");
        (place_id, device_id, path)
    }

    pub async fn webhook(&self, name: &str) -> Value {
        let res = self
            .post(
                "/v2/integrations",
                json!({"name": name, "type": "WEBHOOK", "properties": {"url": "https://example.test/in"}}),
            )
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{:?}", res.body);
        res.body
    }
}

/// Fails with a message that names the service and how to start it, not
/// deep inside a client, when a local service the test needs is down.
pub async fn need(service: &str, port: u16) {
    let up =
        tokio::time::timeout(std::time::Duration::from_secs(2), tokio::net::TcpStream::connect(("127.0.0.1", port)))
            .await;
    if !matches!(up, Ok(Ok(_))) {
        panic!("this test needs {service} on 127.0.0.1:{port}; `scripts/services` checks and starts every service the suite needs");
    }
}

/// Asserts a problem+json error with this status and code.
pub fn assert_problem(res: &Resp, status: StatusCode, code: &str) {
    assert_eq!(res.status, status, "{:?}", res.body);
    assert_eq!(res.content_type, "application/problem+json", "{:?}", res.body);
    assert_eq!(res.body["code"], code, "{:?}", res.body);
    assert_eq!(res.body["status"], status.as_u16());
}
