//! The Qdrant backend: loading a bundle's item vectors into the collection of its version then
//! pointing the alias at it (`kan index load`), and searching from the worker.
//!
//! A worker searches `<alias>-<its bundle version>`, never the alias: the alias is for readers
//! outside Kan and moves as soon as a newer bundle is loaded, while a worker still serving the
//! older bundle encodes users with the older model and maps point ids through the older
//! catalogue. Loading never deletes what serves; [`collections`] holds the lifecycle: the lock
//! under which the first worker of a version loads its collection, the completion mark workers
//! wait for, and the garbage collection of old versions.
//!
//! Point ids are internal item indices; every point carries its external id in the `item_id`
//! payload, which the worker maps back through its own catalogue (a hit the catalogue does not
//! know is dropped).
//!
//! Request building is kept in pure functions (`*_request`) so it can be tested without a server.

pub mod collections;

use kan_core::ItemSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use qdrant_client::Qdrant;
use qdrant_client::qdrant::{
    Condition, CreateCollection, CreateCollectionBuilder, CreateFieldIndexCollection,
    CreateFieldIndexCollectionBuilder, Distance, FieldType, Filter, PayloadIncludeSelector,
    PointStruct, QueryBatchPoints, QueryPoints, QueryPointsBuilder, ScoredPoint,
    SearchParamsBuilder, UpsertPoints, UpsertPointsBuilder, VectorParamsBuilder,
    point_id::PointIdOptions,
};

use kan_api::crd::QdrantSearch;

use self::collections::{Lifecycle, Observed, Progress, Target};
use super::{Hit, SearchParams, VectorIndex};
use crate::bundle::{Bundle, Catalogue};
use crate::error::{Error, Result};

/// Payload field holding the external item id.
pub const ITEM_ID_FIELD: &str = "item_id";
/// Environment variable with the Qdrant API key (fed by a Secret).
pub const API_KEY_ENV: &str = "QDRANT_API_KEY";
/// Points per upsert request.
pub const UPSERT_BATCH: usize = 1000;
/// Attempts per upsert batch before loading fails.
pub const UPSERT_ATTEMPTS: u32 = 4;

/// gRPC status codes (grpc/grpc doc/statuscodes.md) that mean the worker's own configuration
/// is wrong: retrying does not help.
const GRPC_INVALID_ARGUMENT: i32 = 3;
const GRPC_PERMISSION_DENIED: i32 = 7;
const GRPC_UNAUTHENTICATED: i32 = 16;
const GRPC_NOT_FOUND: i32 = 5;

/// A Qdrant failure as the worker reports it: `context` plus the server's code and message
/// (never the gRPC metadata). A refused API key or a request the collection cannot take (wrong
/// dimension) is [`Error::IndexConfig`]; the rest is [`Error::Index`].
pub fn index_error(context: &str, e: qdrant_client::QdrantError) -> Error {
    use qdrant_client::QdrantError as Q;
    let status = match &e {
        Q::ResponseError { status } | Q::ResourceExhaustedError { status, .. } => status,
        other => return Error::Index(format!("{context}: {other}")),
    };
    let code = status.code();
    let message = format!("{context}: {code}: {}", status.message());
    match code as i32 {
        GRPC_UNAUTHENTICATED | GRPC_PERMISSION_DENIED => Error::IndexConfig(format!(
            "{message} (check the API key: index.qdrant.apiKeySecret, {API_KEY_ENV})"
        )),
        GRPC_INVALID_ARGUMENT => Error::IndexConfig(message),
        _ => Error::Index(message),
    }
}

/// Timeout of each call a worker makes while loading its collection (upserts of a batch).
pub const LOAD_CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// gRPC codes worth one more search attempt: the server or the connection hiccuped. The client
/// already re-dials once on UNAVAILABLE/INTERNAL/UNKNOWN/CANCELLED; a second failure, an
/// overloaded server or a server-side deadline still gets one retry from the worker.
pub fn is_transient(e: &qdrant_client::QdrantError) -> bool {
    use qdrant_client::QdrantError as Q;
    // CANCELLED, UNKNOWN, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, INTERNAL, UNAVAILABLE.
    const TRANSIENT: [i32; 7] = [1, 2, 4, 8, 10, 13, 14];
    match e {
        Q::ResourceExhaustedError { .. } => true,
        Q::ResponseError { status } => TRANSIENT.contains(&(status.code() as i32)),
        _ => false,
    }
}

