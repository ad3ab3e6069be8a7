//! Social login: OpenID Connect providers (discovery, JWKS, id_token with
//! nonce) and plain OAuth2 providers with a userinfo mapping, with presets for
//! Google, Kakao, Naver and GitHub. Authorization code + PKCE + state.
//!
//! [`SocialLogin`] runs the flow and issues the same sessions as a password
//! login (through `bowchat_auth::AuthService`); storage sits behind
//! [`ports::SocialRepository`]. Every failure is a [`SocialError`] with a
//! stable `code()`.

pub mod config;
mod error;
pub mod identity;
mod login;
pub mod ports;
mod provider;

pub use config::{Preset, ProviderConfig, ProviderKind, SocialConfig, TokenAuth};
pub use error::SocialError;
pub use login::{Callback, Finished, ProviderSummary, SocialLogin, SocialSession, Started};
