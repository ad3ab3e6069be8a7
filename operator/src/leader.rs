//! Leader election on a `coordination.k8s.io/v1` Lease, so that several
//! operator replicas can run and only one acts. The holder renews the Lease
//! every third of its duration; another replica takes it over once it has not
//! been renewed for the whole duration. Writes carry the Lease's
//! `resourceVersion`, so two candidates cannot both win one round.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::Client;
use tokio::sync::watch;
use tracing::{info, warn};

#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This replica's identity (its Pod name).
    pub identity: String,
    pub duration: Duration,
}

/// One round: takes or renews the Lease; true when this replica holds it afterwards.
pub async fn try_acquire(api: &Api<Lease>, config: &LeaseConfig) -> Result<bool, kube::Error> {
    let now = k8s_openapi::jiff::Timestamp::now();
    let seconds = config.duration.as_secs().max(1) as i32;
    let spec = |transitions: i32, acquired: Option<MicroTime>| LeaseSpec {
        holder_identity: Some(config.identity.clone()),
        lease_duration_seconds: Some(seconds),
        acquire_time: acquired.or(Some(MicroTime(now))),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    };
    match api.get_opt(&config.name).await? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(config.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(spec(0, None)),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
        Some(mut lease) => {
            let current = lease.spec.clone().unwrap_or_default();
            let mine = current.holder_identity.as_deref() == Some(config.identity.as_str());
            let duration = i64::from(current.lease_duration_seconds.unwrap_or(seconds));
            let expired = current
                .renew_time
                .as_ref()
                .is_none_or(|t| now.as_second() - t.0.as_second() > duration);
            if !mine && !expired {
                return Ok(false);
            }
            let transitions = current.lease_transitions.unwrap_or(0) + i32::from(!mine);
            let acquired = if mine {
                current.acquire_time.clone()
            } else {
                None
            };
            lease.spec = Some(spec(transitions, acquired));
            // `replace` sends the resourceVersion we read: a concurrent writer makes it 409.
            match api
                .replace(&config.name, &PostParams::default(), &lease)
                .await
            {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
    }
}

/// Campaigns forever in the background; the receiver says whether this replica leads.
pub fn campaign(client: Client, config: LeaseConfig) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    tokio::spawn(async move {
        let mut renewed: Option<tokio::time::Instant> = None;
        loop {
            let leading = match try_acquire(&api, &config).await {
                Ok(held) => {
                    renewed = held.then(tokio::time::Instant::now);
                    held
                }
                // A failed round is not a lost Lease: nobody else can take it
                // before it expires, so a holder keeps leading for two thirds
                // of the duration (a margin for clock and request delays).
                Err(e) => {
                    warn!(error = %e, "lease round failed");
                    renewed.is_some_and(|at| at.elapsed() < config.duration * 2 / 3)
                }
            };
            if leading != *tx.borrow() {
                info!(identity = %config.identity, leading, "leadership changed");
            }
            if tx.send(leading).is_err() {
                return;
            }
            tokio::time::sleep(config.duration / 3).await;
        }
    });
    rx
}