/// The budget of the one retry after a transient failure: what is left of the search's
/// deadline, when that is at least a quarter of it (5 ms at least); `None`: no retry.
pub fn retry_budget(deadline: Duration, elapsed: Duration) -> Option<Duration> {
    let left = deadline.saturating_sub(elapsed);
    (left >= (deadline / 4).max(Duration::from_millis(5))).then_some(left)
}

/// Connects to Qdrant at `url` (gRPC, e.g. `http://qdrant:6334`) with the API key from
/// [`API_KEY_ENV`] when set.
pub fn connect(url: &str, timeout: Duration) -> Result<Qdrant> {
    let api_key = std::env::var(API_KEY_ENV).ok().filter(|k| !k.is_empty());
    Qdrant::from_url(url)
        .api_key(api_key)
        .timeout(timeout)
        .connect_timeout(timeout.max(Duration::from_secs(1)))
        // HTTP/2 pings while idle keep the connection open, so the first search after a quiet
        // spell does not pay for a new one.
        .keep_alive_while_idle()
        .skip_compatibility_check()
        .build()
        .map_err(|e| Error::Index(format!("connecting to qdrant at {url}: {e}")))
}

/// The search request: nearest neighbours of `query`, excluded ids filtered server-side.
pub fn search_request(
    collection: &str,
    query: &[f32],
    params: SearchParams<'_>,
    timeout: Duration,
) -> QueryPoints {
    let mut builder = QueryPointsBuilder::new(collection)
        .query(query.to_vec())
        .limit(params.limit as u64)
        .with_payload(PayloadIncludeSelector::new(vec![ITEM_ID_FIELD.to_string()]))
        .timeout(timeout.as_secs().max(1));
    if let Some(t) = params.score_threshold {
        builder = builder.score_threshold(t);
    }
    if !params.exclude.is_empty() {
        let mut ids: Vec<u64> = params.exclude.iter().map(|&i| i as u64).collect();
        ids.sort_unstable();
        builder = builder.filter(Filter::must_not([Condition::has_id(ids)]));
    }
    builder.build()
}

/// One request holding the search of each of a multi-interest user's vectors (one round trip
/// instead of K), each with the queue's search parameters.
pub fn search_batch_request(
    collection: &str,
    queries: &[Vec<f32>],
    params: SearchParams<'_>,
    search: Option<&QdrantSearch>,
    timeout: Duration,
) -> QueryBatchPoints {
    QueryBatchPoints {
        collection_name: collection.to_string(),
        query_points: queries
            .iter()
            .map(|q| with_search_params(search_request(collection, q, params, timeout), search))
            .collect(),
        read_consistency: None,
        timeout: Some(timeout.as_secs().max(1)),
    }
}

/// Adds the queue's search parameters (`index.qdrant.search`) to a query; none: Qdrant's.
pub fn with_search_params(mut request: QueryPoints, search: Option<&QdrantSearch>) -> QueryPoints {
    if let Some(search) = search {
        let mut params = SearchParamsBuilder::default().exact(search.exact);
        if let Some(ef) = search.hnsw_ef {
            params = params.hnsw_ef(ef.max(1) as u64);
        }
        request.params = Some(params.build());
    }
    request
}

/// The name of the physical collection holding one bundle version behind `alias`.
pub fn versioned_collection(alias: &str, version: &str) -> String {
    format!("{alias}-{version}")
}

/// Creates a cosine collection of `dim`-dimensional vectors.
pub fn create_collection_request(name: &str, dim: u64) -> CreateCollection {
    CreateCollectionBuilder::new(name)
        .vectors_config(VectorParamsBuilder::new(dim, Distance::Cosine))
        .build()
}

