//! Where the embedded store keeps the first answer to every bid and cancel
//! request, so that a retry gets the same answer back.
//!
//! Why not one indexed table: request keys arrive in random order, and adding
//! them batch by batch to a B-tree dirties (and writes to the WAL) one page per
//! row. That was the largest single cost of the bid path (docs/benchmarks.md).
//! Results are therefore kept like a small log-structured merge tree:
//!
//! 1. A batch commit appends its results to `auction_results_log` in the main
//!    file, in the same transaction as its bids: appends touch only the last
//!    pages of the table.
//! 2. Once that commit succeeded, the results are also held in memory
//!    ([`Recent`]) until they are merged.
//! 3. A background merger copies logged rows, sorted by key, into the indexed
//!    `auction_results` table of a second file (`<main file>-results`) and
//!    records the log position it merged through in the same transaction.
//!    Sorted runs touch each index page once. Then it forgets them from memory.
//! 4. Later batch commits delete merged log rows, a bounded chunk at a time.
//! 5. Opening merges whatever the log still holds before anything is served.
//! 6. Refused answers older than the idempotency window are deleted from the
//!    results file, oldest first, through an index on their creation time.
//!
//! A crash at any point loses nothing: log rows are deleted only after the
//! merge that copied them committed, and a merge interrupted halfway is redone
//! (`INSERT OR IGNORE`). A lookup reads memory, then the results file; the file
//! wins when a key is in both, so the first stored answer is the one kept.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bowchat_auction::messages::CommandResult;
use bowchat_auction::ports::{RepoError, ResultKey, StoredResult};
use bowchat_model::{AuctionId, Millis, UserId};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::{Row, Sqlite, Transaction};
use tracing::{debug, warn};

use crate::auction_repo::unavailable;
use crate::padded_rows::PaddedStatement;
use crate::{SqliteOptions, StoreError};

/// An answer whose log row is not merged yet.
struct Recent {
    /// The batch's last log id: the entry can go once the merge passed it.
    logged_through: i64,
    result: CommandResult,
}

#[derive(Default)]
struct Unmerged {
    entries: HashMap<ResultKey, Recent>,
    /// Log ids up to here are in the results file.
    merged_through: i64,
}

/// What a batch wrote to the log, handed back after its commit.
pub(crate) struct Appended {
    logged_through: i64,
}

pub(crate) struct ResultsStore {
    writer: SqlitePool,
    reader: SqlitePool,
    unmerged: Mutex<Unmerged>,
    /// Log ids up to here are deleted from the main file.
    pruned_through: AtomicI64,
    wake: tokio::sync::Notify,
    closed: AtomicBool,
    merge_rows: usize,
    merge_interval: Duration,
    prune_rows: i64,
    statements: Statements,
}

/// The multi-row statements, prepared per size (see `padded_rows`).
struct Statements {
    /// Appends answers to the main file's log.
    append: PaddedStatement,
    /// The stored answers among (auction, user, request) keys.
    find: PaddedStatement,
}

impl Statements {
    fn new() -> Self {
        Self {
            append: PaddedStatement::new(
                &format!("INSERT INTO auction_results_log ({ANSWER_COLUMNS}) SELECT * FROM"),
                ANSWER_COLUMN_COUNT,
                "",
            ),
            find: PaddedStatement::new(
                "SELECT r.auction_id, r.user_id, r.request_id, r.accepted, r.code, r.message,
                        r.leading, r.price, r.minimum FROM",
                3,
                "CROSS JOIN auction_results AS r
                 WHERE r.auction_id = v.column1 AND r.user_id = v.column2
                   AND r.request_id = v.column3",
            ),
        }
    }
}

/// The columns of a stored answer, in the log and in the results file alike.
const ANSWER_COLUMNS: &str =
    "auction_id, user_id, request_id, accepted, code, message, leading, price, minimum, created_at";
const ANSWER_COLUMN_COUNT: usize = 10;

/// One stored answer as its columns are bound.
struct AnswerRow<'a> {
    auction_id: AuctionId,
    user_id: UserId,
    request_id: &'a str,
    result: &'a CommandResult,
    created_at: Millis,
}

/// Binds `rows`, then NULL for every row of the statement they leave over.
fn bind_answers<'q>(
    mut query: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    rows: &[AnswerRow<'q>],
    statement_rows: usize,
) -> sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    for row in rows {
        let r = row.result;
        query = query
            .bind(row.auction_id)
            .bind(row.user_id)
            .bind(row.request_id)
            .bind(r.accepted)
            .bind(r.code.as_deref())
            .bind(r.message.as_deref())
            .bind(r.leading)
            .bind(r.price)
            .bind(r.minimum)
            .bind(row.created_at);
    }
    for _ in rows.len()..statement_rows {
        for _ in 0..ANSWER_COLUMN_COUNT {
            query = query.bind(None::<i64>);
        }
    }
    query
}

