//! Connection settings of the real servers `scripts/testenv up` started.
//!
//! The script writes `KEY=value` lines to an env file (default
//! `/tmp/bowchat-testenv/env`, or the path in `BOWCHAT_TESTENV`). Tests that need
//! a real server read it here; a missing server is a test failure with a message
//! that says how to start it, never a silent skip.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why the settings could not be had.
#[derive(Debug, thiserror::Error)]
pub enum TestEnvError {
    #[error("cannot read {path}: {source}; start the servers with `scripts/testenv up`")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{key} is not in {path}; start it with `scripts/testenv up {component}`")]
    Missing {
        key: String,
        path: PathBuf,
        component: String,
    },
}

/// The settings of one `scripts/testenv up`.
#[derive(Debug, Clone)]
pub struct TestEnv {
    path: PathBuf,
    values: BTreeMap<String, String>,
}

impl TestEnv {
    /// The env file's path: `$BOWCHAT_TESTENV`, else the script's default.
    pub fn path() -> PathBuf {
        std::env::var_os("BOWCHAT_TESTENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp/bowchat-testenv/env"))
    }

    /// Reads the env file at [`TestEnv::path`].
    pub fn load() -> Result<Self, TestEnvError> {
        Self::load_from(&Self::path())
    }

    /// Reads an env file: `KEY=value` lines, `#` comments and blank lines ignored.
    pub fn load_from(path: &Path) -> Result<Self, TestEnvError> {
        let text = std::fs::read_to_string(path).map_err(|source| TestEnvError::Unreadable {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self {
            path: path.to_owned(),
            values: parse(&text),
        })
    }

    /// The value of `key`; `component` names the testenv component that sets it,
    /// for the error message.
    pub fn get(&self, key: &str, component: &str) -> Result<&str, TestEnvError> {
        self.values
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| TestEnvError::Missing {
                key: key.to_owned(),
                path: self.path.clone(),
                component: component.to_owned(),
            })
    }

    /// Like [`TestEnv::get`] for tests: loads the file and panics with the
    /// error's message when the server is not there.
    pub fn require(key: &str, component: &str) -> String {
        match Self::load().and_then(|env| env.get(key, component).map(str::to_owned)) {
            Ok(value) => value,
            Err(err) => panic!("{err}"),
        }
    }
}

fn parse(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_and_skips_comments() {
        let values = parse("# c\n\nA=1\n B = x=y \nnot a pair\n");
        assert_eq!(values.get("A").map(String::as_str), Some("1"));
        assert_eq!(values.get("B").map(String::as_str), Some("x=y"));
        assert_eq!(values.len(), 2);
    }

    #[test]
    fn missing_key_names_the_component() {
        let env = TestEnv {
            path: PathBuf::from("/x/env"),
            values: BTreeMap::new(),
        };
        let err = env.get("BOWCHAT_TEST_PG_URL", "postgres").unwrap_err();
        assert!(err.to_string().contains("scripts/testenv up postgres"));
    }
}