/// A keyword payload index on the item id, so filters on it stay fast.
pub fn payload_index_request(collection: &str) -> CreateFieldIndexCollection {
    CreateFieldIndexCollectionBuilder::new(collection, ITEM_ID_FIELD, FieldType::Keyword)
        .wait(true)
        .build()
}

/// Upsert requests of at most `batch` points each, covering every item once.
pub fn upsert_requests(
    collection: &str,
    items: &Catalogue,
    dim: usize,
    vectors: &[f32],
    batch: usize,
) -> Vec<UpsertPoints> {
    let points: Vec<PointStruct> = vectors
        .chunks_exact(dim.max(1))
        .enumerate()
        .map(|(i, v)| {
            let id = items.id(i as u32).unwrap_or_default().to_string();
            PointStruct::new(i as u64, v.to_vec(), [(ITEM_ID_FIELD, id.into())])
        })
        .collect();
    points
        .chunks(batch.max(1))
        .map(|chunk| {
            UpsertPointsBuilder::new(collection, chunk.to_vec())
                .wait(true)
                .build()
        })
        .collect()
}

/// Maps scored points back to internal item indices through the worker's catalogue; points whose
/// id is unknown to the bundle being served are dropped.
pub fn hits_from_points(points: Vec<ScoredPoint>, items: &Catalogue) -> Vec<Hit> {
    points
        .into_iter()
        .filter_map(|p| {
            let item = match p.payload.get(ITEM_ID_FIELD).and_then(|v| v.as_str()) {
                Some(id) => items.get(id)?,
                None => match p.id?.point_id_options? {
                    PointIdOptions::Num(n) if (n as usize) < items.len() => n as u32,
                    _ => return None,
                },
            };
            Some(Hit {
                item,
                score: p.score,
            })
        })
        .collect()
}

/// Searches one Qdrant collection (a worker's: the collection of its bundle version).
pub struct QdrantIndex {
    client: Qdrant,
    collection: String,
    timeout: Duration,
    search: Option<QdrantSearch>,
    items: Arc<Catalogue>,
    /// Set when this worker loads its collection itself ([`QdrantIndex::loading`]).
    progress: Option<tokio::sync::watch::Receiver<Progress>>,
    loader: Option<tokio::task::AbortHandle>,
    /// When this worker last stamped its collection as served (garbage collection keeps it).
    stamped: std::sync::Mutex<Option<Instant>>,
}

impl QdrantIndex {
    pub fn new(
        url: &str,
        collection: &str,
        timeout: Duration,
        search: Option<QdrantSearch>,
        items: Arc<Catalogue>,
    ) -> Result<Self> {
        Ok(Self {
            client: connect(url, timeout)?,
            collection: collection.to_string(),
            timeout,
            search,
            items,
            progress: None,
            loader: None,
            stamped: std::sync::Mutex::new(None),
        })
    }

