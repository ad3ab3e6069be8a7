//! Provider settings as an operator writes them, and the presets that fill in
//! everything but the client credentials for Google, Kakao, Naver and GitHub.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::SocialError;

/// `[auth.social]`: every limit of the login flow, and the providers by id.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SocialConfig {
    /// How long a started login may take at the provider (state, PKCE verifier, nonce).
    pub state_ttl_secs: u64,
    /// How long the one-time code handed to the browser after a login stays valid.
    pub login_code_ttl_secs: u64,
    /// Timeout of each call to a provider (discovery, JWKS, token, userinfo).
    pub http_timeout_secs: u64,
    /// Where browsers land after the callback: `?login_code=`, `?login_error=` or `?linked=` is appended.
    pub ui_url: String,
    /// Base URL browsers use to reach this gateway; callbacks default to
    /// `{public_url}/api/auth/oauth/{id}/callback`. Empty: the listening address.
    pub public_url: String,
    pub providers: BTreeMap<String, ProviderConfig>,
}

impl Default for SocialConfig {
    fn default() -> Self {
        Self {
            state_ttl_secs: 600,
            login_code_ttl_secs: 60,
            http_timeout_secs: 10,
            ui_url: "/".into(),
            public_url: String::new(),
            providers: BTreeMap::new(),
        }
    }
}

/// One provider. With a `preset`, only `client_id`, `client_secret` and
/// (in production) `redirect_url` are needed; any field set here overrides the preset.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderConfig {
    pub preset: Option<Preset>,
    /// `oidc` (discovery, JWKS, id_token) or `oauth2` (token + userinfo).
    pub kind: Option<ProviderKind>,
    pub display_name: Option<String>,
    pub client_id: String,
    pub client_secret: String,
    pub redirect_url: Option<String>,
    /// OIDC: the issuer; discovery is `{issuer}/.well-known/openid-configuration`.
    pub issuer: Option<String>,
    /// Plain OAuth2 endpoints.
    pub authorize_url: Option<String>,
    pub token_url: Option<String>,
    pub userinfo_url: Option<String>,
    /// GitHub style: a list of `{email, primary, verified}` when userinfo has no email.
    pub emails_url: Option<String>,
    pub scopes: Option<Vec<String>>,
    /// `basic` (HTTP Basic) or `post` (credentials in the form body).
    pub token_auth: Option<TokenAuth>,
    /// Dotted paths into the userinfo JSON (or id_token claims).
    pub subject_field: Option<String>,
    pub email_field: Option<String>,
    pub name_fields: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    Google,
    Kakao,
    Naver,
    Github,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Oidc,
    Oauth2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenAuth {
    Basic,
    Post,
}

/// Everything a provider needs at run time, presets applied and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderSettings {
    pub id: String,
    pub display_name: String,
    pub client_id: String,
    pub client_secret: String,
    pub redirect_url: String,
    pub endpoints: Endpoints,
    pub scopes: Vec<String>,
    pub token_auth: TokenAuth,
    pub subject_field: String,
    pub email_field: String,
    pub name_fields: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoints {
    Oidc {
        issuer: String,
    },
    OAuth2 {
        authorize_url: String,
        token_url: String,
        userinfo_url: String,
        emails_url: Option<String>,
    },
}

