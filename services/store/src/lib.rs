//! Storage adapters. Embedded mode keeps everything in one SQLite file in WAL
//! mode: a single writer connection (SQLite allows one writer anyway, and one
//! connection lets each role group-commit a whole batch in one transaction) and
//! a pool of readers that never block it.

mod auction_repo;
mod auth_repo;
mod chat_repo;
pub mod chat_rows;
mod social_repo;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use auction_repo::SqliteAuctionRepository;
pub use auth_repo::SqliteAuthRepository;
pub use chat_repo::SqliteChatRepository;
pub use social_repo::SqliteSocialRepository;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open database {path}: {source}")]
    Open { path: String, source: sqlx::Error },
    #[error("cannot migrate database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Tuning of the SQLite file; defaults are safe for a crash (SIGKILL) at any moment.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    pub readers: u32,
    /// `synchronous=FULL` survives power loss; NORMAL only process crashes.
    pub synchronous_full: bool,
    pub busy_timeout: Duration,
    /// Page cache per connection, in KiB. The idempotency index grows with
    /// every bid; pages that fall out of the cache are read back with a syscall
    /// each.
    pub cache_kib: u32,
    /// Bytes of the file read through a memory map instead of read calls (0: off).
    pub mmap_bytes: u64,
    /// WAL pages that trigger a checkpoint. Bids rewrite the same index pages
    /// over and over; a longer WAL lets a checkpoint copy each page once.
    pub wal_autocheckpoint_pages: u32,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            readers: 4,
            synchronous_full: true,
            busy_timeout: Duration::from_secs(5),
            cache_kib: 65536,
            mmap_bytes: 256 << 20,
            wal_autocheckpoint_pages: 16384,
        }
    }
}

/// An open, migrated SQLite database.
#[derive(Clone)]
pub struct Db {
    pub(crate) writer: SqlitePool,
    pub(crate) reader: SqlitePool,
}

impl Db {
    /// Opens (creating if needed) the database file at `path` and applies migrations.
    pub async fn open(path: &Path, options: &SqliteOptions) -> Result<Db, StoreError> {
        let shown = path.display().to_string();
        let open_err = |source| StoreError::Open {
            path: shown.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| open_err(sqlx::Error::Io(e)))?;
        }
        let connect = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(open_err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(if options.synchronous_full {
                SqliteSynchronous::Full
            } else {
                SqliteSynchronous::Normal
            })
            .busy_timeout(options.busy_timeout)
            .foreign_keys(true)
            .pragma("cache_size", format!("-{}", options.cache_kib.max(64)))
            .pragma("mmap_size", options.mmap_bytes.to_string())
            // Statement journals (multi-row statements inside a transaction)
            // stay in memory instead of spilling to a temporary file.
            .pragma("temp_store", "MEMORY")
            .pragma(
                "wal_autocheckpoint",
                options.wal_autocheckpoint_pages.to_string(),
            );
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(connect.clone())
            .await
            .map_err(open_err)?;
        sqlx::migrate!("./migrations").run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(options.readers.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(connect.read_only(true))
            .await
            .map_err(open_err)?;
        Ok(Db { writer, reader })
    }

    /// True when a trivial read succeeds (for `/readyz`).
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.reader).await.is_ok()
    }

    /// Connections per pool as (pool, open, idle): `writer` (one connection)
    /// and `reader`. For the `bowchat_db_connections` gauge.
    pub fn pool_stats(&self) -> [(&'static str, u32, usize); 2] {
        [
            ("writer", self.writer.size(), self.writer.num_idle()),
            ("reader", self.reader.size(), self.reader.num_idle()),
        ]
    }

    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}