    /// Makes sure the collection of `bundle`'s version behind `alias` is complete, in the
    /// background (see [`collections`]): loads it when missing or abandoned, else waits for its
    /// loader. Until then [`VectorIndex::check`] says why the index is not ready and searches
    /// fail. Must run inside a tokio runtime; the load stops when the index is dropped.
    pub fn loading(
        mut self,
        url: &str,
        alias: &str,
        bundle: Arc<Bundle>,
        lifecycle: Lifecycle,
    ) -> Result<Self> {
        let client = connect(url, LOAD_CALL_TIMEOUT)?;
        let (progress, receiver) = tokio::sync::watch::channel(Progress::Checking);
        let alias = alias.to_string();
        let task = tokio::spawn(async move {
            let mut backoff = Duration::from_secs(1);
            loop {
                let target = Target {
                    alias: &alias,
                    version: bundle.version(),
                    items: &bundle.items,
                };
                let source = bundle.clone();
                let vectors = || async move {
                    tokio::task::spawn_blocking(move || source.item_vectors())
                        .await
                        .map_err(|e| Error::Index(format!("reading item vectors: {e}")))?
                };
                let outcome = collections::load_and_publish(
                    &client, &target, &lifecycle, vectors, false, &progress,
                )
                .await;
                match outcome {
                    Ok(report) => {
                        tracing::info!(collection = %report.collection, loaded = report.loaded, collected = ?report.collected, "qdrant collection complete");
                        return;
                    }
                    // Complete, but moving the alias or collecting failed: serve anyway.
                    Err(e) if *progress.borrow() == Progress::Complete => {
                        tracing::warn!(error = %e, "qdrant collection complete; moving the alias or collecting old versions failed");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in = ?backoff, "loading the qdrant collection failed");
                        progress.send_replace(Progress::Failed(e.to_string()));
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(60));
                    }
                }
            }
        });
        self.progress = Some(receiver);
        self.loader = Some(task.abort_handle());
        Ok(self)
    }

    /// Why this worker's own load is not done yet, if it loads.
    fn loading_reason(&self) -> Option<String> {
        self.progress
            .as_ref()
            .and_then(|p| p.borrow().reason(&self.collection))
    }

    /// Stamps the collection as served, at most every [`collections::SERVED_STAMP_INTERVAL`],
    /// off the readiness path (a failed stamp is tried again an interval later).
    fn stamp_served(&self) {
        {
            let mut stamped = self.stamped.lock().unwrap_or_else(|p| p.into_inner());
            if stamped.is_some_and(|t| t.elapsed() < collections::SERVED_STAMP_INTERVAL) {
                return;
            }
            *stamped = Some(Instant::now());
        }
        let client = self.client.clone();
        let collection = self.collection.clone();
        tokio::spawn(async move {
            if let Err(e) = collections::stamp_served(&client, &collection).await {
                tracing::debug!(error = %e, "could not stamp the qdrant collection as served");
            }
        });
    }

    async fn query_once(
        &self,
        request: QueryPoints,
        timeout: Duration,
    ) -> std::result::Result<qdrant_client::qdrant::QueryResponse, Option<qdrant_client::QdrantError>>
    {
        match tokio::time::timeout(timeout, self.client.query(request)).await {
            Err(_) => Err(None),
            Ok(result) => result.map_err(Some),
        }
    }
}

impl Drop for QdrantIndex {
    fn drop(&mut self) {
        if let Some(loader) = &self.loader {
            loader.abort();
        }
    }
}

