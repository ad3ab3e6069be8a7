//! The `Auction` controller: registers each resource's auction with the
//! platform (idempotent on the resource's uid through `externalId`), grows the
//! `auction-bid` partitions to what the spec asks, mirrors the platform's live
//! state into `status`, and on deletion cancels or keeps the auction as
//! `spec.onDelete` says (a finalizer holds the resource until that is done).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{finalizer, Event as Finalizer};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use crate::conditions::{self, State};
use crate::crd::{Auction, AuctionStatus, OnDelete};
use crate::metrics::Metrics;
use crate::platform::{AuctionView, Platform, PlatformError};
use bowchat_kafka::KafkaAdmin;

pub const FINALIZER: &str = "bowchat.io/auction";
pub const MANAGER: &str = "bowchat-operator";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
    #[error("kafka: {0}")]
    Kafka(#[from] bowchat_kafka::AdminError),
    #[error("invalid spec: {0}")]
    Spec(String),
    #[error("finalizer: {0}")]
    Finalizer(String),
}

/// Settings of the reconciler.
#[derive(Debug, Clone)]
pub struct ReconcileConfig {
    /// How often a live auction's status is refreshed from the platform.
    pub poll: Duration,
    /// How often a closed or refused one is looked at again.
    pub idle_poll: Duration,
    /// Logical name of the bid topic (the Kafka prefix is in the admin's config).
    pub bid_topic: String,
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(5),
            idle_poll: Duration::from_secs(300),
            bid_topic: "auction-bid".into(),
        }
    }
}

pub struct Context {
    pub client: Client,
    pub platform: Platform,
    pub kafka: Option<Arc<KafkaAdmin>>,
    pub config: ReconcileConfig,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
}

impl Context {
    pub fn new(
        client: Client,
        platform: Platform,
        kafka: Option<Arc<KafkaAdmin>>,
        config: ReconcileConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        let reporter = Reporter {
            controller: MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            platform,
            kafka,
            config,
            metrics,
        }
    }

    async fn event(&self, auction: &Auction, type_: EventType, reason: &str, note: String) {
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = self
            .recorder
            .publish(&event, &auction.object_ref(&()))
            .await
        {
            warn!(error = %e, "event not published");
        }
    }
}

/// Runs the controller until the stream ends (the watch is retried inside).
pub async fn run(ctx: Arc<Context>, namespace: Option<String>) {
    let auctions: Api<Auction> = match &namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    Controller::new(auctions, watcher::Config::default())
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                warn!(error = %e, "reconcile failed");
            }
        })
        .await;
}

