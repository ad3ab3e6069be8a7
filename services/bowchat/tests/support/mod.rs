//! Black-box test harness: starts the real `bowchat` binary on port 0 with its
//! own data directory and talks to it over HTTP and WebSocket like a client.
#![allow(dead_code)]

pub mod cluster;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub struct Server {
    child: Child,
    /// Every stdout line after startup (JSON log lines).
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    pub addr: String,
    pub dir: PathBuf,
    http: reqwest::Client,
}

impl Server {
    /// Starts the binary on `dir` with `extra` environment settings.
    pub fn start(dir: &Path, extra: &[(&str, &str)]) -> Server {
        Server::start_roles(dir, "gateway,auction,chat", extra)
    }

    /// Starts the binary with only `roles` (comma separated). Without the
    /// gateway role, `addr` serves /metrics and /healthz only.
    pub fn start_roles(dir: &Path, roles: &str, extra: &[(&str, &str)]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_bowchat"));
        command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--roles",
                roles,
                "--data-dir",
            ])
            .arg(dir)
            .env_remove("RUST_LOG")
            // Cheap password hashing keeps the tests fast; production uses the defaults.
            .env("BOWCHAT_AUTH__ARGON2_MEMORY_KIB", "1024")
            .env("BOWCHAT_AUTH__ARGON2_ITERATIONS", "1")
            .env("BOWCHAT_GATEWAY__USER_RATE_PER_SEC", "10000")
            .env("BOWCHAT_GATEWAY__USER_RATE_BURST", "10000")
            // Every test user comes from 127.0.0.1: the per-IP login and
            // registration throttles are off unless a test turns them on.
            .env("BOWCHAT_AUTH__THROTTLE__IP__FREE_ATTEMPTS", "0")
            .env("BOWCHAT_AUTH__THROTTLE__REGISTER__FREE_ATTEMPTS", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in extra {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("start bowchat");
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
                if v["fields"]["message"] == "running without a gateway; serving /metrics" {
                    addr = v["fields"]["addr"].as_str().map(str::to_string);
                    break;
                }
            }
        }
        // Keep draining so the server never blocks on a full pipe.
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let addr = addr.expect("server printed its address");
        Server {
            child,
            log,
            addr,
            dir: dir.to_path_buf(),
            http: reqwest::Client::new(),
        }
    }

    /// Log lines so far whose text contains `needle`.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        let log = self.log.lock().unwrap();
        log.iter().filter(|l| l.contains(needle)).cloned().collect()
    }

    /// Warning and error log lines so far (what explains a failed scenario).
    pub fn warnings(&self) -> Vec<String> {
        let log = self.log.lock().unwrap();
        log.iter()
            .filter(|l| l.contains(r#""level":"WARN""#) || l.contains(r#""level":"ERROR""#))
            .cloned()
            .collect()
    }

    /// Writes the whole log to a file under the target folder and says where,
    /// so a failure can be read in full after the test's folders are gone.
    pub fn dump_log(&self, name: &str) {
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("{name}-{}.log", std::process::id()));
        let text = self.log.lock().unwrap().join("\n");
        match std::fs::write(&path, text) {
            Ok(()) => eprintln!("server log written to {}", path.display()),
            Err(e) => eprintln!("cannot write the server log to {}: {e}", path.display()),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// How the process ended, once it ends within `within`; None if it still runs.
    pub async fn exit_within(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut request = self.http.post(self.url(path)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("http post");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A request without a body (PUT, DELETE, …).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("http request");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = self.http.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("http get");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Polls `GET /api/rooms` with `token` until it is no longer answered
    /// 200 (a revocation or block reaches a server at its next poll);
    /// returns that answer. Panics after 30 s.
    pub async fn until_refused(&self, token: &str) -> (u16, Value) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (status, body) = self.get("/api/rooms", Some(token)).await;
            if status != 200 {
                return (status, body);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the token still works after 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Creates a group room `name` owned by `owner` with `members`; returns its id.
    pub async fn group_room(&self, owner: &User, name: &str, members: &[&User]) -> i64 {
        let ids: Vec<i64> = members.iter().map(|u| u.id).collect();
        let (status, room) = self
            .post(
                "/api/rooms",
                Some(&owner.token),
                json!({"name": name, "members": ids}),
            )
            .await;
        assert_eq!(status, 201, "create room: {room}");
        room["id"].as_i64().expect("room id")
    }

    /// Registers `name@test` and returns (user id, access token, refresh token).
    pub async fn user(&self, name: &str) -> User {
        let (status, body) = self
            .post(
                "/api/auth/register",
                None,
                json!({"email": format!("{name}@test.bowchat"), "password": "correct horse battery", "displayName": name}),
            )
            .await;
        assert_eq!(status, 201, "register {name}: {body}");
        User {
            id: body["user"]["id"].as_i64().unwrap(),
            token: body["accessToken"].as_str().unwrap().to_string(),
            refresh: body["refreshToken"].as_str().unwrap().to_string(),
        }
    }

    /// Creates an auction as `seller` with `terms` merged over sensible defaults.
    pub async fn auction(&self, seller: &User, terms: Value) -> Value {
        let mut body = json!({"title": "Test lot", "currency": "USD", "startingPrice": 100, "increment": 10, "durationSecs": 600});
        for (k, v) in terms.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, view) = self.post("/api/auctions", Some(&seller.token), body).await;
        assert_eq!(status, 201, "create auction: {view}");
        view
    }

    pub async fn ws(&self, token: &str) -> Ws {
        let url = format!("ws://{}/ws?access_token={}", self.addr, token);
        let (stream, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("ws connect");
        let mut ws = Ws { stream };
        let welcome = ws.recv().await;
        assert_eq!(welcome["type"], "WELCOME", "{welcome}");
        ws
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The `id`s of a list answer's `items`, in order.
pub fn item_ids(body: &Value) -> Vec<i64> {
    body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("a list: {body}"))
        .iter()
        .map(|a| a["id"].as_i64().unwrap())
        .collect()
}

#[derive(Clone, Debug)]
pub struct User {
    pub id: i64,
    pub token: String,
    pub refresh: String,
}

pub struct Ws {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    pub async fn send(&mut self, frame: Value) {
        self.stream
            .send(Message::Text(frame.to_string().into()))
            .await
            .expect("ws send");
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.stream.send(message).await.expect("ws send");
    }

    /// The next JSON text frame (server pings are skipped); panics after 15 s.
    pub async fn recv(&mut self) -> Value {
        loop {
            let next = tokio::time::timeout(Duration::from_secs(15), self.stream.next())
                .await
                .expect("a frame within 15 s")
                .expect("stream open")
                .expect("frame");
            if let Message::Text(text) = next {
                return serde_json::from_str(text.as_str()).expect("server frames are JSON");
            }
        }
    }

    /// Frames until one satisfies `pred`; returns it and what came before.
    pub async fn until(&mut self, pred: impl Fn(&Value) -> bool) -> (Value, Vec<Value>) {
        let mut before = Vec::new();
        loop {
            let frame = self.recv().await;
            if pred(&frame) {
                return (frame, before);
            }
            before.push(frame);
        }
    }

    pub async fn subscribe_auction(&mut self, id: i64, since: Option<i64>) -> Vec<Value> {
        self.send(json!({"type": "SUBSCRIBE", "auctionId": id, "since": since}))
            .await;
        let (_, before) = self
            .until(|f| f["type"] == "SUBSCRIBED" && f["auctionId"] == id)
            .await;
        before
    }

    pub async fn subscribe_room(&mut self, id: i64, since: Option<i64>) -> Vec<Value> {
        self.send(json!({"type": "SUBSCRIBE", "roomId": id, "since": since}))
            .await;
        let (frame, before) = self
            .until(|f| (f["type"] == "SUBSCRIBED" && f["roomId"] == id) || f["type"] == "ERROR")
            .await;
        assert_eq!(frame["type"], "SUBSCRIBED", "subscribe room {id}: {frame}");
        before
    }
}
