//! The auth service: registration, password login, refresh-token rotation with
//! reuse detection, logout and access-token verification.
//!
//! Refresh tokens form families: a login starts one, every refresh rotates the
//! presented token into a new one of the same family. Presenting a rotated
//! token again means two parties hold the chain (one of them stole it), so the
//! whole family is revoked and both must log in again, except inside a short
//! grace window after the rotation: two tabs refreshing with the same token
//! at once both get the same successor (sealed in the rotated record, see
//! `tokens::seal_successor`), so neither is logged out.
//!
//! An access token names its family (`sid`). Ending a family (logout, reuse)
//! puts it on the deny list (`revocation`), so its access tokens stop working
//! at their next request or frame. Logins and registrations pass the
//! `throttle` first. A blocked user (`moderation`) gets no session: login,
//! refresh and social sign-in answer `UserBlocked`, and the deny list
//! refuses the tokens issued before the block.
//!
//! Access tokens are signed with Ed25519 keys from the key ring (`keys`):
//! every process loads the stored keys, opens their sealed private keys with
//! the key-encryption key, and re-reads them with the revocations, so a key
//! added by another process (a rotation) is known everywhere before it signs.

use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use bowchat_model::{now_millis, Millis, UserId};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::keys::{Kek, KeyRing, KeyTimes, SigningKey, StoredSigningKey};
use crate::password::{hash_password, verify_password, PasswordPolicy};
use crate::ports::{AuthRepoError, AuthRepository, RefreshRecord, User};
use crate::revocation::Revocations;
use crate::throttle::Throttle;
use crate::tokens::{
    decode_access, encode_access, hash_refresh_token, new_refresh_token, seal_successor,
    unseal_successor, AccessClaims, TokenConfig,
};
use crate::AuthError;

/// RFC 5321 limit on a forward path, minus the angle brackets.
const MAX_EMAIL_CHARS: usize = 254;
const MAX_DISPLAY_NAME_CHARS: usize = 64;
/// Our refresh tokens are 43 characters; anything much longer is not one and
/// is rejected before hashing.
const MAX_REFRESH_TOKEN_LEN: usize = 256;

/// What a client may see of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicUser {
    pub id: UserId,
    pub email: String,
    pub display_name: String,
}

impl From<&User> for PublicUser {
    fn from(u: &User) -> Self {
        Self {
            id: u.id,
            email: u.email.clone(),
            display_name: u.display_name.clone(),
        }
    }
}

/// The answer to register, login and refresh (OAuth2 token response shape, camelCase).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub access_token: String,
    /// Always "Bearer".
    pub token_type: String,
    /// Lifetime of the access token in seconds.
    pub expires_in: u64,
    pub refresh_token: String,
    pub user: PublicUser,
}

/// How access-token signing keys are protected and rotated.
#[derive(Debug, Clone)]
pub struct KeyOptions {
    /// Seals every private signing key at rest; every process sharing the
    /// store needs the same one.
    pub kek: Kek,
    /// A new key signs only once it is this old (ms), so that every process
    /// and every JWKS client has loaded it by then. Keep it above the key
    /// poll interval (`auth.revocation_poll_ms`) and JWKS cache time.
    pub activation_ms: u64,
    /// Rotate automatically once the newest key is this old (seconds);
    /// 0: only when asked (`bowchat admin keys rotate`).
    pub rotate_after_secs: u64,
}

impl KeyOptions {
    /// Defaults around `kek`: activation after 10 s, rotation every 30 days.
    pub fn new(kek: Kek) -> Self {
        Self {
            kek,
            activation_ms: 10_000,
            rotate_after_secs: 30 * 24 * 3600,
        }
    }
}

/// How long a process may keep signing with a key after its successor became
/// active (it learns of the successor at its next key poll): the margin
/// before the old key retires.
const RETIRE_MARGIN_MS: Millis = 60_000;

pub struct AuthService {
    repo: Arc<dyn AuthRepository>,
    config: TokenConfig,
    policy: PasswordPolicy,
    key_options: KeyOptions,
    /// The signing keys in use; replaced whole by `sync_keys`.
    ring: RwLock<Arc<KeyRing>>,
    /// Hash of a random password under the current policy; logins for unknown
    /// emails verify against it so they take as long as real ones.
    dummy_hash: String,
    /// Bounds concurrent argon2 runs: each takes `memory_kib` and a blocking
    /// thread, so a login flood must queue instead of exhausting memory.
    hash_slots: Arc<Semaphore>,
    /// Login and registration attempts (per account, per IP).
    throttle: Throttle,
    /// Sessions ended before their access tokens expired.
    revocations: Revocations,
}

