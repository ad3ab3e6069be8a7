//! Configuration: typed structs with defaults that work with no file at all,
//! overridden by a TOML file, then by `BOWCHAT_*` environment variables
//! (nested keys joined by `__`, e.g. `BOWCHAT_GATEWAY__MAX_FRAME_BYTES=32768`),
//! then by command-line flags.

use std::path::{Path, PathBuf};

use bowchat_gateway::GatewayConfig;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address of the HTTP/WebSocket listener.
    pub listen: String,
    /// Directory of the embedded database (`bowchat.db`).
    pub data_dir: PathBuf,
    /// This process's name on the bus; results are routed back to it. Random if unset.
    pub node_id: Option<String>,
    pub log: LogConfig,
    pub gateway: GatewayConfig,
    pub auth: AuthConfig,
    pub auction: RoleConfig,
    pub chat: RoleConfig,
    pub bus: BusConfig,
    pub sqlite: SqliteConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("data"),
            node_id: None,
            log: LogConfig::default(),
            gateway: GatewayConfig::default(),
            auth: AuthConfig::default(),
            auction: RoleConfig::default(),
            chat: RoleConfig::default(),
            bus: BusConfig::default(),
            sqlite: SqliteConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `json` (default) or `text`.
    pub format: String,
    /// A tracing filter such as `info` or `bowchat=debug,info`; `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: "json".into(),
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub issuer: String,
    pub audience: String,
    pub access_ttl_secs: u64,
    pub refresh_ttl_secs: u64,
    pub leeway_secs: u64,
    pub password_min_len: usize,
    pub password_max_len: usize,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    /// Social login providers and the flow's limits (`[auth.social]`).
    pub social: bowchat_social::SocialConfig,
}

impl Default for AuthConfig {
    fn default() -> Self {
        let tokens = bowchat_auth::TokenConfig::default();
        let policy = bowchat_auth::PasswordPolicy::default();
        Self {
            issuer: tokens.issuer,
            audience: tokens.audience,
            access_ttl_secs: tokens.access_ttl_secs,
            refresh_ttl_secs: tokens.refresh_ttl_secs,
            leeway_secs: tokens.leeway_secs,
            password_min_len: policy.min_len,
            password_max_len: policy.max_len,
            argon2_memory_kib: policy.memory_kib,
            argon2_iterations: policy.iterations,
            argon2_parallelism: policy.parallelism,
            social: bowchat_social::SocialConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoleConfig {
    /// Most commands stored in one transaction.
    pub max_batch: usize,
    /// Retries of a failing commit before the batch is answered UNAVAILABLE.
    pub commit_retries: u32,
}

impl Default for RoleConfig {
    fn default() -> Self {
        Self {
            max_batch: 512,
            commit_retries: 3,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusConfig {
    /// Partitions per topic of the in-process bus.
    pub partitions: u32,
    /// Records queued per consumer group before publishers wait.
    pub queue_capacity: usize,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            partitions: 8,
            queue_capacity: 65_536,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqliteConfig {
    pub readers: u32,
    /// fsync on every commit (survives power loss); false survives process crashes only.
    pub synchronous_full: bool,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        Self {
            readers: 4,
            synchronous_full: true,
        }
    }
}

impl Config {
    /// A copy safe to print: provider client secrets are masked.
    pub fn redacted(&self) -> Config {
        let mut config = self.clone();
        for provider in config.auth.social.providers.values_mut() {
            if !provider.client_secret.is_empty() {
                provider.client_secret = "<redacted>".into();
            }
        }
        config
    }

    /// Defaults, then `file` (if given, it must exist), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(Box::new(figment::Error::from(format!(
                    "configuration file {} does not exist",
                    file.display()
                ))));
            }
            figment = figment.merge(Toml::file(file));
        }
        figment
            .merge(Env::prefixed("BOWCHAT_").split("__"))
            .extract()
            .map_err(Box::new)
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("bowchat.db")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_file() {
        let config = Config::load(None).unwrap();
        assert_eq!(config.listen, "127.0.0.1:8080");
        assert_eq!(config.database_path(), PathBuf::from("data/bowchat.db"));
    }

    #[test]
    fn file_values_override_defaults_and_unknown_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bowchat.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9999\"\n[gateway]\nmax_frame_bytes = 2048\n",
        )
        .unwrap();
        let config = Config::load(Some(&path)).unwrap();
        assert_eq!(config.listen, "127.0.0.1:9999");
        assert_eq!(config.gateway.max_frame_bytes, 2048);
        std::fs::write(&path, "[gateway]\nmax_frame_byte = 2048\n").unwrap();
        assert!(Config::load(Some(&path)).is_err());
        assert!(Config::load(Some(&dir.path().join("missing.toml"))).is_err());
    }
}
