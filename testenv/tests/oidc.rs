//! Smoke test of the `oidc` component: discovery, then the authorization-code
//! flow with PKCE through the provider's own login page, to tokens and userinfo.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bowchat_testenv::TestEnv;
use reqwest::header::LOCATION;
use reqwest::redirect::Policy;
use reqwest::{Client, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;

fn setting(key: &str) -> String {
    TestEnv::require(key, "oidc")
}

fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a JWT has three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn discovery_and_code_flow_give_tokens() {
    let issuer = setting("BOWCHAT_TEST_OIDC_ISSUER");
    let client_id = setting("BOWCHAT_TEST_OIDC_CLIENT_ID");
    let secret = setting("BOWCHAT_TEST_OIDC_CLIENT_SECRET");
    let redirect = format!(
        "http://127.0.0.1:1/{}",
        setting("BOWCHAT_TEST_OIDC_REDIRECT_PATH").trim_start_matches('/')
    );
    let http = Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .unwrap();

    let discovery: Value = http
        .get(format!("{issuer}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], issuer.as_str());
    let jwks: Value = http
        .get(discovery["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!jwks["keys"].as_array().unwrap().is_empty());

    let verifier = "smoke-test-verifier-0123456789-abcdefghijklmnopqrstuvwxyz";
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let mut authorize = Url::parse(discovery["authorization_endpoint"].as_str().unwrap()).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client_id)
        .append_pair("redirect_uri", &redirect)
        .append_pair("scope", "openid email profile")
        .append_pair("state", "smoke-state")
        .append_pair("nonce", "smoke-nonce")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");

    // Follow redirects by hand until the provider hands the code to our redirect URI.
    let mut url = authorize.to_string();
    let mut logged_in = false;
    let callback = loop {
        if url.starts_with(&redirect) {
            break Url::parse(&url).unwrap();
        }
        let response = http.get(&url).send().await.unwrap();
        if let Some(next) = response.headers().get(LOCATION) {
            url = Url::parse(&url)
                .unwrap()
                .join(next.to_str().unwrap())
                .unwrap()
                .to_string();
            continue;
        }
        assert_eq!(response.status(), StatusCode::OK);
        let page = response.text().await.unwrap();
        assert!(
            page.contains("name=\"password\"") && !logged_in,
            "expected the login form once at {url}: {page}"
        );
        logged_in = true;
        let response = http
            .post(format!("{url}/login"))
            .form(&[
                ("login", setting("BOWCHAT_TEST_OIDC_USER")),
                ("password", setting("BOWCHAT_TEST_OIDC_PASSWORD")),
            ])
            .send()
            .await
            .unwrap();
        assert!(response.status().is_redirection(), "{}", response.status());
        url = Url::parse(&url)
            .unwrap()
            .join(response.headers()[LOCATION].to_str().unwrap())
            .unwrap()
            .to_string();
    };
    let param = |k: &str| {
        callback
            .query_pairs()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(param("state").as_deref(), Some("smoke-state"));
    let code = param("code").expect("an authorization code");

    let token = |code: String| {
        http.post(discovery["token_endpoint"].as_str().unwrap())
            .basic_auth(&client_id, Some(&secret))
            .form(&[
                ("grant_type", "authorization_code".to_string()),
                ("code", code),
                ("redirect_uri", redirect.clone()),
                ("code_verifier", verifier.to_string()),
            ])
            .send()
    };
    let response = token(code.clone()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.unwrap();
    let id = claims_of(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["iss"], issuer.as_str());
    assert_eq!(id["aud"], client_id.as_str());
    assert_eq!(id["nonce"], "smoke-nonce");

    let info: Value = http
        .get(discovery["userinfo_endpoint"].as_str().unwrap())
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["sub"], id["sub"]);
    assert_eq!(info["email"], setting("BOWCHAT_TEST_OIDC_EMAIL").as_str());

    // A code is good for one exchange only.
    let again = token(code).await.unwrap();
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    let error: Value = again.json().await.unwrap();
    assert_eq!(error["error"], "invalid_grant");
}
