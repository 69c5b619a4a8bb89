//! An in-process stand-in for a Qdrant server — a test harness, not a product mode.
//!
//! It serves the gRPC services the worker and `kan index load` use (collection info, exists,
//! create, update of metadata, list, delete, aliases and their list; upsert, payload index,
//! query) with the service definitions generated in `qdrant-client` itself, so requests go
//! through the real client, real gRPC and the real protobuf messages. Semantics follow Qdrant
//! where the worker depends on them: a collection is created once (a second create of the name
//! fails, which is the loaders' lock), its metadata is stored at creation, merged key by key on
//! update and returned in the info's config; aliases resolve in collection and point calls, an
//! alias is reassigned atomically and dropped with its collection; cosine vectors are normalised
//! on upsert; queries honour `limit`, `score_threshold`, `must_not has_id` and the payload
//! selector. The search is an exact scan. Every other RPC, and an update of anything but
//! metadata, answers UNIMPLEMENTED.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use qdrant_client::qdrant::collections_server::{Collections, CollectionsServer};
use qdrant_client::qdrant::points_server::{Points, PointsServer};
use qdrant_client::qdrant::{self as pb, Distance};
use tonic::{Request, Response, Status};

/// A running stand-in; stops when dropped.
pub struct FakeQdrant {
    state: Arc<Mutex<State>>,
    url: String,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct State {
    collections: BTreeMap<String, Collection>,
    /// alias → collection
    aliases: BTreeMap<String, String>,
    queries: u64,
    /// Batch query calls (each also counts its queries in `queries`).
    query_batches: u64,
    /// Collections deleted so far.
    deletes: u64,
    /// Upserts still to fail with UNAVAILABLE.
    failing_upserts: u32,
    /// Queries still to fail, and with which code.
    failing_queries: Vec<tonic::Code>,
    /// Upserts answered before upserts hang (until resumed); `None`: none hang.
    upserts_before_pause: Option<u64>,
    /// Each upsert waits this long first (a slow load another worker can watch).
    upsert_delay: Duration,
    /// Upsert calls served so far (failed ones included) and points they wrote.
    upserts: u64,
    upserted_points: u64,
    /// Collections created so far.
    creates: u64,
    /// When set, every call must carry this `api-key`, else UNAUTHENTICATED (as Qdrant answers).
    api_key: Option<String>,
}

struct Collection {
    dim: usize,
    /// id → (unit vector, payload)
    points: BTreeMap<u64, (Vec<f32>, HashMap<String, pb::Value>)>,
    payload_indexes: Vec<String>,
    metadata: HashMap<String, pb::Value>,
}

impl FakeQdrant {
    /// Serves on `127.0.0.1:0`. Must run inside a tokio runtime.
    pub async fn spawn() -> std::io::Result<Self> {
        let state = Arc::new(Mutex::new(State::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let service = Service(state.clone());
        let keys = state.clone();
        let check_key = move |request: Request<()>| {
            let want = lock(&keys).api_key.clone();
            let got = request
                .metadata()
                .get("api-key")
                .and_then(|v| v.to_str().ok());
            match want {
                Some(want) if got != Some(want.as_str()) => {
                    Err(Status::unauthenticated("Invalid api-key"))
                }
                _ => Ok(request),
            }
        };
        let server = tonic::transport::Server::builder()
            .add_service(PointsServer::with_interceptor(
                service.clone(),
                check_key.clone(),
            ))
            .add_service(CollectionsServer::with_interceptor(service, check_key))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
        let task = tokio::spawn(async move {
            let _ = server.await;
        });
        Ok(Self { state, url, task })
    }

    /// gRPC URL, as in `index.qdrant.url`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The collection `alias` points to.
    pub fn alias_target(&self, alias: &str) -> Option<String> {
        lock(&self.state).aliases.get(alias).cloned()
    }

    pub fn collections(&self) -> Vec<String> {
        lock(&self.state).collections.keys().cloned().collect()
    }

    pub fn point_count(&self, collection: &str) -> Option<usize> {
        lock(&self.state)
            .collections
            .get(collection)
            .map(|c| c.points.len())
    }

    pub fn payload_indexes(&self, collection: &str) -> Vec<String> {
        lock(&self.state)
            .collections
            .get(collection)
            .map(|c| c.payload_indexes.clone())
            .unwrap_or_default()
    }

    /// Query calls served so far.
    pub fn queries(&self) -> u64 {
        lock(&self.state).queries
    }

    /// Batch query calls served so far (tests/interests.rs; unused by tests/qdrant.rs).
    #[allow(dead_code)]
    pub fn query_batches(&self) -> u64 {
        lock(&self.state).query_batches
    }

    /// From now on, calls without this API key are refused with UNAUTHENTICATED.
    pub fn require_api_key(&self, key: &str) {
        lock(&self.state).api_key = Some(key.to_string());
    }

    /// Collection deletions served so far.
    pub fn deletes(&self) -> u64 {
        lock(&self.state).deletes
    }

    /// The next `n` upserts fail with UNAVAILABLE, as a restarting server's would.
    pub fn fail_next_upserts(&self, n: u32) {
        lock(&self.state).failing_upserts = n;
    }

    /// The next queries fail, one per code, in order.
    pub fn fail_next_queries(&self, codes: &[tonic::Code]) {
        lock(&self.state).failing_queries = codes.to_vec();
    }

    /// After `n` more upserts, every upsert hangs until [`FakeQdrant::resume_upserts`] (a loader
    /// cut off mid-upload; its last request never returns).
    pub fn pause_upserts_after(&self, n: u64) {
        let mut state = lock(&self.state);
        state.upserts_before_pause = Some(state.upserts + n);
    }

    pub fn resume_upserts(&self) {
        lock(&self.state).upserts_before_pause = None;
    }

    /// Every upsert waits `delay` before it is applied.
    pub fn slow_upserts(&self, delay: Duration) {
        lock(&self.state).upsert_delay = delay;
    }

    /// Points written by upserts so far (a point written twice counts twice).
    pub fn upserted_points(&self) -> u64 {
        lock(&self.state).upserted_points
    }

    /// Collections created so far.
    pub fn creates(&self) -> u64 {
        lock(&self.state).creates
    }

    /// A collection's metadata, as JSON.
    pub fn metadata(&self, collection: &str) -> serde_json::Value {
        lock(&self.state)
            .collections
            .get(collection)
            .map(|c| {
                c.metadata
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone().into_json()))
                    .collect::<serde_json::Map<_, _>>()
                    .into()
            })
            .unwrap_or_default()
    }

