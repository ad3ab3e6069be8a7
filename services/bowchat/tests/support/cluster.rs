//! Cluster harness: every test gets its own database on the PostgreSQL test
//! server and its own topic prefix on a Kafka broker, creates the topics with
//! `bowchat admin topics ensure`, and starts gateways and workers as separate
//! `bowchat serve --roles ...` processes. With [`Cluster::with_document_stores`]
//! it also gets its own MongoDB database (chat history) and Redis key prefix
//! (refresh tokens, rate limits, presence, signals).

use std::path::PathBuf;
use std::process::{Command, Output};

use bowchat_testenv::TestEnv;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Row};

use super::Server;

pub struct Cluster {
    pub bootstrap: String,
    pub prefix: String,
    pub db_name: String,
    /// URL of this test's database.
    pub pg_url: String,
    /// URL of the server's default database (to create and drop ours).
    server_url: String,
    pub dir: tempfile::TempDir,
    pub docs: Option<DocumentStores>,
}

/// This test's MongoDB database and Redis key prefix.
pub struct DocumentStores {
    pub mongo_url: String,
    pub mongo_db: String,
    pub redis_url: String,
    pub redis_prefix: String,
}

impl DocumentStores {
    /// The `messages` collection the chat history writes to.
    pub async fn messages(&self) -> mongodb::Collection<mongodb::bson::Document> {
        mongodb::Client::with_uri_str(&self.mongo_url)
            .await
            .expect("connect to the MongoDB test server")
            .database(&self.mongo_db)
            .collection(bowchat_mongo::MESSAGES)
    }

    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.redis_url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the Redis test server")
    }

    /// Keys under this test's prefix matching `pattern` (after the prefix).
    pub async fn redis_keys(&self, pattern: &str) -> Vec<String> {
        redis::cmd("KEYS")
            .arg(format!("{}{pattern}", self.redis_prefix))
            .query_async(&mut self.redis().await)
            .await
            .expect("list keys")
    }
}

/// `postgres://u:p@h:port/db?x` with the database replaced.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let cut = base.rfind('/').expect("database in the url");
    format!("{}/{db}{query}", &base[..cut])
}

impl Cluster {
    /// On the shared test servers.
    pub async fn new(name: &str, partitions: u32) -> Cluster {
        let bootstrap = TestEnv::require("BOWCHAT_TEST_KAFKA_BOOTSTRAP", "kafka");
        Cluster::on(name, &bootstrap, partitions).await
    }

    /// On the shared PostgreSQL server and the broker at `bootstrap`.
    pub async fn on(name: &str, bootstrap: &str, partitions: u32) -> Cluster {
        let server_url = TestEnv::require("BOWCHAT_TEST_PG_URL", "postgres");
        let unique = uuid::Uuid::new_v4().simple().to_string()[..10].to_string();
        let db_name = format!("bowchat_{name}_{unique}");
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&server_url)
            .await
            .expect("connect to the PostgreSQL test server");
        sqlx::query(&format!("CREATE DATABASE {db_name}"))
            .execute(&admin)
            .await
            .expect("create the test database");
        admin.close().await;
        let cluster = Cluster {
            bootstrap: bootstrap.to_string(),
            prefix: format!("t-{name}-{unique}."),
            pg_url: with_database(&server_url, &db_name),
            db_name,
            server_url,
            dir: tempfile::tempdir().unwrap(),
            docs: None,
        };
        let out = cluster.admin(&["topics", "ensure", "--partitions", &partitions.to_string()]);
        assert!(
            out.status.success(),
            "admin topics ensure: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cluster
    }

    /// On the shared test servers, with chat history in MongoDB and
    /// ephemeral state in Redis.
    pub async fn with_document_stores(name: &str, partitions: u32) -> Cluster {
        let mut cluster = Cluster::new(name, partitions).await;
        let unique = &cluster.prefix[2..cluster.prefix.len() - 1];
        cluster.docs = Some(DocumentStores {
            mongo_url: TestEnv::require("BOWCHAT_TEST_MONGODB_URL", "ferretdb"),
            mongo_db: format!("bowchat_{}", unique.replace(['-', '.'], "_")),
            redis_url: TestEnv::require("BOWCHAT_TEST_REDIS_URL", "redis"),
            redis_prefix: format!("{unique}:"),
        });
        cluster
    }

