//! The REST calls the scenarios need: users, auctions, rooms, reading back.

use anyhow::{bail, Context};
use futures::{stream, StreamExt, TryStreamExt};
use serde_json::{json, Value};

/// A signed-in virtual user.
#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub token: String,
}

/// HTTP client bound to one server.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    http: reqwest::Client,
}

impl Api {
    pub fn new(base: &str) -> Self {
        Api {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
        }
    }

    /// `ws://…/ws?access_token=…` for `token`.
    pub fn ws_url(&self, token: &str) -> String {
        format!(
            "{}/ws?access_token={token}",
            self.base.replacen("http", "ws", 1)
        )
    }

    pub async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> anyhow::Result<Value> {
        let mut request = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("POST {path}: {status} {body}");
        }
        Ok(body)
    }

    pub async fn get(&self, path: &str, token: &str) -> anyhow::Result<Value> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("GET {path}: {status} {body}");
        }
        Ok(body)
    }

    /// Registers `email` (or logs in when it exists).
    pub async fn user(&self, email: &str, password: &str) -> anyhow::Result<User> {
        let creds = json!({"email": email, "password": password});
        let body = match self.post("/api/auth/register", None, creds.clone()).await {
            Ok(body) => body,
            Err(e) if e.to_string().contains("EMAIL_TAKEN") => {
                self.post("/api/auth/login", None, creds).await?
            }
            Err(e) => return Err(e),
        };
        Ok(User {
            id: body["user"]["id"].as_i64().context("user id")?,
            token: body["accessToken"]
                .as_str()
                .context("access token")?
                .to_string(),
        })
    }

    /// `count` users named `<prefix>-<n>@load.bowchat`, 16 registrations at a time.
    pub async fn users(
        &self,
        prefix: &str,
        count: usize,
        password: &str,
    ) -> anyhow::Result<Vec<User>> {
        stream::iter(0..count)
            .map(|n| {
                let email = format!("{prefix}-{n}@load.bowchat");
                async move { self.user(&email, password).await }
            })
            .buffered(16)
            .try_collect()
            .await
    }

    /// Creates an auction open for `secs` seconds, price steps of 1.
    pub async fn auction(&self, seller: &User, secs: u64) -> anyhow::Result<i64> {
        let body = json!({"title": "load test", "currency": "USD", "startingPrice": 100, "increment": 1, "durationSecs": secs});
        self.post("/api/auctions", Some(&seller.token), body)
            .await?["id"]
            .as_i64()
            .context("auction id")
    }

    /// Every stored price step of `auction`, paging through the history.
    pub async fn all_steps(&self, auction: i64, token: &str) -> anyhow::Result<Vec<Value>> {
        let mut steps = Vec::new();
        let mut after = 0;
        loop {
            let page = self
                .get(
                    &format!("/api/auctions/{auction}/bids?after={after}&limit=200"),
                    token,
                )
                .await?;
            let items = page["items"].as_array().context("items")?.clone();
            let Some(last) = items.last() else {
                return Ok(steps);
            };
            after = last["seq"].as_i64().context("seq")?;
            steps.extend(items);
        }
    }

    /// A group room of `owner` with `members`.
    pub async fn room(&self, owner: &User, name: &str, members: &[i64]) -> anyhow::Result<i64> {
        self.post(
            "/api/rooms",
            Some(&owner.token),
            json!({"name": name, "members": members}),
        )
        .await?["id"]
            .as_i64()
            .context("room id")
    }

    /// The `process_resident_memory_bytes` the server exports, when it does.
    pub async fn server_rss(&self) -> Option<f64> {
        self.server_gauge("process_resident_memory_bytes").await
    }

    /// The value of the unlabelled series `name` in the server's /metrics.
    pub async fn server_gauge(&self, name: &str) -> Option<f64> {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let prefix = format!("{name} ");
        text.lines()
            .find(|l| l.starts_with(&prefix))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }
}