impl AuthService {
    /// Loads the signing keys from the repository (creating the first one
    /// on a fresh store, so restarts keep issued tokens valid) and opens them
    /// with `keys.kek`: a KEK that does not open them fails here with
    /// `SigningKeys(WrongKek)`.
    pub async fn start(
        repo: Arc<dyn AuthRepository>,
        config: TokenConfig,
        policy: PasswordPolicy,
        keys: KeyOptions,
    ) -> Result<AuthService, AuthError> {
        // Fails early on impossible argon2 parameters.
        policy.hasher()?;
        let slots = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .max(2);
        let hash_slots = Arc::new(Semaphore::new(slots));
        let dummy_secret = new_refresh_token();
        let dummy_hash = run_blocking(&hash_slots, {
            let policy = policy.clone();
            move || hash_password(&policy, &dummy_secret)
        })
        .await??;
        let service = AuthService {
            repo,
            config,
            policy,
            key_options: keys,
            ring: RwLock::new(Arc::new(KeyRing::default())),
            dummy_hash,
            hash_slots,
            throttle: Throttle::default(),
            revocations: Revocations::default(),
        };
        service.sync_keys().await?;
        // Sessions another process ended recently are denied from the start.
        service.sync_revocations().await?;
        Ok(service)
    }

    /// When keys start signing and retire under this configuration.
    pub fn key_times(&self) -> KeyTimes {
        key_times(&self.key_options, self.token_lifetime_ms())
    }

