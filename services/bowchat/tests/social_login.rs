//! Social login against the real OpenID Connect provider that
//! `scripts/testenv up oidc` runs: the whole authorization-code flow over
//! HTTP, driven like a browser (cookie jar, manual redirects, the provider's
//! login form), and every way it can go wrong.

mod support;

use bowchat_testenv::TestEnv;
use reqwest::header::{ACCEPT, LOCATION};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use support::Server;
use url::Url;

struct Provider {
    issuer: String,
    client_id: String,
    secret: String,
}

fn provider() -> Provider {
    Provider {
        issuer: TestEnv::require("BOWCHAT_TEST_OIDC_ISSUER", "oidc"),
        client_id: TestEnv::require("BOWCHAT_TEST_OIDC_CLIENT_ID", "oidc"),
        secret: TestEnv::require("BOWCHAT_TEST_OIDC_CLIENT_SECRET", "oidc"),
    }
}

fn account(n: &str) -> (String, String, String) {
    (
        TestEnv::require(&format!("BOWCHAT_TEST_OIDC_USER{n}"), "oidc"),
        TestEnv::require(&format!("BOWCHAT_TEST_OIDC_PASSWORD{n}"), "oidc"),
        TestEnv::require(&format!("BOWCHAT_TEST_OIDC_EMAIL{n}"), "oidc"),
    )
}

/// A server whose provider `test` is the real OIDC provider (its registered
/// redirect path is `/api/auth/oauth/test/callback`) configured as `kind`, and
/// whose provider `down` points at a closed port.
fn server(dir: &std::path::Path, kind: &str) -> Server {
    let p = provider();
    let mut env: Vec<(String, String)> = vec![
        (
            "BOWCHAT_AUTH__SOCIAL__PROVIDERS__TEST__KIND".into(),
            kind.into(),
        ),
        (
            "BOWCHAT_AUTH__SOCIAL__PROVIDERS__TEST__DISPLAY_NAME".into(),
            "Test IdP".into(),
        ),
        (
            "BOWCHAT_AUTH__SOCIAL__PROVIDERS__TEST__CLIENT_ID".into(),
            p.client_id,
        ),
        (
            "BOWCHAT_AUTH__SOCIAL__PROVIDERS__TEST__CLIENT_SECRET".into(),
            p.secret,
        ),
        (
            "BOWCHAT_AUTH__SOCIAL__PROVIDERS__DOWN__KIND".into(),
            "oidc".into(),
        ),
        (
            "BOWCHAT_AUTH__SOCIAL__PROVIDERS__DOWN__ISSUER".into(),
            "http://127.0.0.1:9".into(),
        ),
        (
            "BOWCHAT_AUTH__SOCIAL__PROVIDERS__DOWN__CLIENT_ID".into(),
            "nobody".into(),
        ),
    ];
    if kind == "oidc" {
        env.push((
            "BOWCHAT_AUTH__SOCIAL__PROVIDERS__TEST__ISSUER".into(),
            p.issuer,
        ));
    } else {
        // The same provider used as a plain OAuth2 server: token + userinfo, no id_token checks.
        for (key, path) in [
            ("AUTHORIZE_URL", "/auth"),
            ("TOKEN_URL", "/token"),
            ("USERINFO_URL", "/me"),
        ] {
            env.push((
                format!("BOWCHAT_AUTH__SOCIAL__PROVIDERS__TEST__{key}"),
                format!("{}{path}", p.issuer),
            ));
        }
        env.push((
            "BOWCHAT_AUTH__SOCIAL__PROVIDERS__TEST__SCOPES".into(),
            "[openid,email,profile]".into(),
        ));
    }
    let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Server::start(dir, &refs)
}

/// One browser: its own cookie jar, redirects followed by hand so each hop can be checked.
struct Browser {
    http: Client,
}

enum AtProvider {
    Approve,
    Deny,
}

impl Browser {
    fn new() -> Self {
        let http = Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self { http }
    }

