//! The lifecycle of the collection that holds one bundle version in Qdrant: loaded once under a
//! lock, marked complete, and garbage-collected when old. `kan index load` and the worker's
//! automatic load run this same code.
//!
//! **Lock.** Creating `<alias>-<version>` is the claim: Qdrant creates a collection once, and the
//! creator's id and a heartbeat ride in the collection's metadata from that first call. The
//! loader refreshes the heartbeat between upsert batches. A waiter measures staleness on its own
//! clock (a heartbeat value unchanged for the lease), so clocks of different pods need not
//! agree; a stale collection is taken over by rewriting the loader id and uploading again.
//!
//! **Why a takeover needs no compare-and-swap.** The version is a content hash and point ids are
//! internal item indices, so every loader writes exactly the same points: two loaders (a taker
//! racing another taker, or a presumed-dead loader that was only slow) cost a second upload,
//! never a wrong or partial collection. A collection is marked complete only by a loader that
//! has itself written every point (`wait: true`), and no incomplete collection is ever deleted
//! by a taker, so a completion mark always covers every point.
//!
//! **Serving.** A worker searches its version's collection only once it carries the completion
//! mark; a collection without Kan's metadata (loaded before the lifecycle existed) counts as
//! incomplete with a dead loader, so it is taken over, uploaded again (same points) and marked.
//!
//! **Garbage collection**, after each completed load: among the collections Kan made for this
//! alias, delete the complete ones that are neither the alias target, nor the loader's own
//! version, nor among the newest `keep` by completion time, nor served recently: a serving
//! worker stamps `kan_served_at` on its collection at most every [`SERVED_STAMP_INTERVAL`]
//! (from its readiness checks), and a stamp younger than [`SERVED_GRACE`] keeps the version.
//! Incomplete collections and collections without Kan's metadata are never deleted.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use qdrant_client::Qdrant;
use qdrant_client::qdrant::{
    CollectionInfo, CreateAliasBuilder, CreateCollection, UpdateCollectionBuilder, Value,
};
use tokio::sync::watch;

use super::{
    LoadReport, create_collection_request, index_error, payload_index_request, upsert_requests,
    upsert_with_retries, versioned_collection,
};
use crate::bundle::Catalogue;
use crate::error::{Error, Result};

/// Metadata keys Kan writes on the collections it creates.
pub const META_ALIAS: &str = "kan_alias";
pub const META_VERSION: &str = "kan_version";
pub const META_LOADER: &str = "kan_loader";
pub const META_HEARTBEAT: &str = "kan_heartbeat";
pub const META_COMPLETE: &str = "kan_complete";
pub const META_COMPLETED_AT: &str = "kan_completed_at";
pub const META_POINTS: &str = "kan_points";
pub const META_SERVED_AT: &str = "kan_served_at";

/// A serving worker stamps its collection at most this often.
pub const SERVED_STAMP_INTERVAL: Duration = Duration::from_secs(60);
/// A version stamped as served within this window is never collected (five stamps, so clocks
/// that disagree by minutes and a few failed stamps do not matter).
pub const SERVED_GRACE: Duration = Duration::from_secs(300);

/// How loading and collecting behave (`index.qdrant.collections`).
#[derive(Debug, Clone)]
pub struct Lifecycle {
    /// This loader's id, written into the lock (pod name and a per-process suffix).
    pub loader: String,
    /// A heartbeat unchanged for this long on the waiter's clock means the loader is dead.
    pub lease: Duration,
    /// Complete versions kept by garbage collection, newest first.
    pub keep_versions: usize,
    /// Points per upsert request.
    pub batch: usize,
    /// Versions stamped as served within this window are kept ([`SERVED_GRACE`]).
    pub served_grace: Duration,
}

impl Lifecycle {
    /// The lifecycle of `index.qdrant.collections` (its defaults when unset) with a fresh
    /// loader id.
    pub fn from_spec(spec: Option<&kan_api::crd::QdrantCollections>) -> Self {
        let spec = spec.cloned().unwrap_or_default();
        Self {
            loader: loader_id(),
            lease: Duration::from_secs(spec.lease_seconds.max(1) as u64),
            keep_versions: spec.keep_versions.max(1) as usize,
            batch: super::UPSERT_BATCH,
            served_grace: SERVED_GRACE,
        }
    }

    /// How often a waiter looks again, and the longest gap between heartbeats a loader aims for.
    pub fn poll(&self) -> Duration {
        (self.lease / 4).clamp(Duration::from_millis(50), Duration::from_secs(5))
    }
}

