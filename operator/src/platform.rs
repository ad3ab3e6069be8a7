//! The operator's client of the platform's REST API. It acts as a service
//! user whose e-mail and password come from a Secret: it logs in, keeps the
//! access token, and logs in again when the platform answers 401.

use std::time::Duration;

use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{json, Value};

/// Why a platform call failed.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("platform unreachable: {0}")]
    Transport(#[from] reqwest::Error),
    /// The platform refused the request (a problem+json answer).
    #[error("platform answered {status} {code}: {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
}

impl PlatformError {
    /// A refusal that retrying will not change (bad terms, forbidden).
    pub fn is_permanent(&self) -> bool {
        matches!(self, PlatformError::Refused { status, .. } if (400..500).contains(status) && *status != 401 && *status != 429 && *status != 408)
    }
}

/// Where the platform is and who the operator is there.
#[derive(Debug, Clone)]
pub struct PlatformConfig {
    /// e.g. `http://bowchat-gateway:8080`
    pub url: String,
    pub email: String,
    pub password: String,
}

/// The platform's view of an auction (the fields the operator mirrors).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuctionView {
    pub id: i64,
    pub phase: String,
    pub outcome: Option<String>,
    pub price: Option<i64>,
    pub leader_id: Option<i64>,
    pub winner_id: Option<i64>,
    pub bid_count: i64,
    pub ends_at: i64,
}

pub struct Platform {
    config: PlatformConfig,
    http: reqwest::Client,
    token: Mutex<Option<String>>,
}

impl Platform {
    pub fn new(config: PlatformConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .expect("an HTTP client without TLS settings builds");
        Self {
            config,
            http,
            token: Mutex::new(None),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.config.url.trim_end_matches('/'), path)
    }

    async fn login(&self) -> Result<String, PlatformError> {
        let body = json!({"email": self.config.email, "password": self.config.password});
        let response = self
            .http
            .post(self.url("/api/auth/login"))
            .json(&body)
            .send()
            .await?;
        let value = answer(response).await?;
        let token = value["accessToken"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        *self.token.lock() = Some(token.clone());
        Ok(token)
    }

    /// One authenticated call; a 401 logs in again and retries once.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, PlatformError> {
        for attempt in 0..2 {
            let cached = self.token.lock().clone();
            let token = match cached {
                Some(t) => t,
                None => self.login().await?,
            };
            let mut request = self
                .http
                .request(method.clone(), self.url(path))
                .bearer_auth(&token);
            if let Some(body) = body {
                request = request.json(body);
            }
            match answer(request.send().await?).await {
                Err(PlatformError::Refused { status: 401, .. }) if attempt == 0 => {
                    *self.token.lock() = None;
                }
                other => return other,
            }
        }
        unreachable!("the second attempt returns")
    }

    /// Creates the auction, or returns the one already created with `body.externalId`.
    pub async fn register(&self, body: &Value) -> Result<AuctionView, PlatformError> {
        let value = self
            .call(reqwest::Method::POST, "/api/auctions", Some(body))
            .await?;
        view(value)
    }

    pub async fn fetch(&self, id: i64) -> Result<AuctionView, PlatformError> {
        let value = self
            .call(reqwest::Method::GET, &format!("/api/auctions/{id}"), None)
            .await?;
        view(value)
    }

    pub async fn cancel(&self, id: i64) -> Result<(), PlatformError> {
        self.call(
            reqwest::Method::POST,
            &format!("/api/auctions/{id}/cancel"),
            Some(&json!({})),
        )
        .await
        .map(|_| ())
    }
}

async fn answer(response: reqwest::Response) -> Result<Value, PlatformError> {
    let status = response.status().as_u16();
    let text = response.text().await?;
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if (200..300).contains(&status) {
        return Ok(value);
    }
    Err(PlatformError::Refused {
        status,
        code: value["code"].as_str().unwrap_or("HTTP_ERROR").to_string(),
        message: value["detail"]
            .as_str()
            .or_else(|| value["title"].as_str())
            .unwrap_or(&text)
            .to_string(),
    })
}

fn view(value: Value) -> Result<AuctionView, PlatformError> {
    serde_json::from_value(value).map_err(|e| PlatformError::Refused {
        status: 200,
        code: "UNEXPECTED_BODY".into(),
        message: e.to_string(),
    })
}
