//! Talking to one provider: discovery and JWKS (cached), the authorization
//! URL, the code exchange (the `oauth2` crate, PKCE), id_token checks and userinfo.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse,
    BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, ExtraTokenFields,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope,
    StandardRevocableToken, StandardTokenResponse, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::RwLock;

use crate::config::{Endpoints, ProviderSettings, TokenAuth};
use crate::identity::{identity_from, verified_email_from_list, Identity};
use crate::SocialError;

/// Largest provider answer we read (discovery, JWKS, userinfo).
const MAX_BODY_BYTES: usize = 1 << 20;
/// Discovery and keys are refetched after this, and at once when an
/// id_token names a key we do not know (the provider rotated its keys).
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// Clock skew allowed on id_token `exp`/`iat`.
const ID_TOKEN_LEEWAY_SECS: u64 = 60;
const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The token response with the one extra field OIDC adds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct IdTokenField {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}
impl ExtraTokenFields for IdTokenField {}
type TokenAnswer = StandardTokenResponse<IdTokenField, BasicTokenType>;
/// An `oauth2` client with the authorization and token endpoints set.
type CodeClient = oauth2::Client<
    BasicErrorResponse,
    TokenAnswer,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    oauth2::EndpointSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

#[derive(Debug, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: Option<String>,
    jwks_uri: String,
}

struct OidcMetadata {
    discovery: Discovery,
    keys: JwkSet,
    fetched: Instant,
}

pub struct Provider {
    settings: ProviderSettings,
    http: reqwest::Client,
    oidc: RwLock<Option<Arc<OidcMetadata>>>,
}