/// A loader id unique per process and per call: `$HOSTNAME` (the pod name) when set.
pub fn loader_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "kan".to_string());
    format!(
        "{host}/{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What the collection of a version looks like to a worker.
#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    Missing,
    /// Every point is in (Kan's completion mark).
    Complete {
        points: u64,
        completed_at: i64,
    },
    /// Created but not marked complete; `loader`/`heartbeat` are `None` on a collection without
    /// Kan's metadata.
    Loading {
        loader: Option<String>,
        heartbeat: Option<i64>,
    },
}

fn meta_str(meta: &HashMap<String, Value>, key: &str) -> Option<String> {
    meta.get(key).and_then(|v| v.as_str()).cloned()
}

fn meta_i64(meta: &HashMap<String, Value>, key: &str) -> Option<i64> {
    let value = meta.get(key)?;
    value
        .as_integer()
        .or_else(|| value.as_double().map(|d| d as i64))
}

/// Kan's metadata of a collection, as Qdrant reports it in the collection info.
pub fn metadata(info: &CollectionInfo) -> HashMap<String, Value> {
    info.config
        .as_ref()
        .map(|c| c.metadata.clone())
        .unwrap_or_default()
}

/// The state a collection's metadata describes.
pub fn observe(meta: &HashMap<String, Value>) -> Observed {
    if meta.get(META_COMPLETE).and_then(|v| v.as_bool()) == Some(true) {
        return Observed::Complete {
            points: meta_i64(meta, META_POINTS).unwrap_or(0).max(0) as u64,
            completed_at: meta_i64(meta, META_COMPLETED_AT).unwrap_or(0),
        };
    }
    Observed::Loading {
        loader: meta_str(meta, META_LOADER),
        heartbeat: meta_i64(meta, META_HEARTBEAT),
    }
}

/// What a worker does next about its version's collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// It is complete: serve it.
    Serve,
    /// It does not exist: create it (the claim) and load it.
    Create,
    /// Another loader's heartbeat is fresh: wait.
    Wait { loader: String },
    /// The loader is gone (stale heartbeat, or a collection nobody claimed): load it ourselves.
    TakeOver { from: Option<String> },
}

/// The lease as one waiter sees it: the last heartbeat seen and when it last changed.
#[derive(Debug, Clone, Default)]
pub struct Watch {
    seen: Option<(Option<String>, Option<i64>)>,
    since: Option<Instant>,
}

/// Decides the next step from what was observed at `now`. Pure: the lease is judged on the
/// waiter's own clock, from changes of the heartbeat it has seen.
pub fn next_step(observed: &Observed, watch: &mut Watch, now: Instant, lease: Duration) -> Step {
    match observed {
        Observed::Missing => Step::Create,
        Observed::Complete { .. } => Step::Serve,
        Observed::Loading { loader: None, .. } => Step::TakeOver { from: None },
        Observed::Loading {
            loader: Some(loader),
            heartbeat,
        } => {
            let current = Some((Some(loader.clone()), *heartbeat));
            if watch.seen != current {
                watch.seen = current;
                watch.since = Some(now);
            }
            let since = watch.since.unwrap_or(now);
            if now.saturating_duration_since(since) >= lease {
                Step::TakeOver {
                    from: Some(loader.clone()),
                }
            } else {
                Step::Wait {
                    loader: loader.clone(),
                }
            }
        }
    }
}

/// A Kan collection of one alias, as garbage collection sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub collection: String,
    pub version: String,
    /// Completion time (loader's clock, ms); `None` while incomplete.
    pub completed_at: Option<i64>,
    /// Last stamp of a serving worker (its clock, ms).
    pub served_at: Option<i64>,
}

/// The collections to delete: complete ones that are neither the alias target nor `own`'s,
/// nor stamped as served at or after `served_since` (ms), beyond the newest `keep` by
/// completion time. Pure.
pub fn to_collect(
    candidates: &[Candidate],
    alias_target: Option<&str>,
    own: &str,
    keep: usize,
    served_since: i64,
) -> Vec<String> {
    let mut complete: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| c.completed_at.is_some())
        .collect();
    complete.sort_by(|a, b| {
        b.completed_at
            .cmp(&a.completed_at)
            .then_with(|| b.collection.cmp(&a.collection))
    });
    complete
        .into_iter()
        .skip(keep)
        .filter(|c| Some(c.collection.as_str()) != alias_target && c.collection != own)
        .filter(|c| c.served_at.is_none_or(|t| t < served_since))
        .map(|c| c.collection.clone())
        .collect()
}

