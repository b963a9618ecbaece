//! `taskflow serve` as the end-to-end tests run it: the real binary on a loopback port, its
//! address read from the first line it prints (`listening on http://ADDR`), killed with SIGKILL
//! when dropped or on request (a crash), and the few calls every test of its API makes. Each
//! test file uses the part it needs.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_taskflow");

/// A serve process and its address; killed when dropped.
pub struct Serve {
    pub child: Child,
    /// `http://ADDR`.
    pub url: String,
}

impl Serve {
    /// Serve as owner `alice` on database `db`, on a free loopback port.
    pub fn start(db: &Path, args: &[&str], env: &[(&str, &str)]) -> Serve {
        Serve::start_on(db, "127.0.0.1:0", args, env)
    }

    /// Serve with `[serve.tokens]` in a config file in `dir`: one token per `(owner, secret,
    /// host)`, its secret in a variable of its own.
    pub fn with_tokens(db: &Path, dir: &Path, tokens: &[(&str, &str, bool)]) -> Serve {
        let mut config = String::from("[serve.tokens]\n");
        let mut env = Vec::new();
        for (owner, secret, host) in tokens {
            let variable = format!("T_{}", owner.to_uppercase());
            config.push_str(&format!(
                "{owner} = {{ owner = \"{owner}\", token_env = \"{variable}\", host = {host} }}\n"
            ));
            env.push((variable, (*secret).to_owned()));
        }
        let path = dir.join("config.toml");
        std::fs::write(&path, config).unwrap();
        let path = path.to_str().unwrap().to_owned();
        let mut env: Vec<(&str, &str)> =
            env.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
        env.push(("TASKFLOW_CONFIG", &path));
        Serve::start(db, &[], &env)
    }

    /// Serve on `listen` (an address a serve before it had, to come back where clients were).
    pub fn start_on(db: &Path, listen: &str, args: &[&str], env: &[(&str, &str)]) -> Serve {
        let mut command = Command::new(BIN);
        command
            .arg("--db")
            .arg(db)
            .args(["--owner", "alice", "serve", "--listen", listen])
            .args(args)
            .env_remove("TASKFLOW_OWNER")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        let Some(url) = first.trim().strip_prefix("listening on ").map(str::to_owned) else {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!("serve did not start: {first:?} {}", String::from_utf8_lossy(&output.stderr))
        };
        Serve { url, child }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// `ADDR`, without the scheme.
    pub fn address(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// SIGKILL, as a crash.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// A request's status and JSON body.
pub async fn call(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

pub async fn wait_until(what: &str, mut ready: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !ready().await {
        assert!(started.elapsed() < Duration::from_secs(30), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn status_of(serve: &Serve, id: &str) -> String {
    let (_, body) = call(client().get(serve.url(&format!("/v1/flows/{id}")))).await;
    body["flow"]["status"].as_str().unwrap_or_default().to_owned()
}

/// A temporary folder and the path of a flow database in it.
pub fn folder() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flows.db");
    (dir, db)
}
