//! Where the key-encryption key (KEK) of the signing keys comes from:
//! `auth.key_encryption_key` when set, else the file `<data_dir>/signing-kek`,
//! created with mode 0600 on first start. The file keeps embedded mode
//! working with no configuration at all; a cluster on several hosts must set
//! the same key everywhere (the Helm chart takes it from a Secret).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use bowchat_auth::Kek;

use crate::config::{Config, StoreKind};

/// Name of the generated KEK file under `data_dir`.
pub const KEK_FILE: &str = "signing-kek";

/// Where the KEK in use came from, for the startup log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KekSource {
    Config,
    File(PathBuf),
    Created(PathBuf),
}

/// The KEK of `config`: the configured one, or the one in `data_dir`.
pub fn load(config: &Config) -> anyhow::Result<(Kek, KekSource)> {
    if let Some(text) = &config.auth.key_encryption_key {
        let kek = Kek::from_base64(text).context("auth.key_encryption_key")?;
        return Ok((kek, KekSource::Config));
    }
    let (kek, source) = from_file(&config.data_dir)?;
    if config.store.kind == StoreKind::Postgres {
        tracing::warn!(
            path = %config.data_dir.join(KEK_FILE).display(),
            "auth.key_encryption_key is not set: the signing keys are sealed with a key from \
             data_dir; every process sharing the database needs that same key (set \
             auth.key_encryption_key, e.g. from a Kubernetes Secret)"
        );
    }
    Ok((kek, source))
}

/// Reads `<dir>/signing-kek`, or creates it (0600) with a fresh key. Several
/// processes starting at once on one `dir` end up with the same key: the
/// file is written under a temporary name and linked into place, which
/// fails for all but the first.
fn from_file(dir: &Path) -> anyhow::Result<(Kek, KekSource)> {
    let path = dir.join(KEK_FILE);
    if path.exists() {
        return Ok((read(&path)?, KekSource::File(path)));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let kek = Kek::generate()?;
    let temp = dir.join(format!(".{KEK_FILE}.{}", uuid::Uuid::new_v4().simple()));
    let written = write_private(&temp, kek.to_base64().as_bytes());
    let linked = written.and_then(|()| std::fs::hard_link(&temp, &path));
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => Ok((kek, KekSource::Created(path))),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok((read(&path)?, KekSource::File(path)))
        }
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

fn read(path: &Path) -> anyhow::Result<Kek> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777), "the key-encryption key file is readable by others; chmod 600 it");
        }
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Kek::from_base64(&text).with_context(|| format!("the key-encryption key in {}", path.display()))
}

/// Creates `path` (which must not exist) readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> Config {
        Config {
            data_dir: dir.to_path_buf(),
            ..Config::default()
        }
    }

    #[test]
    fn without_a_configured_kek_one_is_created_once_with_mode_600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let (first, source) = load(&config(&data)).expect("create");
        let path = data.join(KEK_FILE);
        assert_eq!(source, KekSource::Created(path.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (again, source) = load(&config(&data)).expect("read");
        assert_eq!(source, KekSource::File(path));
        assert_eq!(again.to_base64(), first.to_base64());
        // No temporary files left behind.
        assert_eq!(std::fs::read_dir(&data).expect("dir").count(), 1);
    }

    #[test]
    fn processes_starting_together_share_one_kek_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| load(&config(dir.path())).expect("load").0.to_base64()))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("join"))
                .collect()
        });
        assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
    }

    #[test]
    fn a_configured_kek_wins_and_a_bad_one_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kek = Kek::generate().expect("kek");
        let mut with_kek = config(dir.path());
        with_kek.auth.key_encryption_key = Some(kek.to_base64());
        let (loaded, source) = load(&with_kek).expect("load");
        assert_eq!(
            (loaded.to_base64(), source),
            (kek.to_base64(), KekSource::Config)
        );
        assert!(!dir.path().join(KEK_FILE).exists());
        with_kek.auth.key_encryption_key = Some("c2hvcnQ=".into());
        assert!(load(&with_kek).is_err());
        assert!(with_kek.validate().is_err());
    }
}
