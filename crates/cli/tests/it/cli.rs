use reqwest::Method;
use serde_json::json;

use crate::{call, run, switchyard, text, Server};

fn line_after<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.split_once(prefix).map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("no `{prefix}` in {out}"))
}

#[tokio::test]
async fn orgs_and_keys_work_beside_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(switchyard(dir.path()).args(["serve", "--listen", "127.0.0.1:0"]));
    let base = server.base.clone();

    let out = text(&run(switchyard(dir.path()).args(["orgs", "create", "Second Co"])).stdout);
    let org = out.lines().next().unwrap().to_owned();
    assert!(org.starts_with("org_"), "{out}");
    let write = line_after(&out, "write key (shown once): ").to_owned();
    let (status, _) = call(Method::POST, &format!("{base}/v2/places"), &write, Some(json!({"name": "P"}))).await;
    assert_eq!(status, 201, "a key made by the CLI works on the running server at once");

    let out = text(
        &run(switchyard(dir.path()).args(["keys", "create", "--org", &org, "--scope", "read", "--name", "dash"]))
            .stdout,
    );
    let key_id = out.lines().next().unwrap().to_owned();
    let read = line_after(&out, "read key (shown once): ").to_owned();
    assert_eq!(call(Method::GET, &format!("{base}/v2/places"), &read, None).await.0, 200);
    assert_eq!(call(Method::POST, &format!("{base}/v2/places"), &read, Some(json!({"name": "Q"}))).await.0, 403);

    let listed = text(&run(switchyard(dir.path()).args(["keys", "list", "--org", &org])).stdout);
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(listed.contains(&key_id) && listed.contains("read") && listed.contains("dash"));
    assert!(!listed.contains(&read) && !listed.contains(&write), "keys are never shown again");

    run(switchyard(dir.path()).args(["keys", "revoke", "--org", &org, &key_id]));
    // A running server trusts a key it has looked up for one second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(call(Method::GET, &format!("{base}/v2/places"), &read, None).await.0, 401);
    let again = switchyard(dir.path()).args(["keys", "revoke", "--org", &org, &key_id]).output().unwrap();
    assert!(!again.status.success());
    assert!(text(&again.stderr).contains("no active key"));

    let orgs = text(&run(switchyard(dir.path()).args(["orgs", "list"])).stdout);
    assert!(orgs.contains("Default") && orgs.contains("Second Co"), "{orgs}");
    let catalog = format!("{base}/v2/integrations/catalog");
    assert!(!call(Method::GET, &catalog, &write, None).await.1.to_string().contains("LUA_SCRIPT"));
    run(switchyard(dir.path()).args(["orgs", "update", &org, "--custom-integrations", "true"]));
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert!(call(Method::GET, &catalog, &write, None).await.1.to_string().contains("LUA_SCRIPT"));
}