impl Provider {
    pub fn new(settings: ProviderSettings, timeout: Duration) -> Result<Self, SocialError> {
        // No redirects: a token or userinfo endpoint that redirects is
        // misconfigured, and following it could leak the code or token.
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("bowchat-social-login")
            .build()
            .map_err(|e| SocialError::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            settings,
            http,
            oidc: RwLock::new(None),
        })
    }

    pub fn settings(&self) -> &ProviderSettings {
        &self.settings
    }

    /// The URL to send the browser to. For OIDC this may fetch discovery.
    pub async fn authorize_url(
        &self,
        state: &str,
        challenge: PkceCodeChallenge,
        nonce: &str,
    ) -> Result<String, SocialError> {
        let (auth_url, token_url) = self.endpoints().await?;
        let client = self.client(&auth_url, &token_url)?;
        let mut request = client
            .authorize_url(|| CsrfToken::new(state.to_string()))
            .add_scopes(self.settings.scopes.iter().cloned().map(Scope::new))
            .set_pkce_challenge(challenge);
        if matches!(self.settings.endpoints, Endpoints::Oidc { .. }) {
            request = request.add_extra_param("nonce", nonce);
        }
        Ok(request.url().0.to_string())
    }

    /// Exchanges the code and finds out who logged in.
    pub async fn identity(
        &self,
        code: &str,
        verifier: &str,
        nonce: &str,
    ) -> Result<Identity, SocialError> {
        let (auth_url, token_url) = self.endpoints().await?;
        let client = self.client(&auth_url, &token_url)?;
        let answer: TokenAnswer = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_string()))
            .request_async(&self.http)
            .await
            .map_err(|e| self.token_error(e))?;
        let access_token = answer.access_token().secret().clone();
        match &self.settings.endpoints {
            Endpoints::Oidc { .. } => {
                let id_token = answer
                    .extra_fields()
                    .id_token
                    .as_deref()
                    .ok_or(SocialError::IdTokenInvalid)?;
                let claims = self.verify_id_token(id_token, nonce).await?;
                let mut identity = identity_from(&claims, &self.settings)?;
                if identity.email.is_none() {
                    identity = self.complete_from_userinfo(identity, &access_token).await?;
                }
                Ok(identity)
            }
            Endpoints::OAuth2 {
                userinfo_url,
                emails_url,
                ..
            } => {
                let info = self.get_json(userinfo_url, &access_token).await?;
                let mut identity = identity_from(&info, &self.settings)?;
                if let (None, Some(url)) = (&identity.email, emails_url) {
                    let list = self.get_json(url, &access_token).await?;
                    identity.email = verified_email_from_list(&list);
                }
                Ok(identity)
            }
        }
    }

    fn client(&self, auth_url: &str, token_url: &str) -> Result<CodeClient, SocialError> {
        let bad = |e: oauth2::url::ParseError| SocialError::Config(format!("provider URL: {e}"));
        Ok(
            oauth2::Client::new(ClientId::new(self.settings.client_id.clone()))
                .set_client_secret(ClientSecret::new(self.settings.client_secret.clone()))
                .set_auth_uri(AuthUrl::new(auth_url.to_string()).map_err(bad)?)
                .set_token_uri(TokenUrl::new(token_url.to_string()).map_err(bad)?)
                .set_redirect_uri(
                    RedirectUrl::new(self.settings.redirect_url.clone()).map_err(bad)?,
                )
                .set_auth_type(match self.settings.token_auth {
                    TokenAuth::Basic => AuthType::BasicAuth,
                    TokenAuth::Post => AuthType::RequestBody,
                }),
        )
    }

    async fn endpoints(&self) -> Result<(String, String), SocialError> {
        match &self.settings.endpoints {
            Endpoints::Oidc { .. } => {
                let meta = self.metadata(false).await?;
                Ok((
                    meta.discovery.authorization_endpoint.clone(),
                    meta.discovery.token_endpoint.clone(),
                ))
            }
            Endpoints::OAuth2 {
                authorize_url,
                token_url,
                ..
            } => Ok((authorize_url.clone(), token_url.clone())),
        }
    }

    async fn metadata(&self, refetch: bool) -> Result<Arc<OidcMetadata>, SocialError> {
        if !refetch {
            if let Some(meta) = self.oidc.read().await.as_ref() {
                if meta.fetched.elapsed() < METADATA_TTL {
                    return Ok(meta.clone());
                }
            }
        }
        let Endpoints::Oidc { issuer } = &self.settings.endpoints else {
            return Err(SocialError::Config("not an OIDC provider".into()));
        };
        let url = format!("{issuer}/.well-known/openid-configuration");
        let discovery: Discovery = serde_json::from_value(self.get_json(&url, "").await?)
            .map_err(|e| self.unavailable(&format!("discovery document: {e}")))?;
        if discovery.issuer.trim_end_matches('/') != issuer {
            return Err(self.unavailable(&format!(
                "discovery names issuer {} instead of {issuer}",
                discovery.issuer
            )));
        }
        let keys: JwkSet = serde_json::from_value(self.get_json(&discovery.jwks_uri, "").await?)
            .map_err(|e| self.unavailable(&format!("JWKS: {e}")))?;
        let meta = Arc::new(OidcMetadata {
            discovery,
            keys,
            fetched: Instant::now(),
        });
        *self.oidc.write().await = Some(meta.clone());
        Ok(meta)
    }

    async fn verify_id_token(&self, token: &str, nonce: &str) -> Result<Value, SocialError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| SocialError::IdTokenInvalid)?;
        if !ASYMMETRIC.contains(&header.alg) {
            return Err(SocialError::IdTokenInvalid);
        }
        let mut meta = self.metadata(false).await?;
        let find = |keys: &JwkSet| match &header.kid {
            Some(kid) => keys.find(kid).cloned(),
            None if keys.keys.len() == 1 => keys.keys.first().cloned(),
            None => None,
        };
        let jwk = match find(&meta.keys) {
            Some(jwk) => jwk,
            None => {
                meta = self.metadata(true).await?;
                find(&meta.keys).ok_or(SocialError::IdTokenInvalid)?
            }
        };
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| SocialError::IdTokenInvalid)?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[meta.discovery.issuer.as_str()]);
        validation.set_audience(&[self.settings.client_id.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = ID_TOKEN_LEEWAY_SECS;
        let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map_err(|e| {
                tracing::warn!(provider = %self.settings.id, error = %e, "id_token refused");
                SocialError::IdTokenInvalid
            })?
            .claims;
        // With several audiences the token must have been issued to us.
        if let Some(Value::Array(aud)) = claims.get("aud") {
            if aud.len() > 1
                && claims.get("azp").and_then(Value::as_str) != Some(&self.settings.client_id)
            {
                return Err(SocialError::IdTokenInvalid);
            }
        }
        if claims.get("nonce").and_then(Value::as_str) != Some(nonce) {
            return Err(SocialError::NonceMismatch);
        }
        Ok(claims)
    }

    /// Fills the email (and name) from the userinfo endpoint when the
    /// id_token carried none; the subject must match.
    async fn complete_from_userinfo(
        &self,
        identity: Identity,
        access_token: &str,
    ) -> Result<Identity, SocialError> {
        let meta = self.metadata(false).await?;
        let Some(url) = meta.discovery.userinfo_endpoint.clone() else {
            return Ok(identity);
        };
        let info = self.get_json(&url, access_token).await?;
        let more = identity_from(&info, &self.settings)?;
        if more.subject != identity.subject {
            return Err(SocialError::IdTokenInvalid);
        }
        Ok(Identity {
            subject: identity.subject,
            email: more.email,
            name: identity.name.or(more.name),
        })
    }

    /// GET a JSON document, with a bearer token when one is given.
    async fn get_json(&self, url: &str, bearer: &str) -> Result<Value, SocialError> {
        let mut request = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json");
        if !bearer.is_empty() {
            request = request.bearer_auth(bearer);
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| self.unavailable(&format!("GET {url}: {e}")))?;
        if !response.status().is_success() {
            return Err(self.unavailable(&format!("GET {url}: status {}", response.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.unavailable(&format!("GET {url}: {e}")))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(
                    self.unavailable(&format!("GET {url}: answer over {MAX_BODY_BYTES} bytes"))
                );
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| self.unavailable(&format!("GET {url}: {e}")))
    }

    fn token_error<RE: std::error::Error + 'static>(
        &self,
        error: RequestTokenError<RE, BasicErrorResponse>,
    ) -> SocialError {
        match error {
            RequestTokenError::ServerResponse(answer) => {
                tracing::warn!(provider = %self.settings.id, error = ?answer, "token endpoint refused the code");
                match answer.error() {
                    BasicErrorResponseType::InvalidGrant => SocialError::CodeRejected,
                    other => SocialError::ProviderError(other.to_string()),
                }
            }
            other => self.unavailable(&format!("token endpoint: {other}")),
        }
    }

    fn unavailable(&self, detail: &str) -> SocialError {
        tracing::warn!(provider = %self.settings.id, detail, "login provider unavailable");
        SocialError::ProviderUnavailable
    }
}