    /// GET as a page navigation; returns (status, Location or body).
    async fn get(&self, url: &str) -> (StatusCode, String) {
        let response = self
            .http
            .get(url)
            .header(ACCEPT, "text/html")
            .send()
            .await
            .expect("GET");
        let status = response.status();
        match response.headers().get(LOCATION) {
            Some(location) => (status, absolute(url, location.to_str().unwrap())),
            None => (status, response.text().await.unwrap_or_default()),
        }
    }

    /// From the app's start URL through the provider's login form back to our
    /// callback; returns the callback URL (not yet visited). `tamper` may
    /// rewrite the authorization request on its way to the provider.
    async fn through_provider(
        &self,
        server: &Server,
        start: &str,
        (login, password): (&str, &str),
        choice: AtProvider,
        tamper: impl FnOnce(Url) -> Url,
    ) -> String {
        let (status, authorize) = self.get(&server.url(start)).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "start: {authorize}");
        let mut url = tamper(Url::parse(&authorize).unwrap()).to_string();
        let callback = server.url("/api/auth/oauth/test/callback");
        for _ in 0..20 {
            if url.starts_with(&callback) {
                return url;
            }
            let (status, next) = self.get(&url).await;
            if status.is_redirection() {
                url = next;
                continue;
            }
            assert_eq!(status, StatusCode::OK, "at {url}: {next}");
            assert!(
                next.contains("name=\"password\""),
                "expected the login form at {url}: {next}"
            );
            let response = match choice {
                AtProvider::Approve => {
                    self.http
                        .post(format!("{url}/login"))
                        .form(&[("login", login), ("password", password)])
                        .send()
                        .await
                }
                AtProvider::Deny => self.http.post(format!("{url}/abort")).send().await,
            }
            .expect("POST interaction");
            assert!(
                response.status().is_redirection(),
                "interaction answered {}",
                response.status()
            );
            url = absolute(&url, response.headers()[LOCATION].to_str().unwrap());
        }
        panic!("never came back to {callback}; last at {url}");
    }

    /// Visits our callback as a browser would; returns where it sends the browser.
    async fn callback(&self, url: &str) -> String {
        let (status, location) = self.get(url).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "callback: {location}");
        location
    }

    async fn login(&self, server: &Server, who: (&str, &str)) -> String {
        let callback = self
            .through_provider(
                server,
                "/api/auth/oauth/test/start",
                who,
                AtProvider::Approve,
                |u| u,
            )
            .await;
        self.callback(&callback).await
    }
}

fn absolute(base: &str, location: &str) -> String {
    Url::parse(base)
        .unwrap()
        .join(location)
        .unwrap()
        .to_string()
}

fn query(url: &str, key: &str) -> Option<String> {
    Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

async fn exchange(server: &Server, location: &str) -> (u16, Value) {
    let code =
        query(location, "login_code").unwrap_or_else(|| panic!("no login_code in {location}"));
    server
        .post("/api/auth/oauth/exchange", None, json!({"code": code}))
        .await
}

/// An API client (no HTML) hitting the callback gets problem+json.
async fn api_callback_error(url: &str, cookie_state: Option<&str>) -> (u16, Value) {
    let mut request = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(url);
    if let Some(state) = cookie_state {
        request = request.header("cookie", format!("bowchat_oauth_state={state}"));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn first_login_creates_the_account_and_later_logins_find_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), "oidc");
    let (login, password, email) = account("");

    let (status, providers) = server.get("/api/auth/providers", None).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = providers
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["down", "test"]);
    assert_eq!(providers[1]["displayName"], "Test IdP");
    assert_eq!(providers[1]["startUrl"], "/api/auth/oauth/test/start");

    let browser = Browser::new();
    let location = browser.login(&server, (&login, &password)).await;
    assert!(
        location.starts_with(&server.url("/?login_code=")),
        "{location}"
    );
    let (status, session) = exchange(&server, &location).await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["newAccount"], true);
    assert_eq!(session["tokenType"], "Bearer");
    assert_eq!(session["user"]["email"], email);
    let token = session["accessToken"].as_str().unwrap();
    let (status, me) = server.get("/api/me", Some(token)).await;
    assert_eq!((status, me["email"].as_str()), (200, Some(email.as_str())));
    // The refresh token is a normal one.
    let (status, refreshed) = server
        .post(
            "/api/auth/refresh",
            None,
            json!({"refreshToken": session["refreshToken"]}),
        )
        .await;
    assert_eq!(status, 200, "{refreshed}");

    // A login code works once.
    let (status, again) = exchange(&server, &location).await;
    assert_eq!(
        (status, again["code"].as_str()),
        (401, Some("OAUTH_LOGIN_CODE_INVALID"))
    );

    // Second login, new browser: same account, not a new one.
    let location = Browser::new().login(&server, (&login, &password)).await;
    let (status, second) = exchange(&server, &location).await;
    assert_eq!(status, 200);
    assert_eq!(second["newAccount"], false);
    assert_eq!(second["user"]["id"], session["user"]["id"]);
}