    /// The settings every process of this cluster gets.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = [
            ("BOWCHAT_STORE__KIND", "postgres"),
            ("BOWCHAT_STORE__POSTGRES__URL", self.pg_url.as_str()),
            ("BOWCHAT_STORE__POSTGRES__MAX_CONNECTIONS", "8"),
            ("BOWCHAT_BUS__KIND", "kafka"),
            ("BOWCHAT_BUS__KAFKA__BOOTSTRAP", self.bootstrap.as_str()),
            ("BOWCHAT_BUS__KAFKA__TOPIC_PREFIX", self.prefix.as_str()),
            // The broker's minimum: a killed worker's partitions move on quickly.
            ("BOWCHAT_BUS__KAFKA__SESSION_TIMEOUT_MS", "6000"),
            ("BOWCHAT_BUS__KAFKA__ADMIN_TIMEOUT_MS", "5000"),
            ("BOWCHAT_BUS__KAFKA__REQUEST_TIMEOUT_MS", "5000"),
            ("BOWCHAT_BUS__KAFKA__METADATA_MAX_AGE_MS", "5000"),
            ("BOWCHAT_BUS__LAG_INTERVAL_MS", "1000"),
            // Every process of a cluster seals and opens the signing keys
            // with one key-encryption key (each node has its own data_dir).
            (
                "BOWCHAT_AUTH__KEY_ENCRYPTION_KEY",
                "Ym93Y2hhdC1jbHVzdGVyLXRlc3Qta2VrLTMyLWJ5dGU=",
            ),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        if let Some(docs) = &self.docs {
            for (k, v) in [
                ("BOWCHAT_CHAT_HISTORY__KIND", "mongodb"),
                (
                    "BOWCHAT_CHAT_HISTORY__MONGODB__URL",
                    docs.mongo_url.as_str(),
                ),
                (
                    "BOWCHAT_CHAT_HISTORY__MONGODB__DATABASE",
                    docs.mongo_db.as_str(),
                ),
                ("BOWCHAT_EPHEMERAL__KIND", "redis"),
                ("BOWCHAT_EPHEMERAL__REDIS__URL", docs.redis_url.as_str()),
                (
                    "BOWCHAT_EPHEMERAL__REDIS__KEY_PREFIX",
                    docs.redis_prefix.as_str(),
                ),
            ] {
                env.push((k.to_string(), v.to_string()));
            }
        }
        env
    }

    fn node_dir(&self, name: &str) -> PathBuf {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A process running `roles` (comma separated) as node `name`.
    pub fn start(&self, name: &str, roles: &str) -> Server {
        self.start_with(name, roles, &[])
    }

    /// Like [`Cluster::start`], with `extra` settings on top.
    pub fn start_with(&self, name: &str, roles: &str, extra: &[(&str, &str)]) -> Server {
        let mut env = self.env();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env.push((
            "BOWCHAT_NODE_ID".into(),
            format!("{name}-{}", &self.prefix[2..]),
        ));
        let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Server::start_roles(&self.node_dir(name), roles, &refs)
    }

    /// Runs `bowchat admin <args>` with this cluster's settings.
    pub fn admin(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_bowchat"))
            .arg("admin")
            .args(args)
            .envs(self.env())
            .env("BOWCHAT_LOG__LEVEL", "warn")
            .output()
            .expect("run bowchat admin")
    }

    pub async fn pg(&self) -> PgPool {
        PgPoolOptions::new()
            .max_connections(2)
            .connect(&self.pg_url)
            .await
            .expect("connect to the test database")
    }

    /// Drops the databases, the Redis keys and the topics (after the
    /// processes are gone).
    pub async fn finish(self) {
        if let Some(docs) = &self.docs {
            if let Ok(client) = mongodb::Client::with_uri_str(&docs.mongo_url).await {
                let _ = client.database(&docs.mongo_db).drop().await;
            }
            let keys = docs.redis_keys("*").await;
            if !keys.is_empty() {
                let _: Result<i64, _> = redis::cmd("DEL")
                    .arg(keys)
                    .query_async(&mut docs.redis().await)
                    .await;
            }
        }
        if let Ok(admin) = PgPoolOptions::new()
            .max_connections(1)
            .connect(&self.server_url)
            .await
        {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.db_name
            ))
            .execute(&admin)
            .await;
            admin.close().await;
        }
        let config = bowchat_kafka::KafkaConfig {
            bootstrap: self.bootstrap.clone(),
            topic_prefix: self.prefix.clone(),
            ..Default::default()
        };
        if let Ok(admin) = bowchat_kafka::KafkaAdmin::new(config) {
            let mut names = Vec::new();
            for t in bowchat_bus::topics::ALL {
                names.push(t.to_string());
                names.push(bowchat_bus::topics::dead_letter(t));
            }
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let _ = admin.delete_topics(&names).await;
        }
    }
}

