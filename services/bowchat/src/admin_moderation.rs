//! `bowchat admin users|reports|audit`: the operator's side of chat
//! moderation, against the same database the servers use. A block takes
//! effect on every process within `auth.revocation_poll_ms` (see
//! `bowchat_auth::moderation`).

use bowchat_auth::moderation::{set_blocked, BlockOutcome, OPERATOR};
use clap::Subcommand;

use crate::adapters::Store;
use crate::config::Config;

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Block a user platform-wide: login and refresh are refused, every
    /// session ends (its refresh tokens are revoked, its access tokens are
    /// refused by every process at its next poll).
    Block {
        /// The user's email or numeric id.
        user: String,
        /// Why (kept on the user and in the audit trail).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Lift a block: the user can log in again; sessions the block ended
    /// stay ended.
    Unblock {
        /// The user's email or numeric id.
        user: String,
    },
}

#[derive(Subcommand)]
pub enum ListCommand {
    /// The newest entries first.
    List {
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

pub async fn users(config: &Config, command: UsersCommand) -> anyhow::Result<()> {
    let store = Store::open(config).await?;
    let repo = store.auth();
    let now = bowchat_model::now_millis();
    let outcome = match &command {
        UsersCommand::Block { user, reason } => {
            set_blocked(repo.as_ref(), user, true, reason.clone(), OPERATOR, now).await
        }
        UsersCommand::Unblock { user } => {
            set_blocked(repo.as_ref(), user, false, None, OPERATOR, now).await
        }
    };
    store.close().await;
    let verb = match command {
        UsersCommand::Block { .. } => "blocked",
        UsersCommand::Unblock { .. } => "unblocked",
    };
    match outcome? {
        BlockOutcome::Changed(user) => println!("{verb} user {} ({})", user.id, user.email),
        BlockOutcome::Unchanged(user) => {
            println!("user {} ({}) was already {verb}", user.id, user.email)
        }
        // `set_blocked` found the user; it vanished before the write.
        BlockOutcome::UnknownUser => anyhow::bail!("no such user"),
    }
    Ok(())
}

pub async fn reports(
    config: &Config,
    ListCommand::List { limit }: ListCommand,
) -> anyhow::Result<()> {
    let store = Store::open(config).await?;
    let found = store.chat().reports(limit).await;
    store.close().await;
    for r in found? {
        println!(
            "id={} room={} seq={} reporter={} reason={:?} created_at={} sender={} body={:?}",
            r.id, r.room_id, r.seq, r.reporter, r.reason, r.created_at, r.sender, r.body
        );
    }
    Ok(())
}

pub async fn audit(
    config: &Config,
    ListCommand::List { limit }: ListCommand,
) -> anyhow::Result<()> {
    let store = Store::open(config).await?;
    let found = store.auth().moderation_audit(limit).await;
    store.close().await;
    let opt = |v: Option<i64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
    for e in found? {
        println!(
            "id={} at={} actor={} action={} target={} room={} seq={} detail={:?}",
            e.id,
            e.at,
            e.actor,
            e.action,
            opt(e.target_user),
            opt(e.room_id),
            opt(e.seq),
            e.detail
        );
    }
    Ok(())
}