#[tokio::test]
async fn state_nonce_and_code_errors_are_clear_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), "oidc");
    let (login, password, _) = account("");
    let who = (login.as_str(), password.as_str());

    // State mismatch: the login started in one browser, the callback arrives in another.
    let victim = Browser::new();
    let callback = victim
        .through_provider(
            &server,
            "/api/auth/oauth/test/start",
            who,
            AtProvider::Approve,
            |u| u,
        )
        .await;
    let other = Browser::new();
    let location = other.callback(&callback).await;
    assert_eq!(
        query(&location, "login_error").as_deref(),
        Some("OAUTH_STATE_MISMATCH")
    );
    let (status, problem) = api_callback_error(&callback, Some("forged")).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("OAUTH_STATE_MISMATCH"))
    );

    // Nonce mismatch: the authorization request's nonce was swapped on its way.
    let browser = Browser::new();
    let callback = browser
        .through_provider(
            &server,
            "/api/auth/oauth/test/start",
            who,
            AtProvider::Approve,
            |mut url| {
                let pairs: Vec<(String, String)> = url
                    .query_pairs()
                    .map(|(k, v)| {
                        let v = if k == "nonce" {
                            "swapped-nonce".to_string()
                        } else {
                            v.into_owned()
                        };
                        (k.into_owned(), v)
                    })
                    .collect();
                url.query_pairs_mut().clear().extend_pairs(pairs);
                url
            },
        )
        .await;
    let location = browser.callback(&callback).await;
    assert_eq!(
        query(&location, "login_error").as_deref(),
        Some("OAUTH_NONCE_MISMATCH")
    );

    // Replaying a finished callback: the state was used up.
    let browser = Browser::new();
    let callback = browser
        .through_provider(
            &server,
            "/api/auth/oauth/test/start",
            who,
            AtProvider::Approve,
            |u| u,
        )
        .await;
    let state = query(&callback, "state").unwrap();
    let first = browser.callback(&callback).await;
    assert!(query(&first, "login_code").is_some(), "{first}");
    let (status, problem) = api_callback_error(&callback, Some(&state)).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("OAUTH_STATE_UNKNOWN"))
    );

    // A reused authorization code under a fresh, valid state: the provider refuses it.
    let (status, authorize) = browser.get(&server.url("/api/auth/oauth/test/start")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let fresh_state = query(&authorize, "state").unwrap();
    let used_code = query(&callback, "code").unwrap();
    let replay = format!(
        "{}?code={used_code}&state={fresh_state}",
        server.url("/api/auth/oauth/test/callback")
    );
    let location = browser.callback(&replay).await;
    assert_eq!(
        query(&location, "login_error").as_deref(),
        Some("OAUTH_CODE_REJECTED")
    );

    // Only the one successful login above created an account.
    let (status, session) = exchange(&server, &first).await;
    assert_eq!((status, session["newAccount"].as_bool()), (200, Some(true)));
    assert_eq!(
        session["user"]["id"], 1,
        "no account was created by the failed logins"
    );
}