/// The answer held in a row's answer columns.
fn result_of(row: &sqlx::sqlite::SqliteRow) -> Result<CommandResult, sqlx::Error> {
    Ok(CommandResult {
        accepted: row.try_get("accepted")?,
        code: row.try_get("code")?,
        message: row.try_get("message")?,
        leading: row.try_get("leading")?,
        price: row.try_get("price")?,
        minimum: row.try_get("minimum")?,
    })
}

/// The results file that belongs to the database at `main`.
pub fn results_path(main: &Path) -> PathBuf {
    let mut name = main.as_os_str().to_owned();
    name.push("-results");
    PathBuf::from(name)
}

impl ResultsStore {
    /// Opens the results file beside `main_path`, checks that it belongs to
    /// this database, merges and prunes what the log holds, and starts the
    /// merger.
    pub(crate) async fn open(
        main_path: &Path,
        connect: &SqliteConnectOptions,
        options: &SqliteOptions,
        main_writer: &SqlitePool,
    ) -> Result<Arc<ResultsStore>, StoreError> {
        let path = results_path(main_path);
        let shown = path.display().to_string();
        let open_err = |source| StoreError::Open {
            path: shown.clone(),
            source,
        };
        let connect = connect.clone().filename(&path);
        // The writer sees the main file's log as `log`, so a merge copies rows
        // from file to file inside SQLite instead of through this process.
        let main_file = main_path.display().to_string();
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| {
                let main_file = main_file.clone();
                Box::pin(async move {
                    sqlx::query("ATTACH DATABASE ? AS log")
                        .bind(main_file)
                        .execute(conn)
                        .await
                        .map(|_| ())
                })
            })
            .connect_with(connect.clone())
            .await
            .map_err(open_err)?;
        sqlx::migrate!("./results_migrations").run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(options.readers.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(connect.read_only(true))
            .await
            .map_err(open_err)?;

        let merged_through = link(main_writer, &writer, &shown)
            .await
            .map_err(|e| match e {
                LinkError::Db(source) => open_err(source),
                LinkError::Foreign => StoreError::ForeignResults {
                    path: shown.clone(),
                },
            })?;
        let store = Arc::new(ResultsStore {
            writer,
            reader,
            unmerged: Mutex::new(Unmerged {
                entries: HashMap::new(),
                merged_through,
            }),
            pruned_through: AtomicI64::new(0),
            wake: tokio::sync::Notify::new(),
            closed: AtomicBool::new(false),
            merge_rows: options.results_merge_rows.max(1),
            merge_interval: options
                .results_merge_interval
                .max(Duration::from_millis(10)),
            prune_rows: i64::from(options.results_prune_rows.max(1)),
            statements: Statements::new(),
        });
        store.merge_all().await.map_err(open_err)?;
        let merged = store.merged_through();
        sqlx::query("DELETE FROM auction_results_log WHERE id <= ?")
            .bind(merged)
            .execute(main_writer)
            .await
            .map_err(open_err)?;
        store.pruned_through.store(merged, Ordering::Relaxed);
        tokio::spawn(run_merger(Arc::downgrade(&store)));
        Ok(store)
    }

    fn unmerged(&self) -> MutexGuard<'_, Unmerged> {
        // A panic while holding the lock leaves the map consistent (every
        // operation on it is a single insert or retain), so poison is ignored.
        self.unmerged.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn merged_through(&self) -> i64 {
        self.unmerged().merged_through
    }

    /// Answers not yet merged into the results file (for the metrics gauge).
    pub(crate) fn unmerged_count(&self) -> usize {
        self.unmerged().entries.len()
    }