    fn ring(&self) -> Arc<KeyRing> {
        // A poisoned lock only means a panic between two whole-Arc swaps.
        self.ring
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Reads the stored signing keys into the key ring: creates the first
    /// key on an empty store, rotates when the newest key is older than
    /// `rotate_after_secs` (once for all processes: the store adds a key
    /// only if no other process added one meanwhile), opens keys not seen
    /// before, and deletes retired ones. Called at start and with every
    /// revocation poll.
    pub async fn sync_keys(&self) -> Result<(), AuthError> {
        let now = now_millis();
        let kek = &self.key_options.kek;
        let mut stored = self.repo.signing_keys().await?;
        let rotate_after_ms = secs_to_ms(self.key_options.rotate_after_secs);
        let due = match stored.last() {
            None => Some(Millis::MIN),
            Some(newest)
                if rotate_after_ms > 0
                    && newest.created_at.saturating_add(rotate_after_ms) <= now =>
            {
                Some(now.saturating_sub(rotate_after_ms).saturating_add(1))
            }
            Some(_) => None,
        };
        if let Some(unless_since) = due {
            // Never add a key next to keys this KEK cannot open: it would
            // split the processes into two camps.
            for key in &stored {
                SigningKey::open(key, kek)?;
            }
            let candidate = SigningKey::generate(now)?.seal(kek)?;
            if self.repo.add_signing_key(&candidate, unless_since).await? {
                tracing::info!(kid = %candidate.kid, first = stored.is_empty(), "created an access-token signing key");
            }
            stored = self.repo.signing_keys().await?;
        }
        let current = self.ring();
        let mut opened = Vec::with_capacity(stored.len());
        for key in &stored {
            let known = current
                .keys()
                .iter()
                .find(|k| k.kid() == key.kid && k.public_key() == key.public_key.as_slice());
            opened.push(match known {
                Some(k) => k.clone(),
                None => SigningKey::open(key, kek)?,
            });
        }
        let ring = KeyRing::new(opened);
        let times = self.key_times();
        let retired = ring.retired(now, &times);
        let ring = if retired.is_empty() {
            ring
        } else {
            self.repo.delete_signing_keys(&retired).await?;
            tracing::info!(kids = ?retired, "deleted retired access-token signing keys");
            KeyRing::new(
                ring.keys()
                    .iter()
                    .filter(|k| !retired.iter().any(|r| r == k.kid()))
                    .cloned()
                    .collect(),
            )
        };
        *self
            .ring
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(ring);
        Ok(())
    }

    /// The public keys that verify access tokens now, for
    /// `GET /.well-known/jwks.json`.
    pub fn jwks(&self) -> jsonwebtoken::jwk::JwkSet {
        self.ring().jwks(now_millis(), &self.key_times())
    }

    /// The `kid` new access tokens are signed with now.
    pub fn signing_kid(&self) -> Option<String> {
        self.ring()
            .signing(now_millis(), &self.key_times())
            .map(|k| k.kid().to_string())
    }

    /// Replaces the default throttle (local counters, default rules).
    pub fn with_throttle(mut self, throttle: Throttle) -> Self {
        self.throttle = throttle;
        self
    }

    pub fn config(&self) -> &TokenConfig {
        &self.config
    }

    /// Creates an account with a password and opens a session for it.
    /// `display_name` defaults to the local part of the email.
    pub async fn register(
        &self,
        email: &str,
        password: &str,
        display_name: Option<&str>,
    ) -> Result<Session, AuthError> {
        self.register_from(email, password, display_name, None)
            .await
    }

    /// [`Self::register`] for a client at `client`: registrations per IP
    /// are throttled.
    pub async fn register_from(
        &self,
        email: &str,
        password: &str,
        display_name: Option<&str>,
        client: Option<IpAddr>,
    ) -> Result<Session, AuthError> {
        self.throttle.register(client).await?;
        let email = normalize_email(email)?;
        let display_name = match display_name {
            Some(name) => normalize_display_name(name)?,
            None => default_display_name(&email),
        };
        self.policy.check(password)?;
        let hash = self.hash(password).await?;
        let user = match self
            .repo
            .create_user(&email, &display_name, Some(&hash), now_millis())
            .await
        {
            Ok(user) => user,
            Err(AuthRepoError::Conflict(_)) => return Err(AuthError::EmailTaken),
            Err(e) => return Err(e.into()),
        };
        tracing::info!(user = user.id, "registered");
        self.open_session(&user).await
    }

    /// Checks email and password and opens a session. Whether the email exists
    /// is not revealed: every failure is `InvalidCredentials` after one argon2
    /// verification.
    pub async fn login(&self, email: &str, password: &str) -> Result<Session, AuthError> {
        self.login_from(email, password, None).await
    }

    /// [`Self::login`] for a client at `client`: attempts are throttled per
    /// account and per IP, counted before the password is checked.
    pub async fn login_from(
        &self,
        email: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<Session, AuthError> {
        // Malformed input says nothing about which accounts exist, so it may
        // fail fast; the length cap keeps argon2 input bounded.
        let Ok(email) = normalize_email(email) else {
            self.throttle.login("", client).await?;
            return Err(AuthError::InvalidCredentials);
        };
        self.throttle.login(&email, client).await?;
        if password.chars().count() > self.policy.max_len {
            return Err(AuthError::InvalidCredentials);
        }
        let user = self.repo.user_by_email(&email).await?;
        let stored = user.as_ref().and_then(|u| u.password_hash.clone());
        let matches = {
            let password = password.to_string();
            let has_hash = stored.is_some();
            let hash = stored.unwrap_or_else(|| self.dummy_hash.clone());
            let ok =
                run_blocking(&self.hash_slots, move || verify_password(&password, &hash)).await?;
            ok && has_hash
        };
        match user {
            Some(user) if matches => {
                self.throttle.login_succeeded(&email, client).await;
                // Only after the password matched: a guesser learns nothing.
                if user.blocked_at.is_some() {
                    return Err(AuthError::UserBlocked);
                }
                self.open_session(&user).await
            }
            _ => Err(AuthError::InvalidCredentials),
        }
    }

    /// Exchanges a refresh token for a new session and a new refresh token of
    /// the same family; the presented token becomes rotated.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Session, AuthError> {
        if refresh_token.is_empty() || refresh_token.len() > MAX_REFRESH_TOKEN_LEN {
            return Err(AuthError::RefreshInvalid);
        }
        let hash = hash_refresh_token(refresh_token);
        let now = now_millis();
        let record = self
            .repo
            .refresh(&hash)
            .await?
            .ok_or(AuthError::RefreshInvalid)?;
        // Before the token's own state: a block revoked it too, and the
        // client must learn why it cannot continue.
        let user = self.repo.user(record.user_id).await?;
        if user.as_ref().is_some_and(|u| u.blocked_at.is_some()) {
            return Err(AuthError::UserBlocked);
        }
        if record.rotated_at.is_some() {
            if let Some(session) = self.successor_in_grace(refresh_token, &record, now).await? {
                return Ok(session);
            }
            return Err(self.reuse_detected(&record, now).await);
        }
        if record.revoked_at.is_some() {
            return Err(AuthError::RefreshInvalid);
        }
        if record.expires_at <= now {
            return Err(AuthError::RefreshExpired);
        }
        let Some(user) = user else {
            self.end_family(&record.family, now).await?;
            return Err(AuthError::RefreshInvalid);
        };
        let (token, next) = self.new_refresh(user.id, record.family.clone(), now);
        let sealed = seal_successor(refresh_token, &token);
        if !self.repo.rotate_refresh(&hash, &sealed, &next, now).await? {
            // Another request rotated or revoked it between our read and our
            // write: either way this use did not win, but a concurrent
            // rotation inside the grace window hands out the same successor.
            return match self.repo.refresh(&hash).await? {
                Some(current) if current.rotated_at.is_some() => {
                    match self
                        .successor_in_grace(refresh_token, &current, now)
                        .await?
                    {
                        Some(session) => Ok(session),
                        None => Err(self.reuse_detected(&current, now).await),
                    }
                }
                _ => Err(AuthError::RefreshInvalid),
            };
        }
        self.session(&user, token, &record.family)
    }

    /// The session a concurrent refresh with the same token already got,
    /// when `record` was rotated at most `refresh_reuse_grace_secs` ago and
    /// its successor is still the live token of a live family; `None`
    /// otherwise (the caller then treats the use as reuse).
    async fn successor_in_grace(
        &self,
        token: &str,
        record: &RefreshRecord,
        now: Millis,
    ) -> Result<Option<Session>, AuthError> {
        let grace_ms = i64::try_from(self.config.refresh_reuse_grace_secs.saturating_mul(1000))
            .unwrap_or(i64::MAX);
        let (Some(rotated_at), Some(sealed)) = (record.rotated_at, record.successor.as_deref())
        else {
            return Ok(None);
        };
        if grace_ms == 0 || record.revoked_at.is_some() || now.saturating_sub(rotated_at) > grace_ms
        {
            return Ok(None);
        }
        let Some(successor) = unseal_successor(token, sealed) else {
            return Ok(None);
        };
        let Some(next) = self.repo.refresh(&hash_refresh_token(&successor)).await? else {
            return Ok(None);
        };
        let live = next.family == record.family
            && next.rotated_at.is_none()
            && next.revoked_at.is_none()
            && next.expires_at > now;
        if !live {
            return Ok(None);
        }
        let Some(user) = self.repo.user(record.user_id).await? else {
            return Ok(None);
        };
        tracing::debug!(user = user.id, family = %record.family, "concurrent refresh inside the grace window");
        self.session(&user, successor, &record.family).map(Some)
    }

    /// Revokes the family of `refresh_token` (every device of that login
    /// chain). Idempotent; an unknown token is not an error, so logout never
    /// tells a caller whether a token existed.
    pub async fn logout(&self, refresh_token: &str) -> Result<(), AuthError> {
        if refresh_token.is_empty() || refresh_token.len() > MAX_REFRESH_TOKEN_LEN {
            return Ok(());
        }
        let hash = hash_refresh_token(refresh_token);
        if let Some(record) = self.repo.refresh(&hash).await? {
            self.end_family(&record.family, now_millis()).await?;
        }
        Ok(())
    }

    /// Verifies an access token (signature, `kid`, `alg`, `iss`, `aud`,
    /// `exp`) and that its session has not ended. Synchronous and cheap:
    /// call it on every request.
    pub fn verify_access(&self, token: &str) -> Result<AccessClaims, AuthError> {
        let ring = self.ring();
        let claims = decode_access(
            token,
            ring.verifying(now_millis(), &self.key_times()),
            &self.config,
        )?;
        match self.token_ended(claims.sub, claims.issued_ms(), &claims.sid) {
            Some(e) => Err(e),
            None => Ok(claims),
        }
    }

    /// Why a verified token of `user` issued at `issued_ms` in session `sid`
    /// no longer works, if it does not: its user was blocked after it was
    /// issued (`UserBlocked`), or its session (a refresh family) was logged
    /// out or revoked (`TokenRevoked`). Checked again on every WebSocket frame.
    pub fn token_ended(&self, user: UserId, issued_ms: Millis, sid: &str) -> Option<AuthError> {
        let now = now_millis();
        if self.revocations.blocked(user, issued_ms, now) {
            Some(AuthError::UserBlocked)
        } else if self.revocations.contains(sid, now) {
            Some(AuthError::TokenRevoked)
        } else {
            None
        }
    }

    /// Whether session `sid` (a refresh family) has been ended by a logout
    /// or a revocation.
    pub fn session_revoked(&self, sid: &str) -> bool {
        self.revocations.contains(sid, now_millis())
    }

    /// `UserBlocked` when `id` is blocked (social sign-in asks before it
    /// hands out a login code).
    pub async fn ensure_not_blocked(&self, id: UserId) -> Result<(), AuthError> {
        match self.repo.user(id).await? {
            Some(user) if user.blocked_at.is_some() => Err(AuthError::UserBlocked),
            _ => Ok(()),
        }
    }

    /// Reads the sessions other processes ended since the last call into
    /// the deny list; returns how many revocations were read.
    pub async fn sync_revocations(&self) -> Result<usize, AuthError> {
        let started = now_millis();
        let since = self
            .revocations
            .poll_from(started - self.token_lifetime_ms());
        let ended = self.repo.revoked_families(since).await?;
        let blocks = self.repo.blocks_since(since).await?;
        for (family, at) in &ended {
            self.revocations
                .insert(family, at.saturating_add(self.token_lifetime_ms()), started);
        }
        for (user, at) in &blocks {
            self.revocations.block(
                *user,
                *at,
                at.saturating_add(self.token_lifetime_ms()),
                started,
            );
        }
        self.revocations.polled_at(started);
        Ok(ended.len() + blocks.len())
    }

    /// How long after its issue an access token can still verify.
    fn token_lifetime_ms(&self) -> Millis {
        let secs = self
            .config
            .access_ttl_secs
            .saturating_add(self.config.leeway_secs);
        i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    /// Revokes a family's refresh tokens and denies its access tokens.
    async fn end_family(&self, family: &str, now: Millis) -> Result<(), AuthError> {
        self.repo.revoke_family(family, now).await?;
        self.revocations
            .insert(family, now.saturating_add(self.token_lifetime_ms()), now);
        Ok(())
    }

    /// Opens a session for a user another login method has identified (a
    /// social login); `TokenInvalid` when the account no longer exists.
    pub async fn open_session_for(&self, id: UserId) -> Result<Session, AuthError> {
        let user = self.repo.user(id).await?.ok_or(AuthError::TokenInvalid)?;
        self.open_session(&user).await
    }

    pub async fn user(&self, id: UserId) -> Result<Option<PublicUser>, AuthError> {
        Ok(self.repo.user(id).await?.as_ref().map(PublicUser::from))
    }

    /// The existing users among `ids` (unknown ids are skipped).
    pub async fn users(&self, ids: &[UserId]) -> Result<Vec<PublicUser>, AuthError> {
        Ok(self
            .repo
            .users(ids)
            .await?
            .iter()
            .map(PublicUser::from)
            .collect())
    }

    async fn reuse_detected(&self, record: &RefreshRecord, now: Millis) -> AuthError {
        tracing::warn!(user = record.user_id, family = %record.family, "refresh token reuse; revoking the family");
        match self.end_family(&record.family, now).await {
            Ok(()) => AuthError::RefreshReused,
            Err(e) => e,
        }
    }

    async fn hash(&self, password: &str) -> Result<String, AuthError> {
        let policy = self.policy.clone();
        let password = password.to_string();
        run_blocking(&self.hash_slots, move || hash_password(&policy, &password)).await?
    }

    /// Starts a new refresh family for `user` and returns the session.
    async fn open_session(&self, user: &User) -> Result<Session, AuthError> {
        if user.blocked_at.is_some() {
            return Err(AuthError::UserBlocked);
        }
        let family = uuid::Uuid::new_v4().to_string();
        let (token, record) = self.new_refresh(user.id, family.clone(), now_millis());
        self.repo.insert_refresh(&record).await?;
        // A block committed while this login ran may have revoked the
        // user's families before this one existed: look again, now that
        // it does, and end it if so.
        if self
            .repo
            .user(user.id)
            .await?
            .is_some_and(|u| u.blocked_at.is_some())
        {
            self.end_family(&family, now_millis()).await?;
            return Err(AuthError::UserBlocked);
        }
        self.session(user, token, &family)
    }

    fn new_refresh(&self, user: UserId, family: String, now: Millis) -> (String, RefreshRecord) {
        let token = new_refresh_token();
        let ttl_ms =
            i64::try_from(self.config.refresh_ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let record = RefreshRecord {
            token_hash: hash_refresh_token(&token),
            family,
            user_id: user,
            created_at: now,
            expires_at: now.saturating_add(ttl_ms),
            rotated_at: None,
            revoked_at: None,
            successor: None,
        };
        (token, record)
    }

    fn session(&self, user: &User, refresh_token: String, sid: &str) -> Result<Session, AuthError> {
        let now = now_millis();
        let mut claims =
            AccessClaims::new(user.id, &user.display_name, &self.config, now / 1000, sid);
        claims.iat_ms = Some(now);
        let ring = self.ring();
        let key = ring
            .signing(now, &self.key_times())
            .ok_or_else(|| AuthError::Unavailable("no access-token signing key".to_string()))?;
        Ok(Session {
            access_token: encode_access(&claims, key)?,
            token_type: "Bearer".to_string(),
            expires_in: self.config.access_ttl_secs,
            refresh_token,
            user: PublicUser::from(user),
        })
    }
}

fn secs_to_ms(secs: u64) -> Millis {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

fn key_times(options: &KeyOptions, token_lifetime_ms: Millis) -> KeyTimes {
    KeyTimes {
        activation_ms: i64::try_from(options.activation_ms).unwrap_or(i64::MAX),
        retire_after_ms: token_lifetime_ms.saturating_add(RETIRE_MARGIN_MS),
    }
}

/// Adds a new signing key at once (`bowchat admin keys rotate`): it signs
/// from `activation_ms` later, on every process, and the older keys keep
/// verifying until their tokens have expired. Refused when `kek` does not
/// open the stored keys (a key sealed under another KEK would split the
/// processes). Returns the new key as stored.
pub async fn rotate_signing_key(
    repo: &dyn AuthRepository,
    kek: &Kek,
) -> Result<StoredSigningKey, AuthError> {
    let mut newest = Millis::MIN;
    for key in repo.signing_keys().await? {
        newest = newest.max(SigningKey::open(&key, kek)?.created_at());
    }
    // The ring orders keys by creation time: a key made in the same
    // millisecond as the newest could sort before it and never sign.
    let created_at = now_millis().max(newest.saturating_add(1));
    let key = SigningKey::generate(created_at)?.seal(kek)?;
    repo.add_signing_key(&key, Millis::MAX).await?;
    tracing::info!(kid = %key.kid, "rotated the access-token signing key");
    Ok(key)
}

/// Runs CPU-heavy work on the blocking pool once a slot is free.
async fn run_blocking<T: Send + 'static>(
    slots: &Arc<Semaphore>,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AuthError> {
    let _permit = slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| AuthError::Unavailable("password hashing is shut down".to_string()))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| AuthError::Unavailable(format!("password hashing failed: {e}")))
}

/// Trims and lowercases; accepts exactly one '@' with non-empty parts, no
/// whitespace or control characters, at most 254 characters. Deliverability
/// is not checked here.
pub fn normalize_email(email: &str) -> Result<String, AuthError> {
    let email = email.trim().to_lowercase();
    if email.is_empty() || email.chars().count() > MAX_EMAIL_CHARS {
        return Err(AuthError::InvalidEmail);
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(AuthError::InvalidEmail);
    }
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@') =>
        {
            Ok(email)
        }
        _ => Err(AuthError::InvalidEmail),
    }
}

/// Trims; 1 to 64 characters, no control characters.
pub fn normalize_display_name(name: &str) -> Result<String, AuthError> {
    let name = name.trim();
    let len = name.chars().count();
    if len == 0 || len > MAX_DISPLAY_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(AuthError::InvalidDisplayName);
    }
    Ok(name.to_string())
}

/// The local part of a normalised email, cut to the display-name limit.
pub fn default_display_name(email: &str) -> String {
    let local = email.split('@').next().unwrap_or(email);
    local.chars().take(MAX_DISPLAY_NAME_CHARS).collect()
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "service_block_tests.rs"]
mod block_tests;
