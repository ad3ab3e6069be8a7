//! The business test suite of the storage ports, written once over the port
//! traits and run against every adapter: `bowchat-store` runs it on SQLite
//! files, `bowchat-postgres` on a fresh PostgreSQL database per test.
//!
//! An adapter crate implements [`Store`] in a test harness and expands
//! [`conformance_tests!`] with an async function that builds the store, runs
//! one suite function on it and cleans up.

pub mod auction;
pub mod auth;
pub mod chat;
pub mod moderation;
pub mod outbox;
pub mod social;

use std::sync::Arc;

use async_trait::async_trait;
use bowchat_auction::ports::AuctionRepository;
use bowchat_auth::ports::AuthRepository;
use bowchat_bus::outbox::OutboxStore;
use bowchat_chat::ports::ChatRepository;
use bowchat_social::ports::SocialRepository;
use futures::future::BoxFuture;

/// The repositories of one open store, all over the same data.
#[derive(Clone)]
pub struct Repos {
    pub auth: Arc<dyn AuthRepository>,
    pub chat: Arc<dyn ChatRepository>,
    pub social: Arc<dyn SocialRepository>,
    pub auction: Arc<dyn AuctionRepository>,
    /// The fact outbox the auction and chat repositories write with their batches.
    pub outbox: Arc<dyn OutboxStore>,
}

/// The storage under test: an empty database at first.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Opens the store. A later call opens the same data again, as a
    /// restarted process would.
    async fn open(&self) -> Repos;
}

/// One suite function, boxed so a harness can take any of them.
pub type SuiteTest = fn(Arc<dyn Store>) -> BoxFuture<'static, ()>;

/// Expands to one `#[tokio::test]` per suite function. `$harness` is an
/// `async fn(SuiteTest)` that provides a fresh [`Store`] to the test.
#[macro_export]
macro_rules! conformance_tests {
    ($harness:path) => {
        $crate::auth_conformance_tests!($harness);
        $crate::chat_conformance_tests!($harness);
        $crate::social_conformance_tests!($harness);
        $crate::auction_conformance_tests!($harness);
        $crate::moderation_conformance_tests!($harness);
    };
}

/// Moderation across the auth and chat ports (blocks, reports, the audit
/// trail they share): only for stores that hold both.
#[macro_export]
macro_rules! moderation_conformance_tests {
    ($harness:path) => {
        $crate::suite_tests!(@each $harness;
            moderation::a_block_revokes_the_users_families_and_is_audited,
            moderation::a_report_is_stored_once_per_reporter_and_audited,
        );
    };
}

/// The `AuthRepository` part of [`conformance_tests!`], for adapters that
/// implement only that port (the others come from an inner store).
#[macro_export]
macro_rules! auth_conformance_tests {
    ($harness:path) => {
        $crate::suite_tests!(@each $harness;
            auth::create_and_find_users,
            auth::duplicate_email_is_a_conflict,
            auth::signing_key_persists_across_reopen,
            auth::first_signing_key_wins,
            auth::signing_keys_are_stored_encrypted,
            auth::rotation_persists_across_reopen,
            auth::rotate_refresh_is_once_only,
            auth::concurrent_rotations_have_one_winner,
            auth::revoked_families_are_listed_since,
            auth::auth_service_survives_a_restart,
        );
    };
}

/// The `ChatRepository` part of [`conformance_tests!`].
#[macro_export]
macro_rules! chat_conformance_tests {
    ($harness:path) => {
        $crate::suite_tests!(@each $harness;
            chat::history_pages_before_after_and_latest,
            chat::direct_room_is_one_per_pair,
            chat::groups_members_and_joins,
            chat::unread_counts_and_read_markers_never_move_back,
            chat::a_failing_commit_stores_nothing,
            chat::dedupe_lookup_and_last_seqs,
            chat::concurrent_opens_of_a_pair_make_one_room,
            chat::racing_batches_on_one_room_keep_one_sequence,
        );
    };
}

/// The `SocialRepository` part of [`conformance_tests!`].
#[macro_export]
macro_rules! social_conformance_tests {
    ($harness:path) => {
        $crate::suite_tests!(@each $harness;
            social::a_pending_login_is_taken_once_and_expired_ones_are_swept,
            social::first_login_creates_a_linked_user_and_refuses_a_taken_email,
            social::tickets_are_single_use_and_kept_apart_by_kind,
            social::racing_first_logins_create_one_account,
        );
    };
}

/// The `AuctionRepository` part of [`conformance_tests!`].
#[macro_export]
macro_rules! auction_conformance_tests {
    ($harness:path) => {
        $crate::suite_tests!(@each $harness;
            auction::create_is_idempotent_by_external_id,
            auction::list_filters_and_pages_newest_first,
            auction::list_searches_text_and_current_price,
            auction::watchlists_are_per_user_bounded_and_newest_first,
            auction::commit_stores_states_steps_and_results,
            auction::steps_page_like_history,
            auction::a_stale_version_stores_nothing,
            auction::auctions_keep_their_pinned_partition_count,
            auction::results_answer_retries,
            auction::refused_results_expire_and_accepted_stay,
            auction::deal_room_is_opened_once,
            auction::concurrent_creates_with_one_external_id_make_one_auction,
            outbox::entries_ride_with_their_batch,
        );
    };
}

/// One `#[tokio::test]` per listed suite function (used by the macros above).
#[doc(hidden)]
#[macro_export]
macro_rules! suite_tests {
    (@each $harness:path; $($module:ident :: $name:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $harness(|store| ::std::boxed::Box::pin($crate::$module::$name(store))).await;
            }
        )*
    };
}
