//! `--demo`: seeds users, auctions and rooms, and runs a few bidding bots so a
//! newcomer sees prices move at once. Idempotent across restarts.

use std::sync::Arc;
use std::time::Duration;

use bowchat_auction::engine::{AuctionTerms, IncrementRule, Phase, SoftClose, SoftCloseMode};
use bowchat_auction::messages::{Action, AuctionCommand};
use bowchat_auction::ports::{AuctionFilter, AuctionRepository, NewAuction};
use bowchat_auth::{AuthError, AuthService, Session};
use bowchat_bus::{topics, Bus};
use bowchat_chat::ports::ChatRepository;
use bowchat_gateway::DemoAccount;
use bowchat_model::{now_millis, Origin, UserId};
use bytes::Bytes;
use rand::seq::SliceRandom;
use rand::Rng;
use tracing::{info, warn};

pub const DEMO_PASSWORD: &str = "bowchat-demo";
const SELLER: &str = "alice@demo.bowchat";
const BIDDERS: [&str; 3] = [
    "bob@demo.bowchat",
    "carol@demo.bowchat",
    "dave@demo.bowchat",
];
const ITEMS: [(&str, &str, i64); 6] = [
    (
        "Vintage film camera",
        "A 1970s rangefinder, fully working.",
        5_000,
    ),
    (
        "Signed first edition",
        "A signed first printing, fine condition.",
        12_000,
    ),
    (
        "Mechanical keyboard",
        "Hand-built, linear switches, walnut case.",
        8_000,
    ),
    ("Mountain bike", "Carbon frame, one season old.", 60_000),
    (
        "Espresso machine",
        "Dual boiler, recently serviced.",
        45_000,
    ),
    ("Concert poster", "Original 1969 print, framed.", 3_000),
];

/// The name a demo account is registered with: its address's local part.
fn display_name(email: &str) -> &str {
    email.split('@').next().unwrap_or("demo")
}

/// The seeded accounts, for the login page's one-click sign-in.
pub fn accounts() -> Vec<DemoAccount> {
    let account = |email: &str, role| DemoAccount {
        email: email.into(),
        display_name: display_name(email).into(),
        role,
        password: DEMO_PASSWORD.into(),
    };
    std::iter::once(account(SELLER, "seller"))
        .chain(BIDDERS.iter().map(|email| account(email, "bidder")))
        .collect()
}

async fn user(auth: &AuthService, email: &str) -> Result<Session, AuthError> {
    match auth
        .register(email, DEMO_PASSWORD, Some(display_name(email)))
        .await
    {
        Err(AuthError::EmailTaken) => auth.login(email, DEMO_PASSWORD).await,
        other => other,
    }
}

async fn open_auctions(auctions: &dyn AuctionRepository) -> usize {
    let filter = AuctionFilter {
        phase: Some(Phase::Open),
        limit: 100,
        ..AuctionFilter::default()
    };
    auctions.list(&filter).await.map(|l| l.len()).unwrap_or(0)
}

async fn create_auction(
    auctions: &dyn AuctionRepository,
    bus: &dyn Bus,
    seller: UserId,
) -> anyhow::Result<()> {
    let (title, description, start) = *ITEMS.choose(&mut rand::thread_rng()).unwrap_or(&ITEMS[0]);
    let now = now_millis();
    let minutes = rand::thread_rng().gen_range(3..=10);
    let terms = AuctionTerms {
        seller,
        currency: "USD".into(),
        starting_price: start,
        increment: IncrementRule::Tiered {
            tiers: vec![
                bowchat_auction::engine::IncrementTier {
                    from: 0,
                    increment: 100,
                },
                bowchat_auction::engine::IncrementTier {
                    from: 10_000,
                    increment: 500,
                },
                bowchat_auction::engine::IncrementTier {
                    from: 50_000,
                    increment: 1_000,
                },
            ],
        },
        reserve: Some(start * 2),
        buy_now: Some(start * 6),
        starts_at: now,
        ends_at: now + minutes * 60_000,
        soft_close: Some(SoftClose {
            window_ms: 30_000,
            extension_ms: 30_000,
            mode: SoftCloseMode::Reset,
        }),
    };
    let new = NewAuction {
        title: title.into(),
        description: description.into(),
        terms,
        external_id: None,
        bid_partitions: bus.partitions(topics::AUCTION_BID).ok(),
    };
    let record = auctions.create(new, now).await?;
    let register = AuctionCommand {
        auction_id: record.id,
        user_id: seller,
        origin: Origin {
            gateway: "demo".into(),
            conn: 0,
            request_id: format!("register-{}", record.id),
        },
        action: Action::Register,
    };
    bus.publish(
        topics::AUCTION_BID,
        &record.id.to_string(),
        Bytes::from(serde_json::to_vec(&register)?),
    )
    .await?;
    Ok(())
}

