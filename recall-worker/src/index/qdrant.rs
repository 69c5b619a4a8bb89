//! The Qdrant backend: loading a bundle's item vectors into the collection of its version then
//! pointing the alias at it (`kan index load`), and searching from the worker.
//!
//! A worker searches `<alias>-<its bundle version>`, never the alias: the alias is for readers
//! outside Kan and moves as soon as a newer bundle is loaded, while a worker still serving the
//! older bundle encodes users with the older model and maps point ids through the older
//! catalogue. Loading never deletes a collection (any version may be serving); an old version
//! is removed only by hand once no worker serves it.
//!
//! Point ids are internal item indices; every point carries its external id in the `item_id`
//! payload, which the worker maps back through its own catalogue (a hit the catalogue does not
//! know is dropped).
//!
//! Request building is kept in pure functions (`*_request`) so it can be tested without a server.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use qdrant_client::Qdrant;
use qdrant_client::qdrant::{
    Condition, CreateAliasBuilder, CreateCollection, CreateCollectionBuilder,
    CreateFieldIndexCollection, CreateFieldIndexCollectionBuilder, Distance, FieldType, Filter,
    PayloadIncludeSelector, PointStruct, QueryBatchPoints, QueryPoints, QueryPointsBuilder,
    ScoredPoint, SearchParamsBuilder, UpsertPoints, UpsertPointsBuilder, VectorParamsBuilder,
    point_id::PointIdOptions,
};

use kan_api::crd::QdrantSearch;

use super::{Hit, SearchParams, VectorIndex};
use crate::bundle::Catalogue;
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
        })
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
            let request = with_search_params(
                search_request(&self.collection, query, params, self.timeout),
                self.search.as_ref(),
            );
            let call = self.client.query(request);
            let response = tokio::time::timeout(self.timeout, call)
                .await
                .map_err(|_| {
                    Error::Index(format!("qdrant search timed out after {:?}", self.timeout))
                })?
                .map_err(|e| index_error(&format!("qdrant search in {}", self.collection), e))?;
            let exclude: &HashSet<u32> = params.exclude;
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
            let exclude: &HashSet<u32> = params.exclude;
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
            let call = self.client.collection_info(self.collection.as_str());
            tokio::time::timeout(self.timeout.max(Duration::from_secs(1)), call)
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
            Ok(())
        })
    }
}

/// What [`load_bundle`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    pub collection: String,
    pub alias: String,
    pub points: usize,
}

/// Loads item vectors into `<alias>-<version>`, builds the payload index, then moves `alias` to
/// it in one alias operation (Qdrant reassigns an existing alias atomically), so outside
/// readers switch from the old version to the complete new one at once. An existing collection
/// of the version is completed in place, never deleted: the version is a content hash, so the
/// upserts rewrite the same points, and workers of that version keep answering throughout
/// (Qdrant drops a deleted collection's aliases with it).
pub async fn load_bundle(
    client: &Qdrant,
    alias: &str,
    version: &str,
    items: &Catalogue,
    dim: usize,
    vectors: &[f32],
) -> Result<LoadReport> {
    let collection = versioned_collection(alias, version);
    let err =
        |what: &str, e: qdrant_client::QdrantError| index_error(&format!("{what} {collection}"), e);
    if !client
        .collection_exists(collection.as_str())
        .await
        .map_err(|e| err("checking", e))?
    {
        client
            .create_collection(create_collection_request(&collection, dim as u64))
            .await
            .map_err(|e| err("creating", e))?;
    }
    client
        .create_field_index(payload_index_request(&collection))
        .await
        .map_err(|e| err("indexing payload of", e))?;
    let requests = upsert_requests(&collection, items, dim, vectors, UPSERT_BATCH);
    for (i, request) in requests.into_iter().enumerate() {
        upsert_with_retries(client, request)
            .await
            .map_err(|e| index_error(&format!("upserting batch {i} into {collection}"), e))?;
    }
    client
        .create_alias(CreateAliasBuilder::new(&collection, alias))
        .await
        .map_err(|e| err("pointing the alias at", e))?;
    Ok(LoadReport {
        collection,
        alias: alias.to_string(),
        points: items.len(),
    })
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
        let exclude = HashSet::from([7, 3]);
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
        let none = HashSet::new();
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
        let none = HashSet::new();
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