impl VectorIndex for QdrantIndex {
    fn name(&self) -> &'static str {
        "qdrant"
    }

    fn search<'a>(
        &'a self,
        query: &'a [f32],
        params: SearchParams<'a>,
    ) -> BoxFuture<'a, Result<Vec<Hit>>> {
        Box::pin(async move {
            if let Some(reason) = self.loading_reason() {
                return Err(Error::Index(reason));
            }
            let request = with_search_params(
                search_request(&self.collection, query, params, self.timeout),
                self.search.as_ref(),
            );
            let started = Instant::now();
            let mut outcome = self.query_once(request.clone(), self.timeout).await;
            // One retry within the deadline after a transient failure.
            if let Err(Some(e)) = &outcome
                && is_transient(e)
                && let Some(left) = retry_budget(self.timeout, started.elapsed())
            {
                tracing::debug!(error = %e, ?left, "qdrant search failed; retrying once");
                metrics::counter!(crate::metrics::QDRANT_RETRIES).increment(1);
                outcome = self.query_once(request, left).await;
            }
            let response = outcome.map_err(|e| match e {
                None => Error::Index(format!("qdrant search timed out after {:?}", self.timeout)),
                Some(e) => index_error(&format!("qdrant search in {}", self.collection), e),
            })?;
            let exclude: &ItemSet = params.exclude;
            Ok(hits_from_points(response.result, &self.items)
                .into_iter()
                .filter(|h| !exclude.contains(&h.item))
                .collect())
        })
    }

    fn search_many<'a>(
        &'a self,
        queries: &'a [Vec<f32>],
        params: SearchParams<'a>,
    ) -> BoxFuture<'a, Result<Vec<Vec<Hit>>>> {
        Box::pin(async move {
            let request = search_batch_request(
                &self.collection,
                queries,
                params,
                self.search.as_ref(),
                self.timeout,
            );
            let call = self.client.query_batch(request);
            let response = tokio::time::timeout(self.timeout, call)
                .await
                .map_err(|_| {
                    Error::Index(format!("qdrant search timed out after {:?}", self.timeout))
                })?
                .map_err(|e| index_error(&format!("qdrant search in {}", self.collection), e))?;
            if response.result.len() != queries.len() {
                return Err(Error::Index(format!(
                    "qdrant answered {} lists for {} queries in {}",
                    response.result.len(),
                    queries.len(),
                    self.collection
                )));
            }
            let exclude: &ItemSet = params.exclude;
            Ok(response
                .result
                .into_iter()
                .map(|list| {
                    hits_from_points(list.result, &self.items)
                        .into_iter()
                        .filter(|h| !exclude.contains(&h.item))
                        .collect()
                })
                .collect())
        })
    }

    fn check(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            if let Some(reason) = self.loading_reason() {
                return Err(Error::Index(reason));
            }
            let call = self.client.collection_info(self.collection.as_str());
            let info = tokio::time::timeout(self.timeout.max(Duration::from_secs(1)), call)
                .await
                .map_err(|_| Error::Index("qdrant did not answer in time".to_string()))?
                .map_err(|e| {
                    index_error(
                        &format!(
                            "qdrant collection {} (this bundle version's; `kan index load` creates it)",
                            self.collection
                        ),
                        e,
                    )
                })?;
            let meta = info
                .result
                .as_ref()
                .map(collections::metadata)
                .unwrap_or_default();
            match collections::observe(&meta) {
                Observed::Complete { .. } => {
                    self.stamp_served();
                    Ok(())
                }
                _ => Err(Error::Index(format!(
                    "qdrant collection {} is not complete yet (a load is running or was cut off; `kan index load` or the first worker of the version completes it)",
                    self.collection
                ))),
            }
        })
    }

    fn loaded(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let Some(mut progress) = self.progress.clone() else {
                return Ok(());
            };
            loop {
                match &*progress.borrow_and_update() {
                    Progress::Complete => return Ok(()),
                    Progress::Failed(e) => return Err(Error::Index(e.clone())),
                    _ => {}
                }
                if progress.changed().await.is_err() {
                    return Err(Error::Index(format!(
                        "the load of qdrant collection {} stopped",
                        self.collection
                    )));
                }
            }
        })
    }
}

/// What [`load_bundle`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    pub collection: String,
    pub alias: String,
    pub points: usize,
    /// This call uploaded the points (false: the collection was already complete).
    pub loaded: bool,
    /// Old versions' collections deleted afterwards.
    pub collected: Vec<String>,
}

/// `kan index load`: makes the collection `<alias>-<version>` complete under the lifecycle's
/// lock (uploading only when it is missing or its loader is gone; see [`collections`]), moves
/// `alias` to it in one alias operation (Qdrant reassigns an existing alias atomically) and
/// collects old versions. Never deletes the collection of the version being loaded.
pub async fn load_bundle(
    client: &Qdrant,
    alias: &str,
    version: &str,
    items: &Catalogue,
    dim: usize,
    vectors: &[f32],
    lifecycle: &Lifecycle,
) -> Result<LoadReport> {
    let (progress, _) = tokio::sync::watch::channel(Progress::Checking);
    let target = Target {
        alias,
        version,
        items,
    };
    let vectors = || async move { Ok((dim, vectors.to_vec())) };
    collections::load_and_publish(client, &target, lifecycle, vectors, true, &progress).await
}

