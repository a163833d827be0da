use reqwest::Method;
use serde_json::json;

use crate::{call, mode, switchyard, Server};

#[tokio::test]
async fn first_start_creates_an_organization_and_prints_the_admin_key_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(switchyard(dir.path()).args(["serve", "--listen", "127.0.0.1:0"]));
    let printed = server
        .banner
        .iter()
        .find_map(|l| l.strip_prefix("Admin API key (write scope), shown once: "))
        .unwrap()
        .to_owned();
    assert!(server.banner.iter().any(|l| l.contains("data/admin.key") && l.contains("0600")), "{:?}", server.banner);

    let data = dir.path().join("data");
    assert_eq!(std::fs::read_to_string(data.join("admin.key")).unwrap().trim(), printed);
    assert_eq!(mode(&data.join("admin.key")), 0o600);
    assert_eq!(mode(&data.join("secret.key")), 0o600);
    assert_eq!(mode(&data), 0o700);
    assert!(data.join("switchyard.db").exists(), "SQLite in ./data by default");

    let (status, body) = call(Method::GET, &format!("{}/v2/integrations", server.base), &printed, None).await;
    assert_eq!((status, body), (200, json!({"data": [], "nextCursor": null})));
    assert!(server.stop().success(), "SIGTERM stops the server cleanly");

    // Second start: the same organization and key; no new key is printed.
    let again = Server::start(switchyard(dir.path()).args(["serve", "--listen", "127.0.0.1:0"]));
    assert!(!again.banner.iter().any(|l| l.contains("API key")), "{:?}", again.banner);
    let (status, _) = call(Method::GET, &format!("{}/v2/integrations", again.base), &printed, None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn secrets_never_reach_the_logs_or_the_database_files() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        Server::start(switchyard(dir.path()).args(["serve", "--listen", "127.0.0.1:0"]).env("RUST_LOG", "debug"));
    let key = std::fs::read_to_string(dir.path().join("data/admin.key")).unwrap().trim().to_owned();
    let url = format!("{}/v2/integrations", server.base);
    let secrets = ["pw-Xq7-never-log-me", "tok-Zr2-never-log-me", "pw-Yk9-rotated-secret"];
    let (status, created) = call(
        Method::POST,
        &url,
        &key,
        Some(json!({"name": "hook", "type": "WEBHOOK", "properties": {"url": "https://example.test",
                    "authType": "BASIC", "username": "ops", "password": secrets[0], "token": secrets[1]}})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let (status, updated) =
        call(Method::PUT, &format!("{url}/{id}"), &key, Some(json!({"properties": {"password": secrets[2]}}))).await;
    assert_eq!(status, 200);
    // A failing request that carries a secret must not echo it either.
    let (status, refused) = call(
        Method::PUT,
        &format!("{url}/{id}"),
        &key,
        Some(json!({"properties": {"password": 42, "token": secrets[1]}})),
    )
    .await;
    assert_eq!(status, 422);
    let (_, listed) = call(Method::GET, &url, &key, None).await;
    let logs = {
        let logs = server.logs();
        assert!(server.stop().success());
        logs
    };
    assert!(logs.contains("integration created") && logs.contains("DEBUG"), "the log was captured at debug: {logs}");

    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir.path().join("data")).unwrap() {
        files.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    assert!(files.windows(4).any(|w| w == b"hook"), "the scan reads the database");
    for secret in secrets {
        for (what, haystack) in [
            ("create response", created.to_string()),
            ("update response", updated.to_string()),
            ("error response", refused.to_string()),
            ("list response", listed.to_string()),
            ("log output", logs.clone()),
        ] {
            assert!(!haystack.contains(secret), "{secret} appeared in the {what}");
        }
        assert!(
            !files.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} is in plain text in the data files"
        );
    }
}

#[tokio::test]
async fn serves_on_postgresql_with_a_database_url() {
    let dir = tempfile::tempdir().unwrap();
    let url = switchyard_store::testing::fresh_postgres_url().await;
    let server =
        Server::start(switchyard(dir.path()).args(["serve", "--listen", "127.0.0.1:0", "--database-url", &url]));
    let key = std::fs::read_to_string(dir.path().join("data/admin.key")).unwrap().trim().to_owned();
    assert!(!dir.path().join("data/switchyard.db").exists(), "no SQLite file when PostgreSQL is used");
    let (status, body) =
        call(Method::POST, &format!("{}/v2/places", server.base), &key, Some(json!({"name": "Plant"}))).await;
    assert_eq!(status, 201, "{body}");
    let out = crate::run(crate::switchyard(dir.path()).args(["orgs", "list", "--database-url", &url]));
    assert!(crate::text(&out.stdout).contains("Default"));
}
