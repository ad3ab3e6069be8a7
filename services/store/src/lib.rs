//! Storage adapters. Embedded mode keeps everything in one SQLite file in WAL
//! mode: a single writer connection (SQLite allows one writer anyway, and one
//! connection lets each role group-commit a whole batch in one transaction) and
//! a pool of readers that never block it. The answers to bid requests live in
//! a second file beside it (see `results_store`).

mod auction_repo;
mod auth_repo;
mod chat_repo;
pub mod chat_rows;
pub mod moderation_repo;
pub mod outbox;
mod padded_rows;
mod results_store;
mod social_repo;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use auction_repo::SqliteAuctionRepository;
pub use auth_repo::SqliteAuthRepository;
pub use chat_repo::SqliteChatRepository;
pub use outbox::SqliteOutbox;
pub use results_store::results_path;
pub use social_repo::SqliteSocialRepository;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open database {path}: {source}")]
    Open { path: String, source: sqlx::Error },
    #[error("cannot migrate database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(
        "{path} belongs to another database: move it away (it holds that database's bid answers)"
    )]
    ForeignResults { path: String },
    #[error("the database has {rows} rows whose references point nowhere after migrating")]
    ForeignKeys { rows: usize },
}

enum MigrationFailure {
    Db(sqlx::Error),
    Migrate(sqlx::migrate::MigrateError),
    ForeignKeys(usize),
}

/// Applies the migrations on a connection of its own with foreign keys off:
/// changing a constraint in SQLite means rebuilding the table (create, copy,
/// drop, rename), which SQLite's documented procedure does with foreign keys
/// off, and sqlx runs each migration inside a transaction, where the pragma
/// cannot be changed. Every reference is checked once they are applied.
async fn migrate(connect: &SqliteConnectOptions) -> Result<(), MigrationFailure> {
    use sqlx::{ConnectOptions, Connection};
    let mut conn = connect
        .clone()
        .foreign_keys(false)
        .connect()
        .await
        .map_err(MigrationFailure::Db)?;
    sqlx::migrate!("./migrations")
        .run_direct(&mut conn)
        .await
        .map_err(MigrationFailure::Migrate)?;
    let dangling = sqlx::query("PRAGMA foreign_key_check")
        .fetch_all(&mut conn)
        .await
        .map_err(MigrationFailure::Db)?
        .len();
    conn.close().await.map_err(MigrationFailure::Db)?;
    if dangling > 0 {
        return Err(MigrationFailure::ForeignKeys(dangling));
    }
    Ok(())
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
    /// Bid answers held in memory that start a merge into the results file
    /// (also the most one merge copies).
    pub results_merge_rows: usize,
    /// The longest an answer waits in memory for a merge.
    pub results_merge_interval: Duration,
    /// Merged log rows each batch commit deletes at most.
    pub results_prune_rows: u32,
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
            results_merge_rows: 32768,
            results_merge_interval: Duration::from_secs(1),
            results_prune_rows: 4096,
        }
    }
}

/// An open, migrated SQLite database.
#[derive(Clone)]
pub struct Db {
    pub(crate) writer: SqlitePool,
    pub(crate) reader: SqlitePool,
    pub(crate) results: Arc<results_store::ResultsStore>,
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
        migrate(&connect).await.map_err(|e| match e {
            MigrationFailure::Db(source) => open_err(source),
            MigrationFailure::Migrate(e) => StoreError::Migrate(e),
            MigrationFailure::ForeignKeys(rows) => StoreError::ForeignKeys { rows },
        })?;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(connect.clone())
            .await
            .map_err(open_err)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(options.readers.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(connect.clone().read_only(true))
            .await
            .map_err(open_err)?;
        let results = results_store::ResultsStore::open(path, &connect, options, &writer).await?;
        Ok(Db {
            writer,
            reader,
            results,
        })
    }

    /// True when a trivial read succeeds (for `/readyz`).
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.reader).await.is_ok()
    }

    /// Connections per pool as (pool, open, idle): `writer` (one connection)
    /// and `reader` of the main file, `results_writer` and `results_reader` of
    /// the results file. For the `bowchat_db_connections` gauge.
    pub fn pool_stats(&self) -> [(&'static str, u32, usize); 4] {
        let [results_writer, results_reader] = self.results.pool_stats();
        [
            ("writer", self.writer.size(), self.writer.num_idle()),
            ("reader", self.reader.size(), self.reader.num_idle()),
            results_writer,
            results_reader,
        ]
    }

    /// Bid answers stored but not yet merged into the results file.
    pub fn unmerged_results(&self) -> usize {
        self.results.unmerged_count()
    }

    pub async fn close(&self) {
        self.results.close().await;
        // The writer closes last: only the last connection of a file
        // checkpoints its write-ahead log and removes it, and readers are
        // read-only, so closing the writer first would leave the log behind.
        self.reader.close().await;
        self.writer.close().await;
    }
}