fn owned(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The preset's defaults, as if the operator had written them.
fn preset_defaults(preset: Preset) -> ProviderConfig {
    match preset {
        Preset::Google => ProviderConfig {
            kind: Some(ProviderKind::Oidc),
            display_name: Some("Google".into()),
            issuer: Some("https://accounts.google.com".into()),
            scopes: Some(owned(&["openid", "email", "profile"])),
            ..ProviderConfig::default()
        },
        Preset::Kakao => ProviderConfig {
            kind: Some(ProviderKind::Oidc),
            display_name: Some("Kakao".into()),
            issuer: Some("https://kauth.kakao.com".into()),
            scopes: Some(owned(&["openid", "account_email", "profile_nickname"])),
            token_auth: Some(TokenAuth::Post),
            name_fields: Some(owned(&["nickname", "name"])),
            ..ProviderConfig::default()
        },
        Preset::Naver => ProviderConfig {
            kind: Some(ProviderKind::Oauth2),
            display_name: Some("Naver".into()),
            authorize_url: Some("https://nid.naver.com/oauth2.0/authorize".into()),
            token_url: Some("https://nid.naver.com/oauth2.0/token".into()),
            userinfo_url: Some("https://openapi.naver.com/v1/nid/me".into()),
            scopes: Some(Vec::new()),
            token_auth: Some(TokenAuth::Post),
            subject_field: Some("response.id".into()),
            email_field: Some("response.email".into()),
            name_fields: Some(owned(&["response.name", "response.nickname"])),
            ..ProviderConfig::default()
        },
        Preset::Github => ProviderConfig {
            kind: Some(ProviderKind::Oauth2),
            display_name: Some("GitHub".into()),
            authorize_url: Some("https://github.com/login/oauth/authorize".into()),
            token_url: Some("https://github.com/login/oauth/access_token".into()),
            userinfo_url: Some("https://api.github.com/user".into()),
            emails_url: Some("https://api.github.com/user/emails".into()),
            scopes: Some(owned(&["read:user", "user:email"])),
            token_auth: Some(TokenAuth::Post),
            subject_field: Some("id".into()),
            name_fields: Some(owned(&["name", "login"])),
            ..ProviderConfig::default()
        },
    }
}

impl ProviderConfig {
    /// Applies the preset and checks that the result is complete.
    /// `default_redirect` is used when no `redirect_url` is configured.
    pub fn resolve(
        &self,
        id: &str,
        default_redirect: &str,
    ) -> Result<ProviderSettings, SocialError> {
        let invalid = |what: &str| SocialError::Config(format!("provider {id}: {what}"));
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid("the id may hold only letters, digits, '-' and '_'"));
        }
        let base = self.preset.map(preset_defaults).unwrap_or_default();
        let pick = |mine: &Option<String>, theirs: &Option<String>| mine.clone().or(theirs.clone());
        if self.client_id.trim().is_empty() {
            return Err(invalid("client_id is required"));
        }
        let kind = self
            .kind
            .or(base.kind)
            .ok_or_else(|| invalid("kind (oidc or oauth2) or a preset is required"))?;
        let endpoints = match kind {
            ProviderKind::Oidc => Endpoints::Oidc {
                issuer: pick(&self.issuer, &base.issuer)
                    .ok_or_else(|| invalid("issuer is required for an OIDC provider"))?
                    .trim_end_matches('/')
                    .to_string(),
            },
            ProviderKind::Oauth2 => Endpoints::OAuth2 {
                authorize_url: pick(&self.authorize_url, &base.authorize_url)
                    .ok_or_else(|| invalid("authorize_url is required"))?,
                token_url: pick(&self.token_url, &base.token_url)
                    .ok_or_else(|| invalid("token_url is required"))?,
                userinfo_url: pick(&self.userinfo_url, &base.userinfo_url)
                    .ok_or_else(|| invalid("userinfo_url is required"))?,
                emails_url: pick(&self.emails_url, &base.emails_url),
            },
        };
        let redirect_url =
            pick(&self.redirect_url, &None).unwrap_or_else(|| default_redirect.to_string());
        for url in endpoint_urls(&endpoints)
            .into_iter()
            .chain([redirect_url.as_str()])
        {
            url::Url::parse(url).map_err(|e| invalid(&format!("{url} is not a URL: {e}")))?;
        }
        let scopes = self
            .scopes
            .clone()
            .or(base.scopes)
            .unwrap_or_else(|| match kind {
                ProviderKind::Oidc => owned(&["openid", "email", "profile"]),
                ProviderKind::Oauth2 => Vec::new(),
            });
        if kind == ProviderKind::Oidc && !scopes.iter().any(|s| s == "openid") {
            return Err(invalid("an OIDC provider needs the openid scope"));
        }
        Ok(ProviderSettings {
            id: id.to_string(),
            display_name: pick(&self.display_name, &base.display_name)
                .unwrap_or_else(|| id.to_string()),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            redirect_url,
            endpoints,
            scopes,
            token_auth: self
                .token_auth
                .or(base.token_auth)
                .unwrap_or(TokenAuth::Basic),
            subject_field: pick(&self.subject_field, &base.subject_field)
                .unwrap_or_else(|| "sub".into()),
            email_field: pick(&self.email_field, &base.email_field)
                .unwrap_or_else(|| "email".into()),
            name_fields: self
                .name_fields
                .clone()
                .or(base.name_fields)
                .unwrap_or_else(|| owned(&["name", "preferred_username", "nickname"])),
        })
    }
}