#[tokio::test]
async fn denied_consent_and_an_unreachable_provider_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), "oidc");
    let (login, password, _) = account("");

    let browser = Browser::new();
    let callback = browser
        .through_provider(
            &server,
            "/api/auth/oauth/test/start",
            (&login, &password),
            AtProvider::Deny,
            |u| u,
        )
        .await;
    assert_eq!(query(&callback, "error").as_deref(), Some("access_denied"));
    let location = browser.callback(&callback).await;
    assert_eq!(
        query(&location, "login_error").as_deref(),
        Some("OAUTH_DENIED")
    );

    let (status, location) = browser.get(&server.url("/api/auth/oauth/down/start")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        query(&location, "login_error").as_deref(),
        Some("OAUTH_PROVIDER_UNAVAILABLE")
    );
    let (status, problem) = server.get("/api/auth/oauth/down/start", None).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (502, Some("OAUTH_PROVIDER_UNAVAILABLE"))
    );
    let (status, problem) = server.get("/api/auth/oauth/nope/start", None).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (404, Some("OAUTH_UNKNOWN_PROVIDER"))
    );

    // Nothing was created: the first real login makes account 1.
    let location = Browser::new().login(&server, (&login, &password)).await;
    let (_, session) = exchange(&server, &location).await;
    assert_eq!(
        (
            session["newAccount"].as_bool(),
            session["user"]["id"].as_i64()
        ),
        (Some(true), Some(1))
    );
}

#[tokio::test]
async fn an_existing_email_is_linked_only_when_the_user_proves_both() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), "oidc");
    let (login, password, email) = account("2");
    let (status, local) = server
        .post(
            "/api/auth/register",
            None,
            json!({"email": email, "password": "correct horse battery", "displayName": "Bob"}),
        )
        .await;
    assert_eq!(status, 201, "{local}");

    // The provider says the same email: no silent takeover.
    let location = Browser::new().login(&server, (&login, &password)).await;
    assert_eq!(
        query(&location, "login_error").as_deref(),
        Some("OAUTH_EMAIL_IN_USE")
    );

    // Signed in locally, the user links the provider through a browser login.
    let token = local["accessToken"].as_str().unwrap();
    let (status, link) = server
        .post("/api/auth/oauth/test/link", Some(token), json!({}))
        .await;
    assert_eq!(status, 200, "{link}");
    let start = link["startUrl"].as_str().unwrap();
    let browser = Browser::new();
    let callback = browser
        .through_provider(
            &server,
            start,
            (&login, &password),
            AtProvider::Approve,
            |u| u,
        )
        .await;
    let location = browser.callback(&callback).await;
    assert_eq!(
        query(&location, "linked").as_deref(),
        Some("test"),
        "{location}"
    );
    // The link ticket was single-use.
    let (status, problem) = server.get(start, None).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (401, Some("OAUTH_LINK_TICKET_INVALID"))
    );
    let (status, _) = server
        .post("/api/auth/oauth/test/link", None, json!({}))
        .await;
    assert_eq!(status, 401);

    // Now the social login reaches the local account.
    let location = Browser::new().login(&server, (&login, &password)).await;
    let (status, session) = exchange(&server, &location).await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["user"]["id"], local["user"]["id"]);
    assert_eq!(session["newAccount"], false);
}

#[tokio::test]
async fn a_plain_oauth2_provider_maps_userinfo() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), "oauth2");
    let (login, password, email) = account("");
    let location = Browser::new().login(&server, (&login, &password)).await;
    let (status, session) = exchange(&server, &location).await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["user"]["email"], email);
    assert_eq!(session["newAccount"], true);
}