/// `actions watch` follows an action to its end (exit 1 unless it
/// succeeded); `actions list` lists the organization's, through the API.
#[tokio::test]
async fn actions_are_watched_and_listed_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(switchyard(dir.path()).args(["serve", "--listen", "127.0.0.1:0"]));
    let base = server.base.clone();
    let key = std::fs::read_to_string(dir.path().join("data/admin.key")).unwrap().trim().to_owned();
    let integrations = format!("{base}/v2/integrations");
    let create = |body: serde_json::Value| call(Method::POST, &integrations, &key, Some(body));
    let (_, inbound) = create(json!({"name": "in", "type": "HTTP_INBOUND", "direction": "INGRESS",
                                     "properties": {"format": "records"}}))
    .await;
    let (_, hook) =
        create(json!({"name": "hook", "type": "WEBHOOK", "properties": {"url": "http://127.0.0.1:1/in"}})).await;
    let action = |integration: &serde_json::Value, kind: &str| {
        let url = format!("{base}/v2/integrations/{}/actions/{kind}", integration["id"].as_str().unwrap());
        let key = key.clone();
        async move {
            let (status, body) = call(Method::POST, &url, &key, None).await;
            assert_eq!(status, 202, "{body}");
            body["id"].as_str().unwrap().to_owned()
        }
    };
    let replay = action(&inbound, "replay-unmapped").await;
    let sent = action(&hook, "test-send").await;
    let server_args = ["--url", &base, "--api-key", &key];

    let out = run(switchyard(dir.path()).args(["actions", "watch", &replay]).args(server_args));
    let printed = text(&out.stdout);
    assert!(printed.contains(&format!("{replay} (replay-unmapped) succeeded")), "{printed}");
    let failed = switchyard(dir.path()).args(["actions", "watch", &sent]).args(server_args).output().unwrap();
    assert!(!failed.status.success(), "a failed action exits non-zero");
    assert!(text(&failed.stdout).contains("(test-send) failed"), "{}", text(&failed.stdout));
    assert!(text(&failed.stderr).contains("the action failed"), "{}", text(&failed.stderr));

    // The key from the environment; a filter by status.
    let listed = text(
        &run(switchyard(dir.path()).args(["actions", "list", "--url", &base]).env("SWITCHYARD_API_KEY", &key)).stdout,
    );
    assert!(listed.contains(&replay) && listed.contains(&sent), "{listed}");
    assert!(!listed.contains(&key), "the key is never printed");
    let only =
        text(&run(switchyard(dir.path()).args(["actions", "list", "--status", "failed"]).args(server_args)).stdout);
    assert!(only.contains(&sent) && !only.contains(&replay), "{only}");
    let wrong = switchyard(dir.path()).args(["actions", "list", "--url", &base, "--api-key", "nope"]).output().unwrap();
    assert!(!wrong.status.success() && text(&wrong.stderr).contains("401"), "{}", text(&wrong.stderr));
}

#[tokio::test]
async fn configuration_layers_defaults_file_environment_flags() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("switchyard.toml"),
        "listen = \"127.0.0.2:0\"\ndata_dir = \"state\"\nlog_format = \"json\"\n",
    )
    .unwrap();
    let from_file = Server::start(switchyard(dir.path()).arg("serve"));
    assert!(from_file.base.starts_with("http://127.0.0.2:"), "{}", from_file.base);
    assert!(dir.path().join("state/admin.key").exists(), "data_dir from the file");
    assert!(from_file.logs().lines().any(|l| l.starts_with('{')), "json logs from the file");
    from_file.stop();

    let from_env = Server::start(switchyard(dir.path()).arg("serve").env("SWITCHYARD_LISTEN", "127.0.0.3:0"));
    assert!(from_env.base.starts_with("http://127.0.0.3:"), "environment beats the file: {}", from_env.base);
    from_env.stop();

    let from_flag = Server::start(
        switchyard(dir.path()).args(["serve", "--listen", "127.0.0.4:0"]).env("SWITCHYARD_LISTEN", "127.0.0.3:0"),
    );
    assert!(from_flag.base.starts_with("http://127.0.0.4:"), "flags beat the environment: {}", from_flag.base);
    from_flag.stop();

    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("custom.toml"), "listen = \"127.0.0.5:0\"\n").unwrap();
    let explicit =
        Server::start(switchyard(dir.path()).args(["serve", "--config"]).arg(other.path().join("custom.toml")));
    assert!(explicit.base.starts_with("http://127.0.0.5:"), "--config names the file: {}", explicit.base);
}

/// Arguments, environment, and what the error must say.
type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);