fn endpoint_urls(endpoints: &Endpoints) -> Vec<&str> {
    match endpoints {
        Endpoints::Oidc { issuer } => vec![issuer.as_str()],
        Endpoints::OAuth2 {
            authorize_url,
            token_url,
            userinfo_url,
            emails_url,
        } => {
            let mut urls = vec![
                authorize_url.as_str(),
                token_url.as_str(),
                userinfo_url.as_str(),
            ];
            urls.extend(emails_url.as_deref());
            urls
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_preset(preset: Preset) -> ProviderConfig {
        ProviderConfig {
            preset: Some(preset),
            client_id: "id".into(),
            client_secret: "secret".into(),
            redirect_url: Some("https://chat.example/api/auth/oauth/x/callback".into()),
            ..ProviderConfig::default()
        }
    }

    #[test]
    fn presets_need_only_credentials_and_redirect() {
        for preset in [Preset::Google, Preset::Kakao, Preset::Naver, Preset::Github] {
            let settings = with_preset(preset).resolve("p", "http://unused").unwrap();
            assert_eq!(
                settings.redirect_url,
                "https://chat.example/api/auth/oauth/x/callback"
            );
            assert!(!settings.display_name.is_empty());
        }
        let naver = with_preset(Preset::Naver).resolve("naver", "x").unwrap();
        assert_eq!(naver.subject_field, "response.id");
        assert_eq!(naver.token_auth, TokenAuth::Post);
        let google = with_preset(Preset::Google).resolve("google", "x").unwrap();
        assert!(matches!(google.endpoints, Endpoints::Oidc { .. }));
        assert_eq!(google.subject_field, "sub");
    }

    #[test]
    fn operator_values_override_the_preset() {
        let mut config = with_preset(Preset::Github);
        config.display_name = Some("GitHub Enterprise".into());
        config.userinfo_url = Some("https://ghe.example/api/v3/user".into());
        let settings = config.resolve("ghe", "x").unwrap();
        assert_eq!(settings.display_name, "GitHub Enterprise");
        match settings.endpoints {
            Endpoints::OAuth2 { userinfo_url, .. } => {
                assert_eq!(userinfo_url, "https://ghe.example/api/v3/user")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn incomplete_settings_are_refused_with_the_reason() {
        let cases = [
            (ProviderConfig::default(), "client_id"),
            (
                ProviderConfig {
                    client_id: "c".into(),
                    ..ProviderConfig::default()
                },
                "kind",
            ),
            (
                ProviderConfig {
                    client_id: "c".into(),
                    kind: Some(ProviderKind::Oidc),
                    ..ProviderConfig::default()
                },
                "issuer",
            ),
            (
                ProviderConfig {
                    client_id: "c".into(),
                    kind: Some(ProviderKind::Oidc),
                    issuer: Some("not a url".into()),
                    ..ProviderConfig::default()
                },
                "not a URL",
            ),
            (
                ProviderConfig {
                    client_id: "c".into(),
                    kind: Some(ProviderKind::Oidc),
                    issuer: Some("http://127.0.0.1:1".into()),
                    scopes: Some(vec!["email".into()]),
                    ..ProviderConfig::default()
                },
                "openid",
            ),
        ];
        for (config, reason) in cases {
            let err = config.resolve("p", "http://127.0.0.1/cb").unwrap_err();
            assert!(
                err.to_string().contains(reason),
                "{err} should mention {reason}"
            );
        }
        let bad_id = with_preset(Preset::Google).resolve("a/b", "x").unwrap_err();
        assert!(bad_id.to_string().contains("id may hold"));
    }

    #[test]
    fn redirect_defaults_to_the_given_callback() {
        let mut config = with_preset(Preset::Google);
        config.redirect_url = None;
        let settings = config
            .resolve(
                "google",
                "http://127.0.0.1:8080/api/auth/oauth/google/callback",
            )
            .unwrap();
        assert_eq!(
            settings.redirect_url,
            "http://127.0.0.1:8080/api/auth/oauth/google/callback"
        );
    }
}
