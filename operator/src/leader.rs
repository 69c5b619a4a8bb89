//! Leader election on a `coordination.k8s.io/v1` Lease (kube-lease-manager): only the holder
//! runs controllers, so two replicas never both write. Losing the Lease stops the controllers
//! and ends the process with an error; Kubernetes restarts it as a standby.

use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;

use crate::error::{Error, Result};

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
}

/// A started election: a channel that is `true` while this instance leads.
pub struct Election {
    pub leading: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<kube_lease_manager::Result<LeaseManager>>,
    lease: String,
}

impl Election {
    /// Starts competing for the Lease (created if missing).
    pub async fn start(client: kube::Client, cfg: &LeaderElection) -> Result<Self> {
        let lease = format!("{}/{}", cfg.lease_namespace, cfg.lease_name);
        let manager = LeaseManagerBuilder::new(client, &cfg.lease_name)
            .with_namespace(&cfg.lease_namespace)
            .with_identity(&cfg.identity)
            .with_duration(cfg.duration_s)
            .with_grace(cfg.grace_s)
            .build()
            .await
            .map_err(|e| Error::LeaderElection {
                lease: lease.clone(),
                message: e.to_string(),
            })?;
        let (leading, task) = manager.watch().await;
        Ok(Self {
            leading,
            task,
            lease,
        })
    }

    /// Waits until this instance leads.
    pub async fn acquired(&mut self) -> Result<()> {
        self.leading
            .wait_for(|leading| *leading)
            .await
            .map(|_| ())
            .map_err(|_| Error::LeaderElection {
                lease: self.lease.clone(),
                message: "election task ended".into(),
            })
    }

    /// Resolves when leadership is lost (or the election task ends).
    pub async fn lost(&mut self) -> Error {
        let _ = self.leading.wait_for(|leading| !*leading).await;
        Error::LostLeadership {
            lease: self.lease.clone(),
        }
    }

    /// Releases the Lease so a standby takes over at once instead of after expiry.
    pub async fn release(self) {
        let Self {
            leading,
            task,
            lease,
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