    /// A collection made outside Kan (no metadata), with `points` points of dimension `dim`.
    pub fn add_foreign_collection(&self, name: &str, dim: usize, points: u64) {
        let mut vector = vec![0.0; dim];
        vector[0] = 1.0;
        lock(&self.state).collections.insert(
            name.to_string(),
            Collection {
                dim,
                points: (0..points)
                    .map(|id| (id, (vector.clone(), HashMap::new())))
                    .collect(),
                payload_indexes: Vec::new(),
                metadata: HashMap::new(),
            },
        );
    }

    /// Payload `field` of point `id` in `collection` replaced (to simulate another bundle's ids).
    pub fn set_payload(&self, collection: &str, id: u64, field: &str, value: &str) {
        if let Some(point) = lock(&self.state)
            .collections
            .get_mut(collection)
            .and_then(|c| c.points.get_mut(&id))
        {
            point.1.insert(field.to_string(), value.to_string().into());
        }
    }
}

impl Drop for FakeQdrant {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl State {
    /// The collection a name means: itself, or the collection its alias points to.
    fn resolve(&self, name: &str) -> Result<&str, Status> {
        let name = self.aliases.get(name).map_or(name, String::as_str);
        match self.collections.get_key_value(name) {
            Some((name, _)) => Ok(name),
            None => Err(collection_not_found(name)),
        }
    }

    fn collection(&self, name: &str) -> Result<&Collection, Status> {
        let name = self.resolve(name)?.to_string();
        Ok(&self.collections[&name])
    }

    fn collection_mut(&mut self, name: &str) -> Result<&mut Collection, Status> {
        let name = self.resolve(name)?.to_string();
        Ok(self.collections.get_mut(&name).expect("resolved"))
    }
}

#[derive(Clone)]
struct Service(Arc<Mutex<State>>);

impl Service {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.0)
    }
}

fn unit(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter().map(|x| x / norm).collect()
    } else {
        v.to_vec()
    }
}

