//! Turning what a provider says about a user (id_token claims or userinfo
//! JSON) into an identity: subject, verified email, display name.

use serde_json::Value;

use crate::config::ProviderSettings;
use crate::SocialError;

/// Who the provider says the user is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub subject: String,
    /// Present only when the provider vouches for it (or does not report verification).
    pub email: Option<String>,
    pub name: Option<String>,
}

/// Follows a dotted path (`response.id`) into a JSON object.
pub fn field<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, key| v.get(key))
}

/// A string or number at `path`, as text (GitHub ids are numbers).
fn text(value: &Value, path: &str) -> Option<String> {
    match field(value, path)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Reads the identity from `claims` with the provider's field mapping. An
/// email explicitly marked unverified (`email_verified: false`) is dropped.
pub fn identity_from(claims: &Value, settings: &ProviderSettings) -> Result<Identity, SocialError> {
    let subject = text(claims, &settings.subject_field).ok_or(SocialError::ProviderUnavailable)?;
    let verified = !matches!(claims.get("email_verified"), Some(Value::Bool(false)))
        && !matches!(claims.get("email_verified"), Some(Value::String(s)) if s == "false");
    let email = text(claims, &settings.email_field).filter(|_| verified);
    let name = settings
        .name_fields
        .iter()
        .find_map(|path| text(claims, path));
    Ok(Identity {
        subject,
        email,
        name,
    })
}

/// GitHub style email list: the primary verified address, else any verified one.
pub fn verified_email_from_list(list: &Value) -> Option<String> {
    let entries = list.as_array()?;
    let verified = |e: &&Value| e.get("verified").and_then(Value::as_bool) == Some(true);
    let primary = |e: &&Value| e.get("primary").and_then(Value::as_bool) == Some(true);
    entries
        .iter()
        .filter(verified)
        .find(primary)
        .or_else(|| entries.iter().find(verified))
        .and_then(|e| e.get("email")?.as_str())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Preset, ProviderConfig};
    use serde_json::json;

    fn settings(preset: Preset) -> ProviderSettings {
        ProviderConfig {
            preset: Some(preset),
            client_id: "c".into(),
            ..ProviderConfig::default()
        }
        .resolve("p", "http://127.0.0.1/cb")
        .unwrap()
    }

    #[test]
    fn naver_nests_the_profile_under_response() {
        let body = json!({"resultcode":"00","message":"success",
            "response":{"id":"abc123","email":"kim@example.test","name":"김민수","nickname":"minsu"}});
        let identity = identity_from(&body, &settings(Preset::Naver)).unwrap();
        assert_eq!(identity.subject, "abc123");
        assert_eq!(identity.email.as_deref(), Some("kim@example.test"));
        assert_eq!(identity.name.as_deref(), Some("김민수"));
    }

    #[test]
    fn github_ids_are_numbers_and_name_falls_back_to_login() {
        let body = json!({"id": 583231, "login": "octocat", "name": null, "email": null});
        let identity = identity_from(&body, &settings(Preset::Github)).unwrap();
        assert_eq!(identity.subject, "583231");
        assert_eq!(identity.email, None);
        assert_eq!(identity.name.as_deref(), Some("octocat"));
    }

    #[test]
    fn an_unverified_email_is_not_taken() {
        let claims = json!({"sub": "s", "email": "x@example.test", "email_verified": false});
        let identity = identity_from(&claims, &settings(Preset::Google)).unwrap();
        assert_eq!(identity.email, None);
        let claims = json!({"sub": "s", "email": "x@example.test", "email_verified": true});
        let identity = identity_from(&claims, &settings(Preset::Google)).unwrap();
        assert_eq!(identity.email.as_deref(), Some("x@example.test"));
    }

    #[test]
    fn a_missing_subject_is_an_error() {
        let claims = json!({"email": "x@example.test"});
        assert!(identity_from(&claims, &settings(Preset::Google)).is_err());
    }

    #[test]
    fn email_list_prefers_primary_verified() {
        let list = json!([
            {"email": "old@example.test", "primary": false, "verified": true},
            {"email": "unverified@example.test", "primary": true, "verified": false},
        ]);
        assert_eq!(
            verified_email_from_list(&list).as_deref(),
            Some("old@example.test")
        );
        let list = json!([
            {"email": "a@example.test", "primary": false, "verified": true},
            {"email": "main@example.test", "primary": true, "verified": true},
        ]);
        assert_eq!(
            verified_email_from_list(&list).as_deref(),
            Some("main@example.test")
        );
        assert_eq!(verified_email_from_list(&json!([])), None);
    }
}