/// Waits until every one of `workers` logged that it claimed partitions
/// (each owns some before a burst starts); panics after 30 s.
pub async fn wait_for_claims(workers: &[&Server]) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while workers
        .iter()
        .any(|w| w.log_lines("claimed partitions").is_empty())
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out: every worker claims partitions"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// How often a bid of `bidder` for `amount` is stored as a price step.
pub async fn stored_steps(pg: &PgPool, auction: i64, bidder: i64, amount: i64) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM auction_steps WHERE auction_id = $1 AND bidder = $2 AND amount = $3",
    )
    .bind(auction)
    .bind(bidder)
    .bind(amount)
    .fetch_one(pg)
    .await
    .unwrap()
}

/// No bid stored twice, and each auction's stored state agrees with its
/// stored steps and results: price = highest step, step count = steps
/// (gapless), bid count = accepted results = steps (straight bids only).
pub async fn assert_auction_invariants(pg: &PgPool, ids: &[i64]) {
    let doubled: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT 1 FROM auction_steps GROUP BY auction_id, bidder, amount HAVING count(*) > 1) d",
    )
    .fetch_one(pg)
    .await
    .unwrap();
    assert_eq!(doubled, 0, "no bid is stored twice");
    for id in ids {
        let row = sqlx::query(
            "SELECT (state->>'price')::bigint AS price, (state->>'stepCount')::bigint AS steps,
                    (state->>'bidCount')::bigint AS bids FROM auctions WHERE id = $1",
        )
        .bind(id)
        .fetch_one(pg)
        .await
        .unwrap();
        let (price, steps, bids): (Option<i64>, i64, i64) =
            (row.get("price"), row.get("steps"), row.get("bids"));
        let stored = sqlx::query(
            "SELECT count(*) AS n, max(amount) AS top, max(seq) AS last FROM auction_steps WHERE auction_id = $1",
        )
        .bind(id)
        .fetch_one(pg)
        .await
        .unwrap();
        let (n, top, last): (i64, Option<i64>, Option<i64>) =
            (stored.get("n"), stored.get("top"), stored.get("last"));
        let results: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM auction_results WHERE auction_id = $1 AND (result->>'accepted')::boolean",
        )
        .bind(id)
        .fetch_one(pg)
        .await
        .unwrap();
        assert_eq!(
            price, top,
            "auction {id}: price is the highest accepted bid"
        );
        assert_eq!(steps, n, "auction {id}: step count");
        assert_eq!(
            last,
            Some(n).filter(|n| *n > 0),
            "auction {id}: steps are gapless"
        );
        assert_eq!(bids, results, "auction {id}: bid count = accepted results");
        assert_eq!(bids, n, "auction {id}: one step per accepted straight bid");
    }
}