fn point_id(id: Option<&pb::PointId>) -> Result<u64, Status> {
    match id.and_then(|p| p.point_id_options.as_ref()) {
        Some(pb::point_id::PointIdOptions::Num(n)) => Ok(*n),
        _ => Err(Status::invalid_argument(
            "the stand-in stores numeric point ids only",
        )),
    }
}

fn dense(vector: &pb::Vector) -> Vec<f32> {
    match &vector.vector {
        Some(pb::vector::Vector::Dense(d)) => d.data.clone(),
        #[allow(deprecated)]
        _ => vector.data.clone(),
    }
}

fn selected_payload(
    payload: &HashMap<String, pb::Value>,
    selector: Option<&pb::WithPayloadSelector>,
) -> HashMap<String, pb::Value> {
    use pb::with_payload_selector::SelectorOptions;
    match selector.and_then(|s| s.selector_options.as_ref()) {
        Some(SelectorOptions::Enable(true)) => payload.clone(),
        Some(SelectorOptions::Include(include)) => {
            fields_where(payload, |k| include.fields.contains(k))
        }
        Some(SelectorOptions::Exclude(exclude)) => {
            fields_where(payload, |k| !exclude.fields.contains(k))
        }
        _ => HashMap::new(),
    }
}

fn fields_where(
    payload: &HashMap<String, pb::Value>,
    keep: impl Fn(&String) -> bool,
) -> HashMap<String, pb::Value> {
    payload
        .iter()
        .filter(|(k, _)| keep(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn collection_not_found(name: &str) -> Status {
    Status::not_found(format!("Not found: Collection `{name}` doesn't exist!"))
}

fn alias_not_found(name: &str) -> Status {
    Status::not_found(format!("Not found: Alias {name} does not exists!"))
}

fn check_dim(collection: &Collection, vector: &[f32]) -> Result<(), Status> {
    if vector.len() == collection.dim {
        return Ok(());
    }
    Err(Status::invalid_argument(format!(
        "Wrong input: Vector dimension error: expected dim: {}, got {}",
        collection.dim,
        vector.len()
    )))
}

/// Point ids a filter's `must_not has_id` conditions exclude; other conditions are refused, so a
/// test never passes on a filter the stand-in ignored.
fn excluded_ids(filter: Option<&pb::Filter>) -> Result<HashSet<u64>, Status> {
    let Some(filter) = filter else {
        return Ok(HashSet::new());
    };
    let unsupported = || Status::unimplemented("the stand-in filters on must_not has_id only");
    if !filter.must.is_empty() || !filter.should.is_empty() || filter.min_should.is_some() {
        return Err(unsupported());
    }
    let mut ids = HashSet::new();
    for condition in &filter.must_not {
        match &condition.condition_one_of {
            Some(pb::condition::ConditionOneOf::HasId(has)) => {
                for id in &has.has_id {
                    ids.insert(point_id(Some(id))?);
                }
            }
            _ => return Err(unsupported()),
        }
    }
    Ok(ids)
}

fn collection_done() -> Response<pb::CollectionOperationResponse> {
    Response::new(pb::CollectionOperationResponse {
        result: true,
        time: 0.0,
    })
}

fn points_done() -> Response<pb::PointsOperationResponse> {
    Response::new(pb::PointsOperationResponse {
        result: Some(pb::UpdateResult {
            operation_id: Some(0),
            status: pb::UpdateStatus::Completed as i32,
        }),
        time: 0.0,
        usage: None,
    })
}

type Rpc<'a, T> = Pin<Box<dyn Future<Output = Result<Response<T>, Status>> + Send + 'a>>;

/// RPCs the worker never makes: they answer UNIMPLEMENTED. Written in the form `async_trait`
/// gives the trait's methods, since the attribute does not see inside macro calls.
macro_rules! unimplemented_rpcs {
    ($($name:ident($request:ident) -> $response:ident;)*) => {
        $(
            fn $name<'life0, 'async_trait>(
                &'life0 self,
                _request: Request<pb::$request>,
            ) -> Rpc<'async_trait, pb::$response>
            where
                'life0: 'async_trait,
                Self: 'async_trait,
            {
                Box::pin(async {
                    Err(Status::unimplemented(concat!(
                        "the Qdrant stand-in does not serve ",
                        stringify!($name)
                    )))
                })
            }
        )*
    };
}

#[tonic::async_trait]
impl Collections for Service {
    async fn get(
        &self,
        request: Request<pb::GetCollectionInfoRequest>,
    ) -> Result<Response<pb::GetCollectionInfoResponse>, Status> {
        let state = self.state();
        let collection = state.collection(&request.get_ref().collection_name)?;
        Ok(Response::new(pb::GetCollectionInfoResponse {
            result: Some(pb::CollectionInfo {
                status: pb::CollectionStatus::Green as i32,
                points_count: Some(collection.points.len() as u64),
                config: Some(pb::CollectionConfig {
                    metadata: collection.metadata.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            time: 0.0,
        }))
    }

    async fn collection_exists(
        &self,
        request: Request<pb::CollectionExistsRequest>,
    ) -> Result<Response<pb::CollectionExistsResponse>, Status> {
        let exists = self
            .state()
            .collections
            .contains_key(&request.get_ref().collection_name);
        Ok(Response::new(pb::CollectionExistsResponse {
            result: Some(pb::CollectionExists { exists }),
            time: 0.0,
        }))
    }

    async fn create(
        &self,
        request: Request<pb::CreateCollection>,
    ) -> Result<Response<pb::CollectionOperationResponse>, Status> {
        use pb::vectors_config::Config;
        let request = request.into_inner();
        let Some(Config::Params(params)) = request.vectors_config.and_then(|c| c.config) else {
            return Err(Status::invalid_argument(
                "the stand-in serves one unnamed vector per point",
            ));
        };
        if params.distance != Distance::Cosine as i32 {
            return Err(Status::invalid_argument(
                "the stand-in serves cosine distance only",
            ));
        }
        let mut state = self.state();
        if state.collections.contains_key(&request.collection_name) {
            return Err(Status::invalid_argument(format!(
                "Wrong input: Collection `{}` already exists!",
                request.collection_name
            )));
        }
        state.creates += 1;
        state.collections.insert(
            request.collection_name,
            Collection {
                dim: params.size as usize,
                points: BTreeMap::new(),
                payload_indexes: Vec::new(),
                metadata: request.metadata,
            },
        );
        Ok(collection_done())
    }

    async fn update(
        &self,
        request: Request<pb::UpdateCollection>,
    ) -> Result<Response<pb::CollectionOperationResponse>, Status> {
        let request = request.into_inner();
        let metadata_only = pb::UpdateCollection {
            collection_name: request.collection_name.clone(),
            metadata: request.metadata.clone(),
            timeout: request.timeout,
            ..Default::default()
        };
        if request != metadata_only {
            return Err(Status::unimplemented(
                "the stand-in updates collection metadata only",
            ));
        }
        let mut state = self.state();
        let collection = state.collection_mut(&request.collection_name)?;
        // Merged key by key with what is stored, as Qdrant documents.
        collection.metadata.extend(request.metadata);
        Ok(collection_done())
    }

    async fn list(
        &self,
        _request: Request<pb::ListCollectionsRequest>,
    ) -> Result<Response<pb::ListCollectionsResponse>, Status> {
        let collections = self
            .state()
            .collections
            .keys()
            .map(|name| pb::CollectionDescription { name: name.clone() })
            .collect();
        Ok(Response::new(pb::ListCollectionsResponse {
            collections,
            time: 0.0,
        }))
    }

    async fn list_aliases(
        &self,
        _request: Request<pb::ListAliasesRequest>,
    ) -> Result<Response<pb::ListAliasesResponse>, Status> {
        let aliases = self
            .state()
            .aliases
            .iter()
            .map(|(alias, collection)| pb::AliasDescription {
                alias_name: alias.clone(),
                collection_name: collection.clone(),
            })
            .collect();
        Ok(Response::new(pb::ListAliasesResponse {
            aliases,
            time: 0.0,
        }))
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteCollection>,
    ) -> Result<Response<pb::CollectionOperationResponse>, Status> {
        let name = request.into_inner().collection_name;
        let mut state = self.state();
        let existed = state.collections.remove(&name).is_some();
        state.deletes += 1;
        state.aliases.retain(|_, target| *target != name);
        Ok(Response::new(pb::CollectionOperationResponse {
            result: existed,
            time: 0.0,
        }))
    }

    async fn update_aliases(
        &self,
        request: Request<pb::ChangeAliases>,
    ) -> Result<Response<pb::CollectionOperationResponse>, Status> {
        use pb::alias_operations::Action;
        let mut state = self.state();
        // All actions or none, as Qdrant applies them.
        let mut aliases = state.aliases.clone();
        for action in request.into_inner().actions {
            match action.action {
                Some(Action::CreateAlias(create)) => {
                    if !state.collections.contains_key(&create.collection_name) {
                        return Err(collection_not_found(&create.collection_name));
                    }
                    aliases.insert(create.alias_name, create.collection_name);
                }
                Some(Action::DeleteAlias(delete)) => {
                    if aliases.remove(&delete.alias_name).is_none() {
                        return Err(alias_not_found(&delete.alias_name));
                    }
                }
                Some(Action::RenameAlias(rename)) => {
                    let Some(target) = aliases.remove(&rename.old_alias_name) else {
                        return Err(alias_not_found(&rename.old_alias_name));
                    };
                    aliases.insert(rename.new_alias_name, target);
                }
                None => return Err(Status::invalid_argument("an alias action is empty")),
            }
        }
        state.aliases = aliases;
        Ok(collection_done())
    }

    unimplemented_rpcs! {
        list_collection_aliases(ListCollectionAliasesRequest) -> ListAliasesResponse;
        collection_cluster_info(CollectionClusterInfoRequest) -> CollectionClusterInfoResponse;
        update_collection_cluster_setup(UpdateCollectionClusterSetupRequest) -> UpdateCollectionClusterSetupResponse;
        create_shard_key(CreateShardKeyRequest) -> CreateShardKeyResponse;
        delete_shard_key(DeleteShardKeyRequest) -> DeleteShardKeyResponse;
        list_shard_keys(ListShardKeysRequest) -> ListShardKeysResponse;
    }
}

#[tonic::async_trait]
impl Points for Service {
    async fn upsert(
        &self,
        request: Request<pb::UpsertPoints>,
    ) -> Result<Response<pb::PointsOperationResponse>, Status> {
        use pb::vectors::VectorsOptions;
        let request = request.into_inner();
        let (delay, call) = {
            let mut state = self.state();
            state.upserts += 1;
            (state.upsert_delay, state.upserts)
        };
        tokio::time::sleep(delay).await;
        while self
            .state()
            .upserts_before_pause
            .is_some_and(|allowed| call > allowed)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut state = self.state();
        if state.failing_upserts > 0 {
            state.failing_upserts -= 1;
            return Err(Status::unavailable(
                "the stand-in fails this upsert on purpose",
            ));
        }
        let collection = state.collection_mut(&request.collection_name)?;
        let mut points = Vec::with_capacity(request.points.len());
        for point in request.points {
            let id = point_id(point.id.as_ref())?;
            let Some(VectorsOptions::Vector(vector)) =
                point.vectors.and_then(|v| v.vectors_options)
            else {
                return Err(Status::invalid_argument(format!(
                    "point {id} has no unnamed vector"
                )));
            };
            let vector = dense(&vector);
            check_dim(collection, &vector)?;
            points.push((id, unit(&vector), point.payload));
        }
        let written = points.len() as u64;
        for (id, vector, payload) in points {
            collection.points.insert(id, (vector, payload));
        }
        state.upserted_points += written;
        Ok(points_done())
    }

    async fn create_field_index(
        &self,
        request: Request<pb::CreateFieldIndexCollection>,
    ) -> Result<Response<pb::PointsOperationResponse>, Status> {
        let request = request.into_inner();
        let mut state = self.state();
        let collection = state.collection_mut(&request.collection_name)?;
        // Idempotent, as in Qdrant.
        if !collection.payload_indexes.contains(&request.field_name) {
            collection.payload_indexes.push(request.field_name);
        }
        Ok(points_done())
    }

    async fn query(
        &self,
        request: Request<pb::QueryPoints>,
    ) -> Result<Response<pb::QueryResponse>, Status> {
        use pb::query::Variant;
        use pb::vector_input::Variant as Input;
        let request = request.into_inner();
        let mut state = self.state();
        state.queries += 1;
        if !state.failing_queries.is_empty() {
            let code = state.failing_queries.remove(0);
            return Err(Status::new(
                code,
                "the stand-in fails this query on purpose",
            ));
        }
        let collection = state.collection(&request.collection_name)?;
        let query = match request.query.and_then(|q| q.variant) {
            Some(Variant::Nearest(pb::VectorInput {
                variant: Some(Input::Dense(d)),
            })) => unit(&d.data),
            _ => {
                return Err(Status::unimplemented(
                    "the stand-in answers nearest-dense-vector queries only",
                ));
            }
        };
        check_dim(collection, &query)?;
        let excluded = excluded_ids(request.filter.as_ref())?;
        let mut scored: Vec<(f32, u64)> = collection
            .points
            .iter()
            .filter(|(id, _)| !excluded.contains(id))
            .map(|(&id, (v, _))| (v.iter().zip(&query).map(|(a, b)| a * b).sum(), id))
            .filter(|&(score, _)| request.score_threshold.is_none_or(|t| score >= t))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        scored.truncate(request.limit.unwrap_or(10) as usize);
        let result = scored
            .into_iter()
            .map(|(score, id)| pb::ScoredPoint {
                id: Some(id.into()),
                payload: selected_payload(&collection.points[&id].1, request.with_payload.as_ref()),
                score,
                ..Default::default()
            })
            .collect();
        Ok(Response::new(pb::QueryResponse {
            result,
            time: 0.0,
            usage: None,
        }))
    }

    /// Each query of the batch as [`Self::query`] answers it, in order (a multi-interest
    /// user's K searches).
    async fn query_batch(
        &self,
        request: Request<pb::QueryBatchPoints>,
    ) -> Result<Response<pb::QueryBatchResponse>, Status> {
        let request = request.into_inner();
        self.state().query_batches += 1;
        let mut result = Vec::with_capacity(request.query_points.len());
        for query in request.query_points {
            if query.collection_name != request.collection_name {
                return Err(Status::invalid_argument(
                    "a batch's queries name the batch's collection",
                ));
            }
            let answer = self.query(Request::new(query)).await?.into_inner();
            result.push(pb::BatchResult {
                result: answer.result,
            });
        }
        Ok(Response::new(pb::QueryBatchResponse {
            result,
            time: 0.0,
            usage: None,
        }))
    }

    unimplemented_rpcs! {
        delete(DeletePoints) -> PointsOperationResponse;
        get(GetPoints) -> GetResponse;
        update_vectors(UpdatePointVectors) -> PointsOperationResponse;
        delete_vectors(DeletePointVectors) -> PointsOperationResponse;
        set_payload(SetPayloadPoints) -> PointsOperationResponse;
        overwrite_payload(SetPayloadPoints) -> PointsOperationResponse;
        delete_payload(DeletePayloadPoints) -> PointsOperationResponse;
        clear_payload(ClearPayloadPoints) -> PointsOperationResponse;
        delete_field_index(DeleteFieldIndexCollection) -> PointsOperationResponse;
        create_vector_name(CreateVectorNameRequest) -> PointsOperationResponse;
        delete_vector_name(DeleteVectorNameRequest) -> PointsOperationResponse;
        search(SearchPoints) -> SearchResponse;
        search_batch(SearchBatchPoints) -> SearchBatchResponse;
        search_groups(SearchPointGroups) -> SearchGroupsResponse;
        scroll(ScrollPoints) -> ScrollResponse;
        recommend(RecommendPoints) -> RecommendResponse;
        recommend_batch(RecommendBatchPoints) -> RecommendBatchResponse;
        recommend_groups(RecommendPointGroups) -> RecommendGroupsResponse;
        discover(DiscoverPoints) -> DiscoverResponse;
        discover_batch(DiscoverBatchPoints) -> DiscoverBatchResponse;
        count(CountPoints) -> CountResponse;
        update_batch(UpdateBatchPoints) -> UpdateBatchResponse;
        query_groups(QueryPointGroups) -> QueryGroupsResponse;
        facet(FacetCounts) -> FacetResponse;
        search_matrix_pairs(SearchMatrixPoints) -> SearchMatrixPairsResponse;
        search_matrix_offsets(SearchMatrixPoints) -> SearchMatrixOffsetsResponse;
    }
}
