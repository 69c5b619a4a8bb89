//! Leader election on a `coordination.k8s.io/v1` Lease (kube-lease-manager): only the holder
//! runs controllers, so two replicas never both write. Losing the Lease stops the controllers
//! and ends the process with an error; Kubernetes restarts it as a standby.
//!
//! Timing (the defaults are those of client-go's leader election):
//!
//! * the holder renews the Lease `grace_s` before it expires, every `duration_s - grace_s`;
//! * a standby reads the Lease every `retry_s`: when the holder released it (a leader that
//!   stops releases it on the way out) or it expired (a leader that crashed), the standby
//!   competes at once. A takeover therefore takes at most `retry_s` (plus a request) after a
//!   clean stop, and at most `duration_s + retry_s` (plus up to a second of the library's
//!   random back-off) after a crash.
//!
//! kube-lease-manager alone would have a standby sleep until the expiry it last saw, so a
//! released Lease waited for up to `duration_s - grace_s`; the standby's own reads close that
//! gap by restarting the manager, whose first step reads the Lease again.

use std::time::{Duration, SystemTime};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use kube::Api;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;

use crate::error::{Error, Result};

/// Seconds a Lease stays valid without renewal, by default.
pub const DEFAULT_DURATION_S: u64 = 15;
/// Seconds before expiry at which the holder renews, by default.
pub const DEFAULT_GRACE_S: u64 = 5;
/// Seconds between a standby's reads of the Lease, by default.
pub const DEFAULT_RETRY_S: u64 = 2;

/// Where and how to hold the Lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderElection {
    pub lease_name: String,
    pub lease_namespace: String,
    /// Unique per instance, usually the pod name.
    pub identity: String,
    /// Seconds a lock stays valid without renewal.
    pub duration_s: u64,
    /// Seconds before expiry at which the holder renews.
    pub grace_s: u64,
    /// Seconds between a standby's reads of the Lease.
    pub retry_s: u64,
}

impl LeaderElection {
    /// Settings with the default timing.
    pub fn new(lease_name: &str, lease_namespace: &str, identity: &str) -> Self {
        Self {
            lease_name: lease_name.into(),
            lease_namespace: lease_namespace.into(),
            identity: identity.into(),
            duration_s: DEFAULT_DURATION_S,
            grace_s: DEFAULT_GRACE_S,
            retry_s: DEFAULT_RETRY_S,
        }
    }

    /// Why this timing cannot work, if it cannot.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.grace_s == 0 || self.grace_s >= self.duration_s {
            return Err(format!(
                "the renewal grace ({} s) must be at least 1 s and below the lease duration ({} s)",
                self.grace_s, self.duration_s
            ));
        }
        if self.retry_s == 0 || self.retry_s > self.duration_s {
            return Err(format!(
                "the standby retry period ({} s) must be at least 1 s and at most the lease duration ({} s)",
                self.retry_s, self.duration_s
            ));
        }
        Ok(())
    }
}

/// True when a standby should compete for a Lease in this state: nobody holds it (released),
/// or its holder let it expire. A Lease without a spec is free too.
pub fn takeover_due(spec: Option<&LeaseSpec>, now: SystemTime) -> bool {
    let Some(spec) = spec else {
        return true;
    };
    if spec.holder_identity.as_deref().is_none_or(str::is_empty) {
        return true;
    }
    match (&spec.renew_time, spec.lease_duration_seconds) {
        (Some(renewed), Some(duration)) => {
            let renewed: SystemTime = renewed.0.into();
            let seconds = u64::try_from(duration).unwrap_or(0);
            renewed
                .checked_add(Duration::from_secs(seconds))
                .is_none_or(|expiry| expiry < now)
        }
        // A holder without a renewal time or duration can never be shown to be alive.
        _ => true,
    }
}

/// A started election: a channel that is `true` while this instance leads.
pub struct Election {
    pub leading: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<kube_lease_manager::Result<LeaseManager>>,
    lease: String,
    client: kube::Client,
    cfg: LeaderElection,
}

impl Election {
    /// Starts competing for the Lease (created if missing).
    pub async fn start(client: kube::Client, cfg: &LeaderElection) -> Result<Self> {
        let lease = format!("{}/{}", cfg.lease_namespace, cfg.lease_name);
        let (leading, task) = manager(&client, cfg, &lease).await?.watch().await;
        Ok(Self {
            leading,
            task,
            lease,
            client,
            cfg: cfg.clone(),
        })
    }