#[test]
fn bad_configuration_fails_fast_and_says_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let secret_value = "c2hvcnQ-not-a-key";
    let cases: Vec<Case> = vec![
        (vec!["serve", "--listen", "nowhere"], vec![], "listen: `nowhere` is not an address"),
        (vec!["serve"], vec![("SWITCHYARD_SECRET_KEY", secret_value)], "secret_key: the secret key"),
        (vec!["serve", "--database-url", "mysql://db/x"], vec![], "database_url: `mysql://db/x` is not supported"),
        (vec!["serve"], vec![("SWITCHYARD_LOG_FORMAT", "xml")], "log_format"),
        (vec!["serve"], vec![("SWITCHYARD_BODY_LIMIT_BYTES", "ten")], "body_limit_bytes"),
        (vec!["serve"], vec![("SWITCHYARD_QUEUE_MEMORY_MB", "0")], "queue_memory_mb: must be 1 to 1048576"),
        (vec!["serve"], vec![("SWITCHYARD_RETENTION_DAYS", "0")], "retention_days: must be more than 0"),
        (vec!["serve", "--config", "missing.toml"], vec![], "config file missing.toml does not exist"),
        (
            vec!["bench", "--database-url", "postgres://x@h/db"],
            vec![],
            "bench: --data-dir and --database-url do not apply",
        ),
        (vec!["bench", "--data-dir", "d"], vec![], "bench: --data-dir and --database-url do not apply"),
        (vec!["bench"], vec![("SWITCHYARD_QUEUE_MEMORY_MB", "0")], "queue_memory_mb: must be 1 to 1048576"),
        (vec!["orgs", "update", "acme", "--custom-integrations", "true"], vec![], "not a valid Organization id"),
        (vec!["keys", "revoke", "--org", "org_01m81j4j6mrv2rehfz943cb5bf", "k1"], vec![], "not a valid ApiKey id"),
    ];
    for (args, envs, expected) in cases {
        let mut cmd = switchyard(dir.path());
        cmd.args(&args).envs(envs.iter().copied());
        let out = cmd.output().unwrap();
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(stderr.contains(expected), "{args:?}: expected `{expected}` in: {stderr}");
        assert!(!stderr.contains(secret_value), "the secret key value was echoed: {stderr}");
    }
    std::fs::write(dir.path().join("switchyard.toml"), "listen = \"127.0.0.1:0\"\nlisten_port = 9\n").unwrap();
    let out = switchyard(dir.path()).arg("serve").output().unwrap();
    assert!(text(&out.stderr).contains("unknown setting `listen_port`"), "{}", text(&out.stderr));
    assert!(!dir.path().join("data").exists(), "nothing is created when the configuration is refused");
}

#[test]
fn every_command_has_help() {
    let dir = tempfile::tempdir().unwrap();
    for (args, expected) in [
        (vec!["--help"], vec!["serve", "migrate", "orgs", "keys"]),
        (vec!["serve", "--help"], vec!["--listen", "--data-dir", "--database-url", "--config"]),
        (vec!["migrate", "--help"], vec!["--data-dir"]),
        (vec!["orgs", "--help"], vec!["create", "list", "update"]),
        (vec!["orgs", "create", "--help"], vec!["--custom-integrations"]),
        (vec!["keys", "--help"], vec!["create", "list", "revoke"]),
        (vec!["keys", "create", "--help"], vec!["--org", "--scope"]),
        (vec!["keys", "revoke", "--help"], vec!["--org"]),
    ] {
        let out = text(&run(switchyard(dir.path()).args(&args)).stdout);
        for word in expected {
            assert!(out.contains(word), "{args:?} help lacks {word}: {out}");
        }
    }
}

#[test]
fn migrate_prepares_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let out = text(&run(switchyard(dir.path()).args(["migrate", "--data-dir", "db"])).stdout);
    assert!(out.contains("up to date"));
    assert!(dir.path().join("db/switchyard.db").exists());
    assert!(!dir.path().join("db/admin.key").exists(), "only serve bootstraps an organization");
}

/// The first figure on a line of the bench's table.
fn figure(out: &str, label: &str) -> f64 {
    let rest = line_after(out, label);
    rest.split_whitespace()
        .next()
        .and_then(|v| v.trim_end_matches('%').parse().ok())
        .unwrap_or_else(|| panic!("no figure after `{label}` in {out}"))
}