    /// The stored answers among `keys` (of any auctions), each key once.
    pub(crate) async fn find(&self, keys: &[ResultKey]) -> Result<Vec<StoredResult>, RepoError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // Memory first: an entry leaves memory only after its merge committed,
        // so a key missed here is in the file by the time the file is read.
        let mut found: HashMap<ResultKey, CommandResult> = {
            let unmerged = self.unmerged();
            keys.iter()
                .filter_map(|key| Some((key.clone(), unmerged.entries.get(key)?.result.clone())))
                .collect()
        };
        // The keys as bound parameters, a few statements of prepared sizes
        // for the whole batch (see `padded_rows`): a statement per key costs
        // a round trip to sqlx's SQLite thread each. CROSS JOIN keeps the
        // key list as the outer loop, so every key is a primary-key lookup.
        let mut offset = 0;
        for chunk in self.statements.find.chunks(keys.len()) {
            let mut query = sqlx::query(chunk.sql);
            for (auction, user, request) in &keys[offset..offset + chunk.used] {
                query = query.bind(*auction).bind(*user).bind(request.as_str());
            }
            for _ in chunk.used..chunk.rows {
                query = query
                    .bind(None::<i64>)
                    .bind(None::<i64>)
                    .bind(None::<String>);
            }
            offset += chunk.used;
            let rows = query.fetch_all(&self.reader).await.map_err(unavailable)?;
            for row in rows {
                let result = result_of(&row).map_err(unavailable)?;
                let key: ResultKey = (
                    row.try_get("auction_id").map_err(unavailable)?,
                    row.try_get("user_id").map_err(unavailable)?,
                    row.try_get("request_id").map_err(unavailable)?,
                );
                found.insert(key, result);
            }
        }
        Ok(found
            .into_iter()
            .map(|((auction_id, user_id, request_id), result)| StoredResult {
                auction_id,
                user_id,
                request_id,
                result,
            })
            .collect())
    }

    /// Appends `results` to the log inside the batch's transaction.
    pub(crate) async fn append(
        &self,
        tx: &mut Transaction<'_, Sqlite>,
        results: &[StoredResult],
        now: Millis,
    ) -> Result<Appended, RepoError> {
        let rows: Vec<AnswerRow<'_>> = results
            .iter()
            .map(|r| AnswerRow {
                auction_id: r.auction_id,
                user_id: r.user_id,
                request_id: &r.request_id,
                result: &r.result,
                created_at: now,
            })
            .collect();
        let mut offset = 0;
        let mut logged_through = 0;
        for chunk in self.statements.append.chunks(rows.len()) {
            let part = &rows[offset..offset + chunk.used];
            let done = bind_answers(sqlx::query(chunk.sql), part, chunk.rows)
                .execute(&mut **tx)
                .await
                .map_err(unavailable)?;
            offset += chunk.used;
            logged_through = done.last_insert_rowid();
        }
        Ok(Appended { logged_through })
    }

    /// Deletes the next chunk of merged log rows inside the batch's
    /// transaction; returns how far the log will be pruned once it commits.
    pub(crate) async fn prune(
        &self,
        tx: &mut Transaction<'_, Sqlite>,
    ) -> Result<Option<i64>, RepoError> {
        let pruned = self.pruned_through.load(Ordering::Relaxed);
        let upto = self
            .merged_through()
            .min(pruned.saturating_add(self.prune_rows));
        if upto <= pruned {
            return Ok(None);
        }
        sqlx::query("DELETE FROM auction_results_log WHERE id <= ?")
            .bind(upto)
            .execute(&mut **tx)
            .await
            .map_err(unavailable)?;
        Ok(Some(upto))
    }

    /// Records what a committed batch appended and pruned.
    pub(crate) fn committed(
        &self,
        results: &[StoredResult],
        appended: Option<Appended>,
        pruned: Option<i64>,
    ) {
        if let Some(upto) = pruned {
            self.pruned_through.fetch_max(upto, Ordering::Relaxed);
        }
        let Some(appended) = appended else { return };
        let mut unmerged = self.unmerged();
        // A merger can copy the rows between the commit and this call; they
        // are in the file then, and remembering them would keep them forever.
        if appended.logged_through <= unmerged.merged_through {
            return;
        }
        for r in results {
            unmerged
                .entries
                .entry((r.auction_id, r.user_id, r.request_id.clone()))
                // The first answer stays; the entry lives until the later
                // row is merged too, so "nothing in memory" means "all merged".
                .and_modify(|recent| recent.logged_through = appended.logged_through)
                .or_insert_with(|| Recent {
                    logged_through: appended.logged_through,
                    result: r.result.clone(),
                });
        }
        if unmerged.entries.len() >= self.merge_rows {
            self.wake.notify_one();
        }
    }

    /// Merges until the log holds nothing unmerged.
    async fn merge_all(&self) -> Result<(), sqlx::Error> {
        while self.merge_once().await? == self.merge_rows {}
        Ok(())
    }

    /// Copies up to `merge_rows` log rows into the results file; returns how
    /// many it read. One statement reads them from the attached main file,
    /// sorts them by key (then log id: among repeats of a key the first answer
    /// is inserted first and `OR IGNORE` keeps it) and inserts them, so no row
    /// passes through this process.
    async fn merge_once(&self) -> Result<usize, sqlx::Error> {
        let from = self.merged_through();
        let last: Option<i64> = sqlx::query_scalar("SELECT max(id) FROM log.auction_results_log")
            .fetch_one(&self.writer)
            .await?;
        let Some(last) = last.filter(|last| *last > from) else {
            return Ok(0);
        };
        let through = last.min(from.saturating_add(self.merge_rows as i64));
        let mut tx = self.writer.begin().await?;
        sqlx::query(&format!(
            "INSERT OR IGNORE INTO main.auction_results ({ANSWER_COLUMNS})
             SELECT {ANSWER_COLUMNS} FROM log.auction_results_log
             WHERE id > ? AND id <= ? ORDER BY auction_id, user_id, request_id, id"
        ))
        .bind(from)
        .bind(through)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE merge_state SET merged_through = ? WHERE id = 1")
            .bind(through)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let mut unmerged = self.unmerged();
        unmerged.merged_through = unmerged.merged_through.max(through);
        unmerged
            .entries
            .retain(|_, recent| recent.logged_through > through);
        let rows = (through - from) as usize;
        debug!(
            rows,
            through,
            left = unmerged.entries.len(),
            "merged results"
        );
        Ok(rows)
    }

    /// Deletes at most `max_rows` refused answers stored before
    /// `refused_before`, on the results file's own writer (never the batch
    /// writer). What the log still holds is merged first, so an old answer
    /// not merged yet is expired too.
    pub(crate) async fn expire(
        &self,
        refused_before: Millis,
        max_rows: u32,
    ) -> Result<u64, RepoError> {
        self.merge_all().await.map_err(unavailable)?;
        let done = sqlx::query(
            "DELETE FROM auction_results WHERE rowid IN (
                 SELECT rowid FROM auction_results
                 WHERE accepted = 0 AND created_at < ? ORDER BY created_at LIMIT ?)",
        )
        .bind(refused_before)
        .bind(i64::from(max_rows))
        .execute(&self.writer)
        .await
        .map_err(unavailable)?;
        Ok(done.rows_affected())
    }

    pub(crate) async fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.wake.notify_one();
        // Writer last, for the reason given in `Db::close`.
        self.reader.close().await;
        self.writer.close().await;
    }

    pub(crate) fn pool_stats(&self) -> [(&'static str, u32, usize); 2] {
        [
            ("results_writer", self.writer.size(), self.writer.num_idle()),
            ("results_reader", self.reader.size(), self.reader.num_idle()),
        ]
    }
}