/// Progress of a worker's load, for `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Checking,
    Loading {
        done: usize,
        total: usize,
    },
    Waiting {
        loader: String,
    },
    Complete,
    /// The last attempt failed; the worker tries again.
    Failed(String),
}

impl Progress {
    /// Why a worker in this state is not ready (`None` when complete).
    pub fn reason(&self, collection: &str) -> Option<String> {
        match self {
            Progress::Complete => None,
            Progress::Checking => Some(format!("checking qdrant collection {collection}")),
            Progress::Loading { done, total } => Some(format!(
                "loading qdrant collection {collection} ({done} of {total} points)"
            )),
            Progress::Waiting { loader } => Some(format!(
                "waiting for {loader} to finish loading qdrant collection {collection}"
            )),
            Progress::Failed(e) => Some(format!(
                "loading qdrant collection {collection} failed, retrying: {e}"
            )),
        }
    }
}

/// What [`ensure`] needs besides the client: the version's identity and its points.
pub struct Target<'a> {
    pub alias: &'a str,
    pub version: &'a str,
    pub items: &'a Catalogue,
}

fn lock_metadata(target: &Target<'_>, loader: &str) -> HashMap<String, serde_json::Value> {
    HashMap::from([
        (META_ALIAS.to_string(), target.alias.into()),
        (META_VERSION.to_string(), target.version.into()),
        (META_LOADER.to_string(), loader.into()),
        (META_HEARTBEAT.to_string(), now_ms().into()),
        (META_COMPLETE.to_string(), false.into()),
    ])
}

/// The create request that claims a version: the collection with the claimant in its metadata.
pub fn claim_request(
    target: &Target<'_>,
    dim: u64,
    loader: &str,
) -> Result<CreateCollection, Error> {
    let mut request =
        create_collection_request(&versioned_collection(target.alias, target.version), dim);
    request.metadata = to_values(lock_metadata(target, loader));
    Ok(request)
}

fn to_values(meta: HashMap<String, serde_json::Value>) -> HashMap<String, Value> {
    meta.into_iter().map(|(k, v)| (k, Value::from(v))).collect()
}

/// Stamps the collection as served now (a serving worker, every [`SERVED_STAMP_INTERVAL`]).
pub async fn stamp_served(client: &Qdrant, collection: &str) -> Result<()> {
    update_metadata(
        client,
        collection,
        HashMap::from([(META_SERVED_AT.to_string(), now_ms().into())]),
    )
    .await
}

async fn update_metadata(
    client: &Qdrant,
    collection: &str,
    meta: HashMap<String, serde_json::Value>,
) -> Result<()> {
    client
        .update_collection(UpdateCollectionBuilder::new(collection).metadata(meta))
        .await
        .map_err(|e| index_error(&format!("writing the metadata of {collection}"), e))?;
    Ok(())
}

/// The collection's info, or `None` when it does not exist.
async fn info(client: &Qdrant, collection: &str) -> Result<Option<CollectionInfo>> {
    if !client
        .collection_exists(collection)
        .await
        .map_err(|e| index_error(&format!("checking {collection}"), e))?
    {
        return Ok(None);
    }
    match client.collection_info(collection).await {
        Ok(response) => Ok(response.result),
        // Deleted between the two calls.
        Err(qdrant_client::QdrantError::ResponseError { status })
            if status.code() as i32 == super::GRPC_NOT_FOUND =>
        {
            Ok(None)
        }
        Err(e) => Err(index_error(&format!("reading {collection}"), e)),
    }
}

/// What the collection of `target` looks like now.
pub async fn observed(client: &Qdrant, alias: &str, version: &str) -> Result<Observed> {
    Ok(
        match info(client, &versioned_collection(alias, version)).await? {
            None => Observed::Missing,
            Some(info) => observe(&metadata(&info)),
        },
    )
}