async fn upsert_with_retries(
    client: &Qdrant,
    request: UpsertPoints,
) -> Result<(), qdrant_client::QdrantError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match client.upsert_points(request.clone()).await {
            Ok(_) => return Ok(()),
            Err(e) if attempt >= UPSERT_ATTEMPTS => return Err(e),
            Err(e) => {
                let backoff = Duration::from_millis(200 * 2u64.pow(attempt - 1));
                tracing::warn!(attempt, ?backoff, error = %e, "qdrant upsert failed, retrying");
                tokio::time::sleep(backoff).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use qdrant_client::qdrant::{
        condition::ConditionOneOf, query::Variant, vector_input::Variant as VectorVariant,
    };

    use super::*;

    fn catalogue(n: usize) -> Catalogue {
        Catalogue::new((0..n).map(|i| format!("i{i}")).collect()).unwrap()
    }

    #[test]
    fn search_requests_carry_limit_threshold_and_excluded_ids() {
        let exclude = ItemSet::from_iter([7, 3]);
        let req = search_request(
            "movies",
            &[0.6, 0.8],
            SearchParams {
                limit: 42,
                score_threshold: Some(0.25),
                exclude: &exclude,
            },
            Duration::from_millis(30),
        );
        assert_eq!(req.collection_name, "movies");
        assert_eq!(req.limit, Some(42));
        assert_eq!(req.score_threshold, Some(0.25));
        assert_eq!(req.timeout, Some(1));
        let Some(Variant::Nearest(input)) = req.query.and_then(|q| q.variant) else {
            panic!("not a nearest query")
        };
        let Some(VectorVariant::Dense(dense)) = input.variant else {
            panic!("not a dense vector")
        };
        assert_eq!(dense.data, vec![0.6, 0.8]);
        let filter = req.filter.expect("exclusions become a filter");
        assert!(filter.must.is_empty());
        let Some(ConditionOneOf::HasId(has_id)) = filter.must_not[0].condition_one_of.clone()
        else {
            panic!("exclusions are a has_id condition")
        };
        let ids: Vec<_> = has_id
            .has_id
            .iter()
            .map(|p| p.point_id_options.clone())
            .collect();
        assert_eq!(
            ids,
            vec![Some(PointIdOptions::Num(3)), Some(PointIdOptions::Num(7))]
        );
    }

    #[test]
    fn search_requests_without_exclusions_have_no_filter() {
        let none = ItemSet::default();
        let req = search_request(
            "c",
            &[1.0],
            SearchParams {
                limit: 1,
                score_threshold: None,
                exclude: &none,
            },
            Duration::from_secs(2),
        );
        assert!(req.filter.is_none());
        assert!(req.score_threshold.is_none());
    }

    #[test]
    fn the_queues_search_parameters_ride_on_every_query_and_none_leaves_qdrants() {
        let none = ItemSet::default();
        let base = || {
            search_request(
                "c",
                &[1.0],
                SearchParams {
                    limit: 1,
                    score_threshold: None,
                    exclude: &none,
                },
                Duration::from_secs(1),
            )
        };
        assert!(with_search_params(base(), None).params.is_none());
        let tuned = QdrantSearch {
            hnsw_ef: Some(256),
            exact: false,
        };
        let params = with_search_params(base(), Some(&tuned))
            .params
            .expect("params");
        assert_eq!((params.hnsw_ef, params.exact), (Some(256), Some(false)));
        let exact = QdrantSearch {
            hnsw_ef: None,
            exact: true,
        };
        let params = with_search_params(base(), Some(&exact))
            .params
            .expect("params");
        assert_eq!((params.hnsw_ef, params.exact), (None, Some(true)));
    }

    #[test]
    fn collections_are_cosine_with_the_bundle_dimension() {
        use qdrant_client::qdrant::vectors_config::Config;
        let req = create_collection_request("movies-abc", 64);
        assert_eq!(req.collection_name, "movies-abc");
        let Some(Config::Params(params)) = req.vectors_config.and_then(|c| c.config) else {
            panic!("single vector config")
        };
        assert_eq!(params.size, 64);
        assert_eq!(params.distance, Distance::Cosine as i32);
        let idx = payload_index_request("movies-abc");
        assert_eq!(idx.field_name, ITEM_ID_FIELD);
        assert_eq!(idx.field_type, Some(FieldType::Keyword as i32));
    }

    #[test]
    fn upserts_are_batched_and_cover_every_item_once() {
        let items = catalogue(2500);
        let vectors: Vec<f32> = (0..2500 * 2).map(|i| i as f32).collect();
        let reqs = upsert_requests("c", &items, 2, &vectors, 1000);
        assert_eq!(
            reqs.iter().map(|r| r.points.len()).collect::<Vec<_>>(),
            vec![1000, 1000, 500]
        );
        assert!(reqs.iter().all(|r| r.wait == Some(true)));
        let last = reqs[2].points.last().unwrap();
        assert_eq!(
            last.id.clone().unwrap().point_id_options,
            Some(PointIdOptions::Num(2499))
        );
        assert_eq!(
            last.payload
                .get(ITEM_ID_FIELD)
                .and_then(|v| v.as_str())
                .map(String::as_str),
            Some("i2499")
        );
    }

    #[test]
    fn hits_map_back_through_the_item_id_payload_and_drop_unknown_items() {
        let items = catalogue(3);
        let point = |id: u64, item: &str, score: f32| ScoredPoint {
            id: Some(id.into()),
            payload: [(ITEM_ID_FIELD.to_string(), item.into())].into(),
            score,
            ..Default::default()
        };
        let hits = hits_from_points(
            vec![
                point(0, "i2", 0.9),
                point(1, "gone", 0.8),
                point(2, "i0", 0.7),
            ],
            &items,
        );
        assert_eq!(
            hits,
            vec![
                Hit {
                    item: 2,
                    score: 0.9
                },
                Hit {
                    item: 0,
                    score: 0.7
                }
            ]
        );
    }

    #[test]
    fn refused_keys_and_bad_requests_are_configuration_errors_and_the_rest_stay_transient() {
        let error =
            |status| index_error("qdrant search in c", QdrantError::ResponseError { status });
        use qdrant_client::QdrantError;
        use tonic::Status;
        let e = error(Status::permission_denied("read-only key"));
        assert_eq!(e.metric_label(), "index_config");
        assert!(e.to_string().contains("read-only key") && e.to_string().contains(API_KEY_ENV));
        let e = error(Status::invalid_argument("wrong vector dimension"));
        assert_eq!(e.metric_label(), "index_config");
        let e = error(Status::unavailable("restarting"));
        assert_eq!(e.metric_label(), "index");
        assert_eq!(
            e.to_string(),
            "vector index: qdrant search in c: The service is currently unavailable: restarting"
        );
    }

    #[test]
    fn only_transient_failures_are_retried_and_only_with_a_quarter_of_the_deadline_left() {
        use qdrant_client::QdrantError;
        use tonic::Status;
        let failure = |status| QdrantError::ResponseError { status };
        assert!(is_transient(&failure(Status::unavailable("restarting"))));
        assert!(is_transient(&failure(Status::resource_exhausted("busy"))));
        assert!(is_transient(&failure(Status::deadline_exceeded("slow"))));
        assert!(!is_transient(&failure(Status::invalid_argument("dim"))));
        assert!(!is_transient(&failure(Status::unauthenticated("key"))));
        assert!(!is_transient(&failure(Status::not_found("collection"))));

        let deadline = Duration::from_millis(100);
        assert_eq!(
            retry_budget(deadline, Duration::from_millis(10)),
            Some(Duration::from_millis(90))
        );
        assert_eq!(
            retry_budget(deadline, Duration::from_millis(75)),
            Some(Duration::from_millis(25))
        );
        assert_eq!(retry_budget(deadline, Duration::from_millis(76)), None);
        assert_eq!(retry_budget(deadline, Duration::from_millis(300)), None);
        // A tiny deadline still needs 5 ms for a retry to be worth sending.
        assert_eq!(
            retry_budget(Duration::from_millis(8), Duration::from_millis(4)),
            None
        );
    }

    #[test]
    fn versioned_collections_are_named_after_alias_and_version() {
        assert_eq!(
            versioned_collection("movies", "0123abcd"),
            "movies-0123abcd"
        );
    }

    #[tokio::test]
    async fn an_unreachable_qdrant_fails_the_readiness_check() {
        let index = QdrantIndex::new(
            "http://127.0.0.1:9",
            "movies",
            Duration::from_millis(200),
            None,
            Arc::new(catalogue(1)),
        )
        .unwrap();
        let e = index.check().await.unwrap_err();
        assert_eq!(e.metric_label(), "index");
    }
}