enum LinkError {
    Db(sqlx::Error),
    Foreign,
}

impl From<sqlx::Error> for LinkError {
    fn from(e: sqlx::Error) -> Self {
        LinkError::Db(e)
    }
}

/// Ties a new results file to the main database (or checks an existing tie)
/// and returns the log position merged so far. A results file left from
/// another database would answer retries with that database's results, and
/// its merged position would make the log rows of this one look merged.
async fn link(main: &SqlitePool, results: &SqlitePool, shown: &str) -> Result<i64, LinkError> {
    let token: String = sqlx::query_scalar("SELECT token FROM results_link WHERE id = 1")
        .fetch_one(main)
        .await?;
    let (linked, merged_through): (Option<String>, i64) =
        sqlx::query_as("SELECT link_token, merged_through FROM merge_state WHERE id = 1")
            .fetch_one(results)
            .await?;
    match linked {
        Some(linked) if linked == token => Ok(merged_through),
        Some(_) => Err(LinkError::Foreign),
        None => {
            sqlx::query("UPDATE merge_state SET link_token = ? WHERE id = 1")
                .bind(&token)
                .execute(results)
                .await?;
            debug!(path = shown, "results file linked");
            Ok(merged_through)
        }
    }
}

/// Merges when enough answers wait in memory, or every `merge_interval`.
/// Ends when the store is closed or dropped.
async fn run_merger(store: Weak<ResultsStore>) {
    loop {
        let Some(this) = store.upgrade() else { return };
        if this.closed.load(Ordering::Relaxed) {
            return;
        }
        // Holding the store while waiting delays its drop by one interval at
        // most; the wait ends early when a commit or `close` wakes it.
        let woken = tokio::select! {
            _ = this.wake.notified() => true,
            _ = tokio::time::sleep(this.merge_interval) => false,
        };
        if this.closed.load(Ordering::Relaxed) {
            return;
        }
        if !woken && this.unmerged_count() == 0 {
            continue;
        }
        if let Err(e) = this.merge_all().await {
            if this.closed.load(Ordering::Relaxed) {
                return;
            }
            warn!(error = %e, "cannot merge stored results; retrying");
        }
    }
}