/// Makes sure the collection of `target` is complete: serves it if so, loads it if missing or
/// its loader is gone (under the lock), otherwise waits for the loader. `vectors` is called only
/// when this caller loads. Returns whether this caller loaded it. Progress goes to `progress`.
pub async fn ensure<F, Fut>(
    client: &Qdrant,
    target: &Target<'_>,
    lifecycle: &Lifecycle,
    vectors: F,
    progress: &watch::Sender<Progress>,
) -> Result<bool>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(usize, Vec<f32>)>>,
{
    let collection = versioned_collection(target.alias, target.version);
    let mut watch = Watch::default();
    let mut vectors = Some(vectors);
    let mut loaded: Option<(usize, Vec<f32>)> = None;
    loop {
        let observed = observed(client, target.alias, target.version).await?;
        let step = next_step(&observed, &mut watch, Instant::now(), lifecycle.lease);
        let claimed = match step {
            Step::Serve => {
                progress.send_replace(Progress::Complete);
                return Ok(false);
            }
            Step::Wait { loader } => {
                progress.send_replace(Progress::Waiting { loader });
                tokio::time::sleep(lifecycle.poll()).await;
                continue;
            }
            Step::Create | Step::TakeOver { .. } => step,
        };
        if loaded.is_none() {
            let Some(read) = vectors.take() else {
                return Err(Error::Index("item vectors already consumed".into()));
            };
            loaded = Some(read().await?);
        }
        let Some((dim, points)) = loaded.as_ref() else {
            continue;
        };
        match claimed {
            Step::Create => {
                let request = claim_request(target, *dim as u64, &lifecycle.loader)?;
                if let Err(e) = client.create_collection(request).await {
                    // Lost the race (or a real failure): look again; a real failure shows up
                    // as a missing collection and an error from the next call.
                    if info(client, &collection).await?.is_none() {
                        return Err(index_error(&format!("creating {collection}"), e));
                    }
                    tracing::info!(%collection, "another worker claimed the collection first");
                    continue;
                }
                tracing::info!(%collection, loader = %lifecycle.loader, "claimed the collection; loading");
            }
            Step::TakeOver { from } => {
                tracing::warn!(%collection, from = from.as_deref().unwrap_or("nobody"), loader = %lifecycle.loader, "the loader's lease ran out; taking the load over");
                update_metadata(
                    client,
                    &collection,
                    HashMap::from([
                        (META_ALIAS.to_string(), target.alias.into()),
                        (META_VERSION.to_string(), target.version.into()),
                        (META_LOADER.to_string(), lifecycle.loader.as_str().into()),
                        (META_HEARTBEAT.to_string(), now_ms().into()),
                    ]),
                )
                .await?;
            }
            Step::Serve | Step::Wait { .. } => continue,
        }
        upload(client, target, lifecycle, *dim, points, progress).await?;
        progress.send_replace(Progress::Complete);
        return Ok(true);
    }
}

/// Writes every point (heartbeats between batches), then the completion mark.
async fn upload(
    client: &Qdrant,
    target: &Target<'_>,
    lifecycle: &Lifecycle,
    dim: usize,
    vectors: &[f32],
    progress: &watch::Sender<Progress>,
) -> Result<()> {
    let collection = versioned_collection(target.alias, target.version);
    let total = target.items.len();
    progress.send_replace(Progress::Loading { done: 0, total });
    client
        .create_field_index(payload_index_request(&collection))
        .await
        .map_err(|e| index_error(&format!("indexing payload of {collection}"), e))?;
    let mut beat = Instant::now();
    let mut done = 0;
    for (i, request) in upsert_requests(&collection, target.items, dim, vectors, lifecycle.batch)
        .into_iter()
        .enumerate()
    {
        if beat.elapsed() >= lifecycle.poll() {
            heartbeat(client, &collection, &lifecycle.loader).await?;
            beat = Instant::now();
        }
        let points = request.points.len();
        upsert_with_retries(client, request)
            .await
            .map_err(|e| index_error(&format!("upserting batch {i} into {collection}"), e))?;
        done += points;
        progress.send_replace(Progress::Loading { done, total });
    }
    update_metadata(
        client,
        &collection,
        HashMap::from([
            (META_COMPLETE.to_string(), true.into()),
            (META_COMPLETED_AT.to_string(), now_ms().into()),
            (META_POINTS.to_string(), (total as i64).into()),
            (META_LOADER.to_string(), lifecycle.loader.as_str().into()),
        ]),
    )
    .await
}

async fn heartbeat(client: &Qdrant, collection: &str, loader: &str) -> Result<()> {
    update_metadata(
        client,
        collection,
        HashMap::from([
            (META_LOADER.to_string(), loader.into()),
            (META_HEARTBEAT.to_string(), now_ms().into()),
        ]),
    )
    .await
}