    /// Waits until this instance leads, reading the Lease every `retry_s` meanwhile.
    pub async fn acquired(&mut self) -> Result<()> {
        let retry = Duration::from_secs(self.cfg.retry_s);
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), &self.cfg.lease_namespace);
        loop {
            if *self.leading.borrow_and_update() {
                return Ok(());
            }
            tokio::select! {
                changed = self.leading.changed() => {
                    changed.map_err(|_| self.ended())?;
                    continue;
                }
                _ = tokio::time::sleep(retry) => {}
            }
            // Errors here are the manager's to report and retry; this read only shortens waits.
            let Ok(lease) = leases.get_opt(&self.cfg.lease_name).await else {
                continue;
            };
            let free = lease.is_none_or(|l| takeover_due(l.spec.as_ref(), SystemTime::now()));
            if free && !*self.leading.borrow() {
                tracing::debug!(lease = %self.lease, "lease free or expired: competing now");
                // The manager's task only sleeps (until the expiry it last saw) while another
                // instance holds the Lease; aborting it there releases nothing. Its successor
                // starts by reading the Lease and locks it if it is still free.
                self.task.abort();
                let (leading, task) = manager(&self.client, &self.cfg, &self.lease)
                    .await?
                    .watch()
                    .await;
                self.leading = leading;
                self.task = task;
            }
        }
    }

    fn ended(&self) -> Error {
        Error::LeaderElection {
            lease: self.lease.clone(),
            message: "election task ended".into(),
        }
    }

    /// Resolves when leadership is lost (or the election task ends).
    pub async fn lost(&mut self) -> Error {
        let _ = self.leading.wait_for(|leading| !*leading).await;
        Error::LostLeadership {
            lease: self.lease.clone(),
        }
    }

    /// Releases the Lease if this instance holds it, so a standby takes over within its retry
    /// period instead of after expiry.
    pub async fn release(self) {
        let Self {
            leading,
            task,
            lease,
            ..
        } = self;
        let held = *leading.borrow();
        drop(leading); // closing the channel makes the task release the lock and return
        match task.await {
            Ok(Ok(_)) if held => tracing::info!(%lease, "released the lease"),
            // A standby leaving, or a leader that already lost it: nothing was released.
            Ok(Ok(_)) => tracing::info!(%lease, "left the election without holding the lease"),
            Ok(Err(err)) => tracing::warn!(%lease, error = %err, "releasing the lease failed"),
            Err(err) => tracing::warn!(%lease, error = %err, "lease task panicked"),
        }
    }
}

async fn manager(client: &kube::Client, cfg: &LeaderElection, lease: &str) -> Result<LeaseManager> {
    LeaseManagerBuilder::new(client.clone(), &cfg.lease_name)
        .with_namespace(&cfg.lease_namespace)
        .with_identity(&cfg.identity)
        .with_duration(cfg.duration_s)
        .with_grace(cfg.grace_s)
        .build()
        .await
        .map_err(|e| Error::LeaderElection {
            lease: lease.to_string(),
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    fn held(renewed_s_ago: u64, duration: i32, now: SystemTime) -> LeaseSpec {
        let renewed = now - Duration::from_secs(renewed_s_ago);
        LeaseSpec {
            holder_identity: Some("other".into()),
            lease_duration_seconds: Some(duration),
            renew_time: Some(MicroTime(
                k8s_openapi::jiff::Timestamp::try_from(renewed).expect("timestamp"),
            )),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_standby_competes_for_a_released_or_expired_lease_and_not_for_a_renewed_one() {
        let now = SystemTime::now();
        assert!(takeover_due(None, now), "no spec");
        assert!(takeover_due(Some(&LeaseSpec::default()), now), "released");
        let released = LeaseSpec {
            holder_identity: Some(String::new()),
            ..held(1, 15, now)
        };
        assert!(takeover_due(Some(&released), now), "empty holder");
        assert!(
            !takeover_due(Some(&held(3, 15, now)), now),
            "renewed 3 s ago"
        );
        assert!(takeover_due(Some(&held(16, 15, now)), now), "expired");
        let no_renewal = LeaseSpec {
            renew_time: None,
            ..held(0, 15, now)
        };
        assert!(takeover_due(Some(&no_renewal), now), "never renewed");
    }

    #[test]
    fn election_timing_is_checked() {
        let ok = LeaderElection::new("l", "ns", "me");
        assert_eq!(ok.check(), Ok(()));
        let grace = LeaderElection {
            grace_s: 15,
            ..ok.clone()
        };
        assert!(grace.check().expect_err("grace").contains("grace (15 s)"));
        let retry = LeaderElection { retry_s: 0, ..ok };
        assert!(
            retry
                .check()
                .expect_err("retry")
                .contains("retry period (0 s)")
        );
    }
}