async fn reconcile(auction: Arc<Auction>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = auction.namespace().unwrap_or_default();
    let api: Api<Auction> = Api::namespaced(ctx.client.clone(), &ns);
    let _timer = ctx.metrics.reconcile_started();
    finalizer(&api, FINALIZER, auction, |event| async {
        match event {
            Finalizer::Apply(a) => apply(&a, &api, &ctx).await,
            Finalizer::Cleanup(a) => cleanup(&a, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(e.to_string()))
}

fn error_policy(auction: Arc<Auction>, error: &Error, ctx: Arc<Context>) -> Action {
    warn!(auction = %auction.name_any(), %error, "reconcile error");
    ctx.metrics.reconcile_failed();
    Action::requeue(Duration::from_secs(5))
}

/// The platform's create body for the spec.
pub fn create_body(auction: &Auction) -> Result<serde_json::Value, Error> {
    let spec = &auction.spec;
    let external = auction
        .external_id()
        .ok_or_else(|| Error::Spec("the resource has no uid yet".into()))?;
    let mut body = json!({
        "title": spec.title,
        "description": spec.description,
        "currency": spec.currency,
        "startingPrice": spec.starting_price,
        "increment": spec.increment,
        "externalId": external,
    });
    if let Some(r) = spec.reserve_price {
        body["reserve"] = json!(r);
    }
    if let Some(b) = spec.buy_now_price {
        body["buyNow"] = json!(b);
    }
    if let Some(s) = spec.starts_at {
        body["startsAt"] = json!(s.timestamp_millis());
    }
    match (spec.ends_at, spec.duration_seconds) {
        (Some(_), Some(_)) => {
            return Err(Error::Spec(
                "give endsAt or durationSeconds, not both".into(),
            ))
        }
        (Some(e), None) => body["endsAt"] = json!(e.timestamp_millis()),
        (None, Some(d)) => body["durationSecs"] = json!(d),
        (None, None) => {}
    }
    Ok(body)
}

/// What the partition step found (it runs beside the platform call, so a
/// Kafka that does not answer delays nothing but itself).
enum Partitions {
    /// `capacity.partitions` not set, no Kafka configured, or already satisfied
    /// for this generation.
    Skipped,
    /// (count before, count now)
    Known(u32, u32),
    Failed(bowchat_kafka::AdminError),
}

async fn partitions(auction: &Auction, ctx: &Context) -> Partitions {
    let (Some(kafka), Some(wanted)) = (&ctx.kafka, auction.spec.capacity.partitions) else {
        return Partitions::Skipped;
    };
    let status = auction.status.clone().unwrap_or_default();
    let satisfied = status.observed_generation == auction.metadata.generation
        && status.partitions.is_some_and(|p| p >= wanted)
        && conditions::get(&status.conditions, conditions::PARTITIONS_READY)
            .is_some_and(|c| c.status == "True");
    if satisfied {
        return Partitions::Skipped;
    }
    let topic = &ctx.config.bid_topic;
    let current = match kafka.partitions(topic).await {
        Ok(c) => c,
        Err(e) => return Partitions::Failed(e),
    };
    if wanted > current {
        if let Err(e) = kafka.grow_partitions(topic, wanted).await {
            return Partitions::Failed(e);
        }
        return Partitions::Known(current, wanted);
    }
    Partitions::Known(current, current)
}

async fn apply(auction: &Auction, api: &Api<Auction>, ctx: &Context) -> Result<Action, Error> {
    let name = auction.name_any();
    let old = auction.status.clone().unwrap_or_default();
    let mut status = old.clone();
    status.observed_generation = auction.metadata.generation;

    let body = match old.auction_id {
        Some(_) => None,
        None => match create_body(auction) {
            Ok(b) => Some(b),
            Err(e) => {
                return refused(auction, api, ctx, status, "InvalidSpec", e.to_string()).await
            }
        },
    };
    let platform = async {
        match (old.auction_id, &body) {
            (Some(id), _) => ctx.platform.fetch(id).await,
            (None, Some(body)) => ctx.platform.register(body).await,
            (None, None) => unreachable!("a body is built when there is no id"),
        }
    };
    // Growing is safe while auctions are live (each is pinned to the count
    // it was created with), so the two need not be ordered.
    let (parts, view) = tokio::join!(partitions(auction, ctx), platform);
    record_partitions(auction, ctx, &old, &mut status, parts).await;

    if let (None, Ok(v)) = (old.auction_id, &view) {
        ctx.metrics.registered();
        info!(auction = %name, id = v.id, "registered");
        ctx.event(
            auction,
            EventType::Normal,
            "Registered",
            format!("registered as platform auction {}", v.id),
        )
        .await;
    }
    let view = match view {
        Ok(v) => v,
        Err(e) if e.is_permanent() => {
            return refused(auction, api, ctx, status, "Refused", e.to_string()).await
        }
        Err(e) => {
            condition(
                &mut status,
                auction,
                conditions::SYNCED,
                State::False,
                "PlatformUnavailable",
                &e.to_string(),
            );
            write_status(api, &name, &old, &mut status).await?;
            return Err(e.into());
        }
    };
    mirror(&mut status, &view);
    condition(
        &mut status,
        auction,
        conditions::REGISTERED,
        State::True,
        "Registered",
        &format!("platform auction {}", view.id),
    );
    condition(
        &mut status,
        auction,
        conditions::SYNCED,
        State::True,
        "Polled",
        "status mirrors the platform",
    );
    if old.phase != status.phase && old.auction_id.is_some() {
        ctx.event(
            auction,
            EventType::Normal,
            "PhaseChanged",
            format!(
                "{} -> {}",
                old.phase.as_deref().unwrap_or("Pending"),
                view.phase
            ),
        )
        .await;
    }
    write_status(api, &name, &old, &mut status).await?;
    let live = matches!(view.phase.as_str(), "scheduled" | "open");
    Ok(Action::requeue(if live {
        ctx.config.poll
    } else {
        ctx.config.idle_poll
    }))
}

/// `status.partitions`, `PartitionsReady` and the events of the partition step.
async fn record_partitions(
    auction: &Auction,
    ctx: &Context,
    old: &AuctionStatus,
    status: &mut AuctionStatus,
    parts: Partitions,
) {
    let topic = &ctx.config.bid_topic;
    let wanted = auction.spec.capacity.partitions.unwrap_or(0);
    match parts {
        Partitions::Skipped => {}
        Partitions::Known(before, now) => {
            if now > before {
                ctx.metrics.partitions_grown();
                ctx.event(
                    auction,
                    EventType::Normal,
                    "PartitionsGrown",
                    format!("{topic} grown from {before} to {now} partitions"),
                )
                .await;
            }
            status.partitions = Some(now);
            let ok = now >= wanted;
            let message =
                format!("{topic} has {now} partitions, spec asks {wanted} (never shrunk)");
            condition(
                status,
                auction,
                conditions::PARTITIONS_READY,
                State::from(ok),
                if ok { "Grown" } else { "Pending" },
                &message,
            );
        }
        Partitions::Failed(e) => {
            // Not a reason to stop mirroring the auction: say so and go on.
            let (state, reason) = match e {
                bowchat_kafka::AdminError::UnknownTopic(_) => (State::False, "TopicNotFound"),
                bowchat_kafka::AdminError::Shrink { .. } => (State::True, "Grown"),
                bowchat_kafka::AdminError::Kafka(_) => (State::Unknown, "KafkaUnavailable"),
            };
            let message = format!("{topic}: {e}");
            let was = conditions::get(&old.conditions, conditions::PARTITIONS_READY);
            if was.is_none_or(|c| c.reason != reason) {
                warn!(auction = %auction.name_any(), error = %e, "partition look-up failed");
                ctx.event(auction, EventType::Warning, reason, message.clone())
                    .await;
            }
            condition(
                status,
                auction,
                conditions::PARTITIONS_READY,
                state,
                reason,
                &message,
            );
        }
    }
}

/// A spec the platform (or the operator) cannot accept: say so in status and
/// an event, and do not hot-loop on it.
async fn refused(
    auction: &Auction,
    api: &Api<Auction>,
    ctx: &Context,
    mut status: AuctionStatus,
    reason: &str,
    message: String,
) -> Result<Action, Error> {
    let old = auction.status.clone().unwrap_or_default();
    if status.auction_id.is_none() {
        status.phase = Some("Failed".into());
    }
    let registered = State::from(status.auction_id.is_some());
    condition(
        &mut status,
        auction,
        conditions::REGISTERED,
        registered,
        reason,
        &message,
    );
    if old.conditions.iter().all(|c| c.message != message) {
        ctx.event(auction, EventType::Warning, reason, message.clone())
            .await;
    }
    write_status(api, &auction.name_any(), &old, &mut status).await?;
    Ok(Action::requeue(ctx.config.idle_poll))
}

async fn cleanup(auction: &Auction, ctx: &Context) -> Result<Action, Error> {
    let status = auction.status.clone().unwrap_or_default();
    if let (Some(id), OnDelete::Cancel) = (status.auction_id, auction.spec.on_delete) {
        let view = ctx.platform.fetch(id).await?;
        if matches!(view.phase.as_str(), "scheduled" | "open") {
            match ctx.platform.cancel(id).await {
                Ok(()) => {
                    ctx.event(
                        auction,
                        EventType::Normal,
                        "Cancelled",
                        format!("platform auction {id} cancelled on delete"),
                    )
                    .await;
                }
                // Closed between the fetch and the cancel: nothing left to do.
                Err(PlatformError::Refused { status: 409, .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(Action::await_change())
}

fn mirror(status: &mut AuctionStatus, view: &AuctionView) {
    status.auction_id = Some(view.id);
    status.phase = Some(capitalise(&view.phase));
    status.outcome = view.outcome.as_deref().map(capitalise);
    status.price = view.price;
    status.bid_count = view.bid_count;
    status.leader_id = view.leader_id;
    status.winner_id = view.winner_id;
    status.ends_at = chrono::DateTime::from_timestamp_millis(view.ends_at);
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// Sets one of the reconciler's conditions for the resource's generation.
fn condition(
    status: &mut AuctionStatus,
    auction: &Auction,
    type_: &str,
    state: State,
    reason: &str,
    message: &str,
) {
    let new = conditions::Set {
        type_,
        state,
        reason,
        message,
    };
    conditions::set(
        &mut status.conditions,
        new,
        auction.metadata.generation,
        chrono::Utc::now(),
    );
}

/// Derives `Ready` and writes the reconciler's part of the status by
/// server-side apply (field manager `bowchat-operator`), when it changed: a
/// no-op write would wake every watcher, and the scaler's part (`capacity`,
/// `ScalingActive`, `ScalingLimited`) is left to the scaler.
async fn write_status(
    api: &Api<Auction>,
    name: &str,
    old: &AuctionStatus,
    new: &mut AuctionStatus,
) -> Result<(), Error> {
    let (state, reason, message) = conditions::ready(&new.conditions);
    let generation = new.observed_generation;
    conditions::set(
        &mut new.conditions,
        conditions::Set {
            type_: conditions::READY,
            state,
            reason,
            message: &message,
        },
        generation,
        chrono::Utc::now(),
    );
    let part = conditions::reconciler_part(new);
    if conditions::reconciler_part(old) == part {
        return Ok(());
    }
    let patch = json!({"apiVersion": "bowchat.io/v1alpha1", "kind": "Auction", "status": part});
    api.patch_status(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}