/// Points `alias` at the version's (complete) collection: one alias operation, which Qdrant
/// applies atomically, so outside readers switch at once.
pub async fn move_alias(client: &Qdrant, alias: &str, version: &str) -> Result<()> {
    let collection = versioned_collection(alias, version);
    client
        .create_alias(CreateAliasBuilder::new(&collection, alias))
        .await
        .map_err(|e| index_error(&format!("pointing the alias at {collection}"), e))?;
    Ok(())
}

/// Deletes old versions of `alias` by [`to_collect`]'s rule; returns the deleted collections.
pub async fn collect(
    client: &Qdrant,
    alias: &str,
    own: &str,
    keep: usize,
    served_grace: Duration,
) -> Result<Vec<String>> {
    let err = |what: &str, e| index_error(&format!("{what} (garbage collection of {alias})"), e);
    let names = client
        .list_collections()
        .await
        .map_err(|e| err("listing collections", e))?
        .collections;
    let prefix = format!("{alias}-");
    let mut candidates = Vec::new();
    for name in names.into_iter().map(|c| c.name) {
        if !name.starts_with(&prefix) {
            continue;
        }
        let Some(info) = info(client, &name).await? else {
            continue;
        };
        let meta = metadata(&info);
        // Only what Kan made for this alias (another alias may share the prefix).
        if meta_str(&meta, META_ALIAS).as_deref() != Some(alias) {
            continue;
        }
        let Some(version) = meta_str(&meta, META_VERSION) else {
            continue;
        };
        let completed_at = match observe(&meta) {
            Observed::Complete { completed_at, .. } => Some(completed_at),
            _ => None,
        };
        candidates.push(Candidate {
            collection: name,
            version,
            completed_at,
            served_at: meta_i64(&meta, META_SERVED_AT),
        });
    }
    let target = client
        .list_aliases()
        .await
        .map_err(|e| err("listing aliases", e))?
        .aliases
        .into_iter()
        .find(|a| a.alias_name == alias)
        .map(|a| a.collection_name);
    let doomed = to_collect(
        &candidates,
        target.as_deref(),
        &versioned_collection(alias, own),
        keep,
        now_ms() - served_grace.as_millis() as i64,
    );
    for collection in &doomed {
        client
            .delete_collection(collection.as_str())
            .await
            .map_err(|e| err(&format!("deleting {collection}"), e))?;
        tracing::info!(%collection, "deleted an old bundle version's collection");
    }
    Ok(doomed)
}

