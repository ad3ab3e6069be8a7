//! The Grafana dashboard against real data: the real binary on port 0, a real
//! Prometheus (the testenv's Debian binary) scraping it every second, bids and
//! chat messages as load, and every query of deploy/grafana/bowchat-dashboard.json
//! must return at least one finite sample.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bowchat_testenv::TestEnv;
use serde_json::{json, Value};
use support::Server;

/// Our own Prometheus process, killed when dropped.
struct Prometheus {
    child: Child,
    url: String,
}

impl Prometheus {
    fn start(bin: &str, dir: &Path, target: &str) -> Prometheus {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: bowchat\n    static_configs:\n      - targets: [\"{target}\"]\n"
            ),
        )
        .unwrap();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {bin}: {e}"));
        Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn query(&self, http: &reqwest::Client, expr: &str) -> Option<Vec<Value>> {
        let body: Value = http
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", expr)])
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        assert_eq!(body["status"], "success", "{expr}: {body}");
        body["data"]["result"].as_array().cloned()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dashboard_queries() -> Vec<(String, String)> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/grafana/bowchat-dashboard.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            queries.push((
                panel["title"].as_str().unwrap().to_string(),
                target["expr"].as_str().unwrap().to_string(),
            ));
        }
    }
    queries
}

/// True when some sample of the result is a finite number.
fn has_data(result: &[Value]) -> bool {
    result.iter().any(|series| {
        series["value"][1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
            .is_some_and(f64::is_finite)
    })
}

/// Bids from `bidders` sockets and chat sends over REST for `secs` seconds.
async fn load(server: &Server, bidders: usize, secs: u64) {
    let seller = server.user("seller").await;
    let auction = server.auction(&seller, json!({"increment": 1})).await["id"]
        .as_i64()
        .unwrap();
    let (status, room) = server
        .post("/api/rooms", Some(&seller.token), json!({"name": "dash"}))
        .await;
    assert_eq!(status, 201, "{room}");
    let room = room["id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for b in 0..bidders {
        let user = server.user(&format!("bidder{b}")).await;
        let mut ws = server.ws(&user.token).await;
        tasks.push(tokio::spawn(async move {
            let mut amount = 100;
            let mut n = 0;
            while Instant::now() < deadline {
                n += 1;
                let id = format!("{b}-{n}");
                ws.send(json!({"type": "AUCTION_BID", "requestId": id, "auctionId": auction, "amount": amount})).await;
                let (result, _) = ws
                    .until(|f| f["type"] == "BID_RESULT" && f["requestId"] == id.as_str())
                    .await;
                amount = result["minimum"].as_i64().unwrap_or(amount + 1).max(amount);
            }
        }));
    }
    let mut n = 0;
    while Instant::now() < deadline {
        n += 1;
        let (status, body) = server
            .post(
                &format!("/api/rooms/{room}/messages"),
                Some(&seller.token),
                json!({"clientMsgId": format!("m{n}"), "body": "load"}),
            )
            .await;
        assert!(status < 300, "{status} {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_returns_data_from_a_loaded_server() {
    let bin = TestEnv::require("BOWCHAT_TEST_PROMETHEUS_BIN", "prometheus");
    let queries = dashboard_queries();
    assert!(
        queries.len() >= 12,
        "dashboard has {} queries",
        queries.len()
    );
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("server"), &[]);
    let prometheus = Prometheus::start(&bin, dir.path(), &server.addr);
    load(&server, 8, 6).await;

    // Rates need two scrapes inside their window; give Prometheus a little time.
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut missing: Vec<(String, String)> = queries.clone();
    while !missing.is_empty() && Instant::now() < deadline {
        let mut still = Vec::new();
        for (title, expr) in missing {
            match prometheus.query(&http, &expr).await {
                Some(result) if has_data(&result) => {}
                _ => still.push((title, expr)),
            }
        }
        missing = still;
        if !missing.is_empty() {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    assert!(
        missing.is_empty(),
        "dashboard queries without data: {missing:#?}"
    );
}
