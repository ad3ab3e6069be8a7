//! Cluster mode: the Kafka broker restarts while clients keep bidding. The
//! test runs its own broker (scripts/testenv.d/12-kafka.sh on free ports and a
//! private state folder), never the shared one. Producers recover, bids after
//! the restart are answered, and every acknowledged bid is stored exactly once.
//! It prints how long recovery took. On failure (and with `KEEP_SERVER_LOG=1`
//! always) the node's whole log is written under `target/tmp/`.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::cluster::{self, Cluster};

/// A broker of this test only; stopped and deleted on drop.
struct PrivateKafka {
    state: tempfile::TempDir,
    port: u16,
    controller_port: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

impl PrivateKafka {
    fn start() -> PrivateKafka {
        // Fails with the usual message when the shared test broker (and so
        // the cached jars) was never set up.
        bowchat_testenv::TestEnv::require("BOWCHAT_TEST_KAFKA_BOOTSTRAP", "kafka");
        let kafka = PrivateKafka {
            state: tempfile::tempdir().unwrap(),
            port: free_port(),
            controller_port: free_port(),
        };
        kafka.script("up");
        kafka
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Runs the component script the way `scripts/testenv` does, on this
    /// broker's ports and folder.
    fn script(&self, action: &str) {
        let envd = self.state.path().join("env.d");
        std::fs::create_dir_all(&envd).unwrap();
        let cache = std::env::var("TESTENV_CACHE").unwrap_or_else(|_| {
            format!("{}/.cache/bowchat-testenv", std::env::var("HOME").unwrap())
        });
        let status = Command::new("bash")
            .arg(repo_root().join("scripts/testenv.d/12-kafka.sh"))
            .arg(action)
            .env("TESTENV_ROOT", repo_root())
            .env("TESTENV_STATE", self.state.path())
            .env("TESTENV_CACHE", cache)
            .env("TESTENV_ENVD", &envd)
            .env("TESTENV_KAFKA_PORT", self.port.to_string())
            .env(
                "TESTENV_KAFKA_CONTROLLER_PORT",
                self.controller_port.to_string(),
            )
            .status()
            .expect("run 12-kafka.sh");
        assert!(status.success(), "12-kafka.sh {action} failed");
    }

    /// Stops the broker process (SIGTERM, a controlled shutdown) and keeps its data.
    fn stop(&self) {
        let pid_file = self.state.path().join("kafka/kafka.pid");
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while unsafe { libc::kill(pid, 0) } == 0 {
            if Instant::now() > deadline {
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for PrivateKafka {
    fn drop(&mut self) {
        self.script("down");
    }
}

/// Longest a client waits for the answer to one bid. Bids sent during the
/// outage are held by the gateway's producer until the broker is back, so this
/// covers the restart itself plus recovery.
const ANSWER_WAIT: Duration = Duration::from_secs(60);
/// After the broker answers again, every client must get this many answers...
const ANSWERS_AFTER: usize = 3;
/// ...within this long, or recovery failed.
const RECOVERY_WAIT: Duration = Duration::from_secs(40);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_under_load_loses_and_doubles_nothing() {
    // A stuck recovery must fail the test, not hang it; dropping the body
    // stops the private broker and the node.
    tokio::time::timeout(Duration::from_secs(240), restart_under_load())
        .await
        .expect("the broker-restart scenario finishes within 240 s");
}

/// One bid's final answer.
struct Answered {
    amount: i64,
    frame: Value,
    at: Instant,
}

/// What one bidding client saw.
struct ClientRun {
    user: i64,
    answers: Vec<Answered>,
    /// Requests answered `UNAVAILABLE` or `TIMEOUT` and sent again with the same id.
    retries: usize,
    /// Why the client stopped early.
    failure: Option<String>,
}

async fn restart_under_load() {
    let started = Instant::now();
    let kafka = PrivateKafka::start();
    eprintln!("private broker up after {:?}", started.elapsed());
    let cluster = Cluster::on("restart", &kafka.bootstrap(), 2).await;
    let node = cluster.start("node", "gateway,auction,chat");
    let seller = node.user("seller").await;
    let auction = node
        .auction(&seller, json!({"startingPrice": 100, "increment": 1}))
        .await;
    let id = auction["id"].as_i64().unwrap();

    const CLIENTS: usize = 3;
    let stop = Arc::new(AtomicBool::new(false));
    // When the broker answered again; answers after it count as recovered.
    let back_at: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
    let answered_after: Arc<Vec<AtomicUsize>> =
        Arc::new((0..CLIENTS).map(|_| AtomicUsize::new(0)).collect());
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let user = node.user(&format!("b{c}")).await;
        let mut ws = node.ws(&user.token).await;
        let stop = stop.clone();
        let (back_at, answered_after) = (back_at.clone(), answered_after.clone());
        // Each client bids one after another, waiting for every answer. A bid
        // the gateway could not hand to the bus (`UNAVAILABLE`) is sent again
        // with the same request id, as a real client would; the role answers a
        // repeated id with its first result.
        tasks.push(tokio::spawn(async move {
            let mut run = ClientRun {
                user: user.id,
                answers: Vec::new(),
                retries: 0,
                failure: None,
            };
            let mut n = 0i64;
            'bids: while !stop.load(Ordering::Relaxed) {
                let amount = 100 + n * 10 + c as i64;
                let rid = format!("{c}-{n}");
                let frame = loop {
                    ws.send(json!({"type": "AUCTION_BID", "requestId": rid, "auctionId": id, "amount": amount}))
                        .await;
                    let Some(frame) = answer(&mut ws, &rid).await else {
                        run.failure = Some(format!("no answer to {rid} within {ANSWER_WAIT:?}"));
                        break 'bids;
                    };
                    // TIMEOUT: the gateway gave up waiting (a bid held
                    // through the outage); the retry learns the outcome.
                    let retry = ["UNAVAILABLE", "TIMEOUT"]
                        .iter()
                        .any(|code| frame["code"] == *code || frame["result"]["code"] == *code);
                    if !retry {
                        break frame;
                    }
                    run.retries += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                };
                if back_at.lock().unwrap().is_some() {
                    answered_after[c].fetch_add(1, Ordering::Relaxed);
                }
                run.answers.push(Answered {
                    amount,
                    frame,
                    at: Instant::now(),
                });
                n += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            run
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let restart = Instant::now();
    tokio::task::block_in_place(|| {
        kafka.stop();
        eprintln!("broker stopped in {:?}", restart.elapsed());
        kafka.script("up");
    });
    let back = Instant::now();
    *back_at.lock().unwrap() = Some(back);
    eprintln!("broker back after {:?}", restart.elapsed());
    // Keep bidding until every client got a few answers after the restart.
    let deadline = back + RECOVERY_WAIT;
    let counts = || -> Vec<usize> {
        answered_after
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .collect()
    };
    while counts().iter().any(|n| *n < ANSWERS_AFTER) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = counts();
    let recovered = after.iter().all(|n| *n >= ANSWERS_AFTER);
    stop.store(true, Ordering::Relaxed);
    if !recovered {
        node.dump_log("cluster_broker_restart");
        panic!(
            "bidding did not recover: answers per client {after:?} within {RECOVERY_WAIT:?} \
             after the broker came back (need {ANSWERS_AFTER} each); node warnings:\n{}",
            node.warnings().join("\n")
        );
    }

    let mut runs = Vec::new();
    for task in tasks {
        runs.push(task.await.unwrap());
    }
    let failures: Vec<&String> = runs.iter().filter_map(|r| r.failure.as_ref()).collect();
    if !failures.is_empty() {
        node.dump_log("cluster_broker_restart");
        panic!(
            "clients stopped early: {failures:?}; node warnings:\n{}",
            node.warnings().join("\n")
        );
    }
    // Recovery: from the broker answering again to the first answer of each
    // client (bids held through the outage included).
    let first_after: Vec<Duration> = runs
        .iter()
        .map(|r| {
            r.answers
                .iter()
                .find(|a| a.at > back)
                .map(|a| a.at - back)
                .expect("an answer after the restart")
        })
        .collect();
    let recovery = first_after.iter().max().copied().unwrap_or_default();
    eprintln!(
        "recovery: every client answered within {recovery:?} after the broker came back \
         ({:?} after it was stopped); per client {first_after:?}",
        back - restart + recovery
    );

    let pg = cluster.pg().await;
    let (mut accepted, mut after_restart, mut retries) = (0, 0, 0);
    for run in &runs {
        retries += run.retries;
        for a in &run.answers {
            assert_eq!(a.frame["type"], "BID_RESULT", "{}", a.frame);
            if a.frame["accepted"] != true {
                continue;
            }
            accepted += 1;
            if a.at > back {
                after_restart += 1;
            }
            assert_eq!(
                cluster::stored_steps(&pg, id, run.user, a.amount).await,
                1,
                "acknowledged bid {} stored exactly once",
                a.frame["requestId"]
            );
        }
    }
    eprintln!(
        "{accepted} accepted bids, {after_restart} after the broker came back, \
         {retries} resent after UNAVAILABLE or TIMEOUT"
    );
    assert!(after_restart > 0, "bidding resumed after the restart");
    let amounts: Vec<i64> =
        sqlx::query_scalar("SELECT amount FROM auction_steps WHERE auction_id = $1 ORDER BY seq")
            .bind(id)
            .fetch_all(&pg)
            .await
            .unwrap();
    assert!(
        amounts.windows(2).all(|w| w[0] < w[1]),
        "accepted bids strictly increase: {amounts:?}"
    );
    assert!(
        amounts.len() >= accepted,
        "every accepted answer is a stored step"
    );
    cluster::assert_auction_invariants(&pg, &[id]).await;
    pg.close().await;
    if std::env::var_os("KEEP_SERVER_LOG").is_some() {
        node.dump_log("cluster_broker_restart");
    }
    drop(node);
    cluster.finish().await;
    drop(kafka);
    eprintln!("cluster broker-restart test took {:?}", started.elapsed());
}

/// The frame answering `request_id`, or none within [`ANSWER_WAIT`].
async fn answer(ws: &mut support::Ws, request_id: &str) -> Option<Value> {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let deadline = tokio::time::Instant::now() + ANSWER_WAIT;
    loop {
        let next = tokio::time::timeout_at(deadline, ws.stream.next())
            .await
            .ok()?
            .expect("stream open")
            .expect("frame");
        if let Message::Text(text) = next {
            let frame: Value = serde_json::from_str(text.as_str()).unwrap();
            if frame["requestId"] == request_id {
                return Some(frame);
            }
        }
    }
}