#[test]
fn bench_runs_end_to_end_and_prints_every_figure() {
    // Tiny sizes: this proves the command works (every record delivered, or
    // it fails), not how fast; the figures come from a release build.
    let dir = tempfile::tempdir().unwrap();
    let out = run(switchyard(dir.path()).args([
        "bench",
        "--records",
        "300",
        "--single",
        "100",
        "--latency-seconds",
        "1",
        "--clients",
        "4",
        "--backfill-meters",
        "2",
        "--backfill-days",
        "40",
        "--polled",
        "3",
        "--polled-seconds",
        "2",
    ]));
    let out = text(&out.stdout);
    let stored = line_after(&out, "    (j) records stored");
    assert_eq!(stored.split_whitespace().collect::<Vec<_>>(), ["1920", "1920"], "2 meters × 40 days × 24 h: {out}");
    assert_eq!(line_after(&out, "    (j) again: records stored").split_whitespace().next(), Some("0"), "{out}");
    assert!(figure(&out, "    baseline: the same pages fetched and parsed alone, readings/s") > 0.0, "{out}");
    assert!(figure(&out, "    (k) CPU while they wait and poll, % of one core") >= 0.0, "{out}");
    for label in [
        "(a) baseline: same client straight to the receiver, req/s",
        "    (a) again after (b), (c) and (d), req/s",
        "(b) delivered records/s, ingest batches of 100",
        "(c) delivered records/s, one record per ingest request",
        "CPU per request of (a), µs (client and receiver)",
        "CPU per record of (b), µs (client, server, receiver)",
        "CPU per record of (c), µs (client, server, receiver)",
        "(e) idle RSS, MB",
    ] {
        assert!(figure(&out, label) > 0.0, "`{label}` should be positive: {out}");
    }
    for label in [
        "(d) latency p50, ms (ingest accepted -> webhook received)",
        "    latency p99, ms, at 1,000 records/s",
        "    latency p99.9, ms",
    ] {
        assert!(figure(&out, label) >= 0.0, "{out}");
    }
    // End to end includes the ingest request's own round trip: never zero.
    for p in ["p50", "p99", "p99.9"] {
        let label = format!("    end to end {p}, ms (request sent -> webhook received)");
        assert!(figure(&out, &label) > 0.0, "{out}");
    }
    assert!(out.contains("(1000 latency samples)"), "every fixed-rate record is timed: {out}");
    for run in ["(b) 300 records", "(c) 100 records"] {
        let line = out.lines().find(|l| l.contains(run)).unwrap_or_else(|| panic!("no `{run}` line: {out}"));
        assert!(line.contains("all delivered after") && line.contains("all recorded after"), "{line}");
    }
    assert!(line_after(&out, "(b) delivered records/s, ingest batches of 100").contains(">= 50000"), "{out}");
}

#[test]
fn bench_runs_one_measure_alone_when_the_others_are_sized_zero() {
    // For profiling one run: the others are skipped and say so with NaN.
    let dir = tempfile::tempdir().unwrap();
    let out = run(switchyard(dir.path()).env("SWITCHYARD_QUEUE_MEMORY_MB", "3").args([
        "bench",
        "--baseline",
        "0",
        "--records",
        "200",
        "--single",
        "0",
        "--latency-seconds",
        "0",
        "--clients",
        "4",
        "--backfill-meters",
        "0",
        "--polled",
        "0",
    ]));
    let out = text(&out.stdout);
    assert!(figure(&out, "(b) delivered records/s, ingest batches of 100") > 0.0, "{out}");
    assert!(figure(&out, "CPU per record of (b), µs (client, server, receiver)") > 0.0, "{out}");
    for skipped in [
        "(a) baseline: same client straight to the receiver, req/s",
        "(c) delivered records/s, one record per ingest request",
        "    latency p99, ms, at 1,000 records/s",
    ] {
        assert!(line_after(&out, skipped).trim_start().starts_with("NaN"), "`{skipped}` was not run: {out}");
    }
    assert!(out.contains("(b) 200 records: all accepted"), "{out}");
    assert!(out.contains(", queue budget 3 MiB"), "the configuration's engine settings apply: {out}");
    assert!(!out.contains("(c) 0 records"), "a skipped run prints nothing of its own: {out}");
}