/// `kan index load` and a worker's load: [`ensure`], then (when this call loaded it, or
/// `always_move` asks) the alias moves to it and old versions are collected.
pub async fn load_and_publish<F, Fut>(
    client: &Qdrant,
    target: &Target<'_>,
    lifecycle: &Lifecycle,
    vectors: F,
    always_move: bool,
    progress: &watch::Sender<Progress>,
) -> Result<LoadReport>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(usize, Vec<f32>)>>,
{
    let loaded = ensure(client, target, lifecycle, vectors, progress).await?;
    let collection = versioned_collection(target.alias, target.version);
    let mut collected = Vec::new();
    if loaded || always_move {
        move_alias(client, target.alias, target.version).await?;
        collected = collect(
            client,
            target.alias,
            target.version,
            lifecycle.keep_versions,
            lifecycle.served_grace,
        )
        .await?;
    }
    Ok(LoadReport {
        collection,
        alias: target.alias.to_string(),
        points: target.items.len(),
        loaded,
        collected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loading(loader: &str, heartbeat: i64) -> Observed {
        Observed::Loading {
            loader: Some(loader.into()),
            heartbeat: Some(heartbeat),
        }
    }

    #[test]
    fn a_missing_collection_is_created_and_a_complete_one_served() {
        let now = Instant::now();
        let lease = Duration::from_secs(60);
        let mut watch = Watch::default();
        assert_eq!(
            next_step(&Observed::Missing, &mut watch, now, lease),
            Step::Create
        );
        let complete = Observed::Complete {
            points: 3,
            completed_at: 1,
        };
        assert_eq!(next_step(&complete, &mut watch, now, lease), Step::Serve);
    }

    #[test]
    fn a_fresh_heartbeat_is_waited_for_and_one_unchanged_for_the_lease_is_taken_over() {
        let t0 = Instant::now();
        let lease = Duration::from_secs(10);
        let mut watch = Watch::default();
        let wait = Step::Wait { loader: "a".into() };
        assert_eq!(next_step(&loading("a", 1), &mut watch, t0, lease), wait);
        // A heartbeat that moves keeps the lease alive however old the loader is.
        let t1 = t0 + Duration::from_secs(9);
        assert_eq!(next_step(&loading("a", 2), &mut watch, t1, lease), wait);
        let t2 = t1 + Duration::from_secs(9);
        assert_eq!(next_step(&loading("a", 2), &mut watch, t2, lease), wait);
        let t3 = t1 + Duration::from_secs(10);
        assert_eq!(
            next_step(&loading("a", 2), &mut watch, t3, lease),
            Step::TakeOver {
                from: Some("a".into())
            }
        );
        // Another loader (a taker) starts a new lease.
        assert_eq!(
            next_step(&loading("b", 2), &mut watch, t3, lease),
            Step::Wait { loader: "b".into() }
        );
    }

    #[test]
    fn a_collection_without_kans_metadata_is_taken_over_at_once() {
        let observed = observe(&HashMap::new());
        assert_eq!(
            observed,
            Observed::Loading {
                loader: None,
                heartbeat: None
            }
        );
        assert_eq!(
            next_step(
                &observed,
                &mut Watch::default(),
                Instant::now(),
                Duration::from_secs(60)
            ),
            Step::TakeOver { from: None }
        );
    }

    #[test]
    fn the_completion_mark_is_read_back_from_metadata() {
        let meta = to_values(HashMap::from([
            (META_COMPLETE.to_string(), true.into()),
            (META_POINTS.to_string(), 40.into()),
            (META_COMPLETED_AT.to_string(), 1234.into()),
        ]));
        assert_eq!(
            observe(&meta),
            Observed::Complete {
                points: 40,
                completed_at: 1234
            }
        );
        let claimed = to_values(lock_metadata(
            &Target {
                alias: "items",
                version: "v1",
                items: &Catalogue::new(vec!["i0".into()]).unwrap(),
            },
            "pod-a/1-0",
        ));
        let Observed::Loading { loader, heartbeat } = observe(&claimed) else {
            panic!("a claim is not complete")
        };
        assert_eq!(loader.as_deref(), Some("pod-a/1-0"));
        assert!(heartbeat.is_some());
    }

    fn candidate(version: &str, completed_at: Option<i64>) -> Candidate {
        Candidate {
            collection: format!("items-{version}"),
            version: version.into(),
            completed_at,
            served_at: None,
        }
    }

    #[test]
    fn collection_keeps_the_newest_versions_the_alias_target_and_the_loaders_own() {
        let all = [
            candidate("a", Some(1)),
            candidate("b", Some(2)),
            candidate("c", Some(3)),
            candidate("d", Some(4)),
            candidate("e", Some(5)),
            candidate("loading", None),
        ];
        assert_eq!(
            to_collect(&all, Some("items-e"), "items-e", 2, 0),
            ["items-c", "items-b", "items-a"]
        );
        // A rollback pointed the alias at `a`: it stays; the loader's own (`b`) too.
        assert_eq!(
            to_collect(&all, Some("items-a"), "items-b", 2, 0),
            ["items-c"]
        );
        // Nothing beyond keep: nothing deleted; incomplete never.
        assert!(to_collect(&all, None, "x", 5, 0).is_empty());
        assert!(to_collect(&all[5..], None, "x", 0, 0).is_empty());
    }

    #[test]
    fn a_version_stamped_as_served_within_the_grace_window_is_never_collected() {
        let mut all = vec![
            candidate("a", Some(1)),
            candidate("b", Some(2)),
            candidate("c", Some(3)),
        ];
        all[0].served_at = Some(1_000);
        assert_eq!(to_collect(&all, None, "x", 1, 1_000), ["items-b"]);
        assert_eq!(
            to_collect(&all, None, "x", 1, 1_001),
            ["items-b", "items-a"]
        );
    }

    #[test]
    fn progress_names_the_collection_and_who_loads_it() {
        assert_eq!(Progress::Complete.reason("items-v1"), None);
        let waiting = Progress::Waiting {
            loader: "pod-a/1-0".into(),
        }
        .reason("items-v1")
        .unwrap();
        assert!(waiting.contains("pod-a/1-0") && waiting.contains("items-v1"));
        let loading = Progress::Loading {
            done: 10,
            total: 40,
        }
        .reason("items-v1")
        .unwrap();
        assert!(loading.contains("10 of 40"));
    }
}