pub async fn seed(
    auth: &AuthService,
    auctions: &dyn AuctionRepository,
    chat: &dyn ChatRepository,
    bus: &dyn Bus,
) -> anyhow::Result<()> {
    let seller = user(auth, SELLER).await?;
    let mut ids = vec![seller.user.id];
    for email in BIDDERS {
        ids.push(user(auth, email).await?.user.id);
    }
    if chat
        .rooms_of(seller.user.id)
        .await?
        .iter()
        .all(|r| r.room.name != "Lobby")
    {
        chat.create_group("Lobby", seller.user.id, &ids[1..], now_millis())
            .await?;
    }
    while open_auctions(auctions).await < 3 {
        create_auction(auctions, bus, seller.user.id).await?;
    }
    info!(
        users = %format!("{SELLER}, {}", BIDDERS.join(", ")),
        password = DEMO_PASSWORD,
        "demo data ready: sign in as any of these users"
    );
    Ok(())
}

/// Bidders that bid the minimum on a random open auction every few seconds,
/// and a seller that keeps three auctions open.
pub async fn bots(auth: Arc<AuthService>, auctions: Arc<dyn AuctionRepository>, bus: Arc<dyn Bus>) {
    let mut bidders = Vec::new();
    for email in BIDDERS {
        match user(&auth, email).await {
            Ok(session) => bidders.push(session.user.id),
            Err(e) => warn!(error = %e, "demo bot cannot sign in"),
        }
    }
    let Ok(seller) = user(&auth, SELLER).await.map(|s| s.user.id) else {
        return;
    };
    loop {
        let pause = rand::thread_rng().gen_range(2_000..6_000);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let filter = AuctionFilter {
            phase: Some(Phase::Open),
            limit: 100,
            ..AuctionFilter::default()
        };
        let open = auctions.list(&filter).await.unwrap_or_default();
        if open.len() < 3 {
            if let Err(e) = create_auction(auctions.as_ref(), bus.as_ref(), seller).await {
                warn!(error = %e, "demo seller cannot create an auction");
            }
        }
        let Some(target) = open.choose(&mut rand::thread_rng()) else {
            continue;
        };
        let candidates: Vec<UserId> = bidders
            .iter()
            .copied()
            .filter(|b| Some(*b) != target.state.leader)
            .collect();
        let Some(bidder) = candidates.choose(&mut rand::thread_rng()).copied() else {
            continue;
        };
        let amount = target.state.minimum_bid();
        if target.state.terms.buy_now.is_some_and(|b| amount >= b) {
            continue;
        }
        let command = AuctionCommand {
            auction_id: target.id,
            user_id: bidder,
            origin: Origin {
                gateway: "demo".into(),
                conn: 0,
                request_id: uuid::Uuid::new_v4().to_string(),
            },
            action: Action::Bid {
                amount,
                currency: None,
            },
        };
        if let Ok(payload) = serde_json::to_vec(&command) {
            let _ = bus
                .publish(
                    topics::AUCTION_BID,
                    &target.id.to_string(),
                    Bytes::from(payload),
                )
                .await;
        }
    }
}
