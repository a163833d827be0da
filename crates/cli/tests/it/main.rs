//! The `switchyard` binary, run as a child process the way a user runs it.
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

mod cli;
mod crash;
mod nodes;
mod server;

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

/// A command in `dir`, with no SWITCHYARD_* or RUST_LOG from the outside.
pub fn switchyard(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("SWITCHYARD_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd
}

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?} failed: {}{}", text(&out.stdout), text(&out.stderr));
    out
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A running server; stopped (SIGTERM) on drop.
pub struct Server {
    child: Child,
    pub base: String,
    /// What it printed before "listening".
    pub banner: Vec<String>,
    pub stderr: Arc<Mutex<String>>,
}

impl Server {
    pub fn start(cmd: &mut Command) -> Server {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut banner = Vec::new();
        let base = loop {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.wait();
                panic!("the server exited before listening: {banner:?}\n{}", stderr.lock().unwrap());
            };
            if let Some(addr) = line.strip_prefix("Switchyard listening on ") {
                break addr.to_owned();
            }
            banner.push(line);
        };
        std::thread::spawn(move || for _ in lines {});
        Server { child, base, banner, stderr }
    }

    /// SIGTERM, then wait: the server must stop cleanly.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.terminate()
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("the server did not stop within 5 s of SIGTERM");
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn logs(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A request with a key; returns (status, JSON body or Null).
pub async fn call(method: reqwest::Method, url: &str, key: &str, body: Option<Value>) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut req = client.request(method, url).header("x-api-key", key);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let bytes = res.bytes().await.unwrap();
    (status, if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(json!(text(&bytes))) })
}

pub fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}
