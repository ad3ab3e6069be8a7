//! Shared by the operator's tests: a kube client for the test API server, a
//! namespace per test that is cleaned up, kubectl, the CRD, and the real
//! `bowchat` binary in embedded mode on port 0.
#![allow(dead_code)]

pub mod kafka;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bowchat_testenv::TestEnv;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;
use serde_json::{json, Value};

pub fn kubeconfig() -> String {
    TestEnv::require("BOWCHAT_TEST_KUBECONFIG", "kube")
}

pub async fn client() -> Client {
    let kc = Kubeconfig::read_from(kubeconfig()).expect("read kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kube config");
    Client::try_from(config).expect("kube client")
}

/// Runs kubectl with `stdin`; returns (success, stdout, stderr).
pub fn kubectl(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let bin = TestEnv::require("BOWCHAT_TEST_KUBECTL", "kube");
    let mut child = Command::new(bin)
        .args(args)
        .env("KUBECONFIG", kubeconfig())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(input);
    let out = child.wait_with_output().expect("kubectl output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Applies the generated CRD (server-side, so parallel tests agree) and waits
/// until it is established.
pub fn install_crd() {
    let yaml = bowchat_operator::crd::crd_yaml();
    let (ok, _, err) = kubectl(
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        Some(&yaml),
    );
    assert!(ok, "apply CRD: {err}");
    let (ok, _, err) = kubectl(
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/auctions.bowchat.io",
        ],
        None,
    );
    assert!(ok, "CRD established: {err}");
}

/// A namespace for one test; deleted (with its objects' finalizers removed)
/// when dropped, and finalized by hand since no namespace controller runs.
pub struct Namespace {
    pub name: String,
}

impl Namespace {
    pub fn create(prefix: &str) -> Namespace {
        let name = format!(
            "{prefix}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let (ok, _, err) = kubectl(&["create", "namespace", &name], None);
        assert!(ok, "create namespace: {err}");
        Namespace { name }
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let ns = self.name.as_str();
        let (_, names, _) = kubectl(&["-n", ns, "get", "auctions", "-o", "name"], None);
        for name in names.lines().filter(|l| !l.is_empty()) {
            kubectl(
                &[
                    "-n",
                    ns,
                    "patch",
                    name,
                    "--type=merge",
                    "-p",
                    r#"{"metadata":{"finalizers":null}}"#,
                ],
                None,
            );
        }
        kubectl(&["-n", ns, "delete", "auctions,deployments,leases,events,configmaps,serviceaccounts,services,secrets,roles,rolebindings", "--all", "--wait=false"], None);
        kubectl(&["delete", "namespace", ns, "--wait=false"], None);
        let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}, "spec": {"finalizers": []}});
        kubectl(
            &[
                "replace",
                "--raw",
                &format!("/api/v1/namespaces/{ns}/finalize"),
                "-f",
                "-",
            ],
            Some(&body.to_string()),
        );
    }
}

/// The real platform binary (built by `cargo build -p bowchat`).
pub fn bowchat_bin() -> PathBuf {
    let path = std::env::var("BOWCHAT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join("target/debug/bowchat"));
    assert!(
        path.exists(),
        "{} not found: build the platform first with `cargo build -p bowchat` (or set BOWCHAT_BIN)",
        path.display()
    );
    path
}

/// The platform in embedded mode, started on port 0 with its own data directory.
pub struct Platform {
    child: Child,
    pub addr: String,
    _dir: tempdir::Dir,
    http: reqwest::Client,
}

mod tempdir {
    /// A data directory removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Platform {
    pub fn start() -> Platform {
        let dir = std::env::temp_dir().join(format!(
            "bowchat-operator-test-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("data dir");
        let mut child = Command::new(bowchat_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&dir)
            .env_remove("RUST_LOG")
            // The platform reads every BOWCHAT_* variable as configuration.
            .env_remove("BOWCHAT_BIN")
            .env("BOWCHAT_AUTH__ARGON2_MEMORY_KIB", "1024")
            .env("BOWCHAT_AUTH__ARGON2_ITERATIONS", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start bowchat");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut addr = None;
        for line in lines.by_ref() {
            let line = line.expect("read stdout");
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if v["fields"]["message"] == "listening" {
                    addr = v["fields"]["addr"].as_str().map(str::to_string);
                    break;
                }
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Platform {
            child,
            addr: addr.expect("bowchat printed its address"),
            _dir: tempdir::Dir(dir),
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut request = self.http.post(format!("{}{path}", self.url())).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("http post");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.url()))
            .bearer_auth(token)
            .send()
            .await
            .expect("http get");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Registers a user; returns (id, access token).
    pub async fn user(&self, name: &str, password: &str) -> (i64, String) {
        let (status, body) = self
            .post(
                "/api/auth/register",
                None,
                json!({"email": format!("{name}@test.bowchat"), "password": password, "displayName": name}),
            )
            .await;
        assert_eq!(status, 201, "register {name}: {body}");
        (
            body["user"]["id"].as_i64().unwrap(),
            body["accessToken"].as_str().unwrap().to_string(),
        )
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` every 200 ms until it returns Some, or panics with `what` after `secs`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
