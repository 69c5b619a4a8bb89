//! Parity: the lists `kan eval --queues DIR` scores are, item for item and in order, the lists
//! the serving code returns for the same bundles and the same YAML.
//!
//! Offline: `--queues` reading ([`super::eval_queues`]) → `kan_train::eval` (kept lists).
//! Online: the `kan up` plan of the same directory → [`kan_worker::Worker::recall`] per queue
//! (bundle loading, request resolution, the strategy, the output contract; embedded index in
//! exact mode, the catalogue is far below `EXACT_SCAN_MAX_ITEMS`) → the gateway's
//! [`kan_gateway::merge::merge`] over the workers' answers, in the gateway's queue order with
//! its weights, quotas and rrfK.
//!
//! Both sides call the same kernels in `kan-core` (and, for the encoder queues, the same
//! `kan-onnx` user encoder through the process's one ONNX Runtime), so what this test guards is
//! everything around them: if either side alone changes how it reads the queue's settings (history
//! length, decay, max friends, half-life, tag cap, KG hops, dominant interests, the exploratory
//! seed — all set away from their defaults
//! below), which
//! history it sends, what it excludes, which clock social decays against, how many candidates
//! it keeps, or how it orders, weighs or quotas queues in a merge, the lists differ and the
//! test fails.

use std::fmt::Write as _;
use std::path::Path;

use kan_api::crd::{MergePolicy, MergeSpec, StrategyType};
use kan_api::manifest::parse_manifests;
use kan_api::wire::RecallRequest;
use kan_gateway::merge::{CandidateRef, QueueList, merge};
use kan_train::data::Format;
use kan_train::split::SplitSpec;
use kan_train::{EvalRequest, TrainOptions, TrainRequest};
use kan_worker::{Worker, WorkerOptions};

const USERS: u64 = 160;
const ITEMS: u64 = 70;
/// 1998-01-01: old data, as ML-100K is (the social queue once decayed it to zero online).
const START: i64 = 883_612_800;

/// A small seeded generator (no dependency): users in 5 communities, 10–22 interactions each,
/// mostly in their community's items, an hour to a few days apart; a friend graph inside
/// communities.
fn write_dataset(dir: &Path) {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let mut inter = String::from("user_id,item_id,timestamp,weight\n");
    let mut social = String::from("user_id,friend_id\n");
    for u in 0..USERS {
        let community = u % 5;
        let mut ts = START + next(86_400 * 30) as i64;
        for _ in 0..10 + next(13) {
            ts += 3_600 + next(86_400 * 3) as i64;
            let item = if next(4) == 0 {
                next(ITEMS)
            } else {
                community * (ITEMS / 5) + next(ITEMS / 5)
            };
            let _ = writeln!(inter, "u{u},i{item},{ts},1");
        }
        for _ in 0..2 {
            let friend = (community + 5 * next(USERS / 5)) % USERS;
            if friend != u {
                let _ = writeln!(social, "u{u},u{friend}");
            }
        }
    }
    std::fs::write(dir.join("interactions.csv"), inter).unwrap();
    std::fs::write(dir.join("social.csv"), social).unwrap();
    // Tags: the item's community, a genre-like tag shared across communities, and an
    // "author" two items share (for the attribute queue).
    let mut items = String::from("item_id,categories\n");
    let mut tags = String::from("item_id,tag\n");
    for i in 0..ITEMS {
        let _ = writeln!(items, "i{i},c{}|g{}", i / (ITEMS / 5), i % 7);
        let _ = writeln!(tags, "i{i},author:{}", i / 2);
    }
    std::fs::write(dir.join("items.csv"), items).unwrap();
    std::fs::write(dir.join(kan_train::data::ITEM_TAGS_FILE), tags).unwrap();
}

/// The platform: three queues with settings away from their defaults, and a gateway that
/// lists them in another order than the files do, with unequal weights and quotas.
const PLATFORM: &str = "\
apiVersion: kan.dev/v1alpha1
kind: RecallQueue
metadata: {name: cf}
spec:
  strategy: {type: itemcf, itemcf: {historyLength: 7, recencyDecay: 0.8}}
  bundle: {uri: bundles/itemcf}
---
apiVersion: kan.dev/v1alpha1
kind: RecallQueue
metadata: {name: vec}
spec:
  strategy: {type: item2vec, item2vec: {historyLength: 5, recencyDecay: 0.7}}
  bundle: {uri: bundles/item2vec}
---
apiVersion: kan.dev/v1alpha1
kind: RecallQueue
metadata: {name: friends}
spec:
  strategy: {type: social, social: {maxFriends: 3, halfLifeHours: 48}}
  bundle: {uri: bundles/social}
---
apiVersion: kan.dev/v1alpha1
kind: RecallQueue
metadata: {name: tags}
spec:
  strategy:
    type: attribute
    attribute: {historyLength: 9, recencyDecay: 0.8, maxTags: 6, perTagCap: 12, kgExpansion: true, kgHops: 2, kgHopDecay: 0.4}
  bundle: {uri: bundles/attribute}
---
apiVersion: kan.dev/v1alpha1
kind: RecallQueue
metadata: {name: pop}
spec:
  strategy: {type: popular}
  bundle: {uri: bundles/popular}
---
apiVersion: kan.dev/v1alpha1
kind: RecallQueue
metadata: {name: explore}
spec:
  strategy:
    type: exploratory
    exploratory: {dominantInterests: 2, seed: 11, kgExpansion: true, kgHops: 2, kgHopDecay: 0.7}
  bundle: {uri: bundles/exploratory}
---
apiVersion: kan.dev/v1alpha1
kind: RecallGateway
metadata: {name: gw}
spec:
  queues:
  - {name: friends, weight: 0.5, quota: 5}
  - {name: cf, weight: 2, quota: 20}
  - {name: vec, weight: 1}
  - {name: pop, weight: 0.3, quota: 4}
  - {name: tags, weight: 1.5, quota: 15}
  - {name: explore, weight: 0.2, quota: 3}
  merge: {policy: rrf, rrfK: 20}
";

fn wall_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The encoder queues: dssm (one user vector; `historyLength` set away from the bundle's
/// `params.history_length` = 10, which both sides must ignore for the bundle's; two ONNX
/// threads), dssm with three interest vectors per user (K exact scans merged; a score
/// threshold), gat, spectral and sequence. Each ONNX model runs through the one ONNX Runtime of the
/// process on both sides.
const ENCODER_PLATFORM: &str = "\
apiVersion: kan.dev/v1alpha1
kind: RecallQueue
metadata: {name: towers}
spec:
  strategy: {type: dssm, dssm: {historyLength: 4, inferenceThreads: 2}}
  bundle: {uri: bundles/dssm}
---
apiVersion: kan.dev/v1alpha1
kind: RecallQueue
metadata: {name: interests}
spec:
  strategy: {type: dssm, dssm: {scoreThreshold: 0.0}}
  bundle: {uri: bundles/dssm-interests}
---
apiVersion: kan.dev/v1alpha1
kind: RecallQueue
metadata: {name: graph}
spec:
  strategy: {type: gat}
  bundle: {uri: bundles/gat}
---
apiVersion: kan.dev/v1alpha1
kind: RecallQueue
metadata: {name: eigen}
spec:
  strategy: {type: spectral}
  bundle: {uri: bundles/spectral}
---
apiVersion: kan.dev/v1alpha1
kind: RecallQueue
metadata: {name: attention}
spec:
  strategy: {type: sequence}
  bundle: {uri: bundles/sequence}
---
apiVersion: kan.dev/v1alpha1
kind: RecallGateway
metadata: {name: gw}
spec:
  queues:
  - {name: graph, weight: 1, quota: 10}
  - {name: towers, weight: 2}
  - {name: eigen, weight: 0.5, quota: 5}
  - {name: interests, weight: 1.5}
  - {name: attention, weight: 1, quota: 10}
  merge: {policy: rrf, rrfK: 30}
";

/// `--param`s of the bundles that train with any (bundle directory name → params).
const BUNDLE_PARAMS: &[(&str, &[&str])] = &[("dssm-interests", &["interests=3"])];

/// One worker answer: (item id, score), best first.
type Served = Vec<(String, f32)>;

fn train(data: &Path, out: &Path, strategy: StrategyType) {
    let name = out.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let params = BUNDLE_PARAMS
        .iter()
        .find(|(bundle, _)| *bundle == name)
        .map_or(&[][..], |(_, p)| p);
    kan_train::train(&TrainRequest {
        strategy,
        data: data.to_path_buf(),
        format: Format::Csv,
        split: Some(SplitSpec::Temporal { n: 1 }),
        out: out.to_path_buf(),
        opts: TrainOptions {
            epochs: Some(2),
            dim: 16,
            seed: 5,
            history_length: 10,
            progress: false,
            params: kan_train::strategies::HyperParams::parse(params).unwrap(),
        },
    })
    .unwrap();
}

/// Both sides of the parity for one platform directory: the lists `kan eval --queues DIR`
/// scores (offline) and what the workers `kan up` would run answer and the gateway merges
/// (online) must be equal item for item, for every queue and every merge policy. Returns the
/// workers' answers (queue name → one list per evaluated user).
async fn assert_parity(
    platform: &str,
    strategies: &[(StrategyType, &str)],
    options: WorkerOptions,
) -> Vec<(String, Vec<Served>)> {
    let tmp = tempfile::tempdir().unwrap();
    let (data, dir) = (tmp.path().join("data"), tmp.path().join("platform"));
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    write_dataset(&data);
    for &(s, name) in strategies {
        train(&data, &dir.join("bundles").join(name), s);
    }
    std::fs::write(dir.join("platform.yaml"), platform).unwrap();

    // Offline: what `kan eval --queues DIR` runs.
    let specs = super::eval_queues::read(std::slice::from_ref(&dir)).unwrap();
    let gateway = specs.gateway.clone().unwrap();
    let policies = [
        MergePolicy::Rrf,
        MergePolicy::WeightedInterleave,
        MergePolicy::Quota,
    ];
    // Exploratory draws change with the UTC day of the worker's clock: offline draws for the
    // same day.
    let now = wall_clock();
    let request = EvalRequest {
        data: data.clone(),
        format: Format::Csv,
        split: None,
        seed: None,
        queues: super::eval_queues::queues(&specs, &[]).unwrap(),
        merges: policies.to_vec(),
        rrf_k: gateway.merge.rrf_k,
        on_validation: false,
        max_users: None,
        progress: false,
        propensity: None,
        now: Some(now),
        tune_weights: false,
    };
    let (_, offline) = kan_train::eval::eval_keeping_lists(&request).unwrap();
    assert!(offline.users.len() >= 100, "{} users", offline.users.len());

    // Online: the workers `kan up` would run for the same directory.
    let objects = parse_manifests(platform).unwrap();
    let plan = crate::cmd::up::plan::plan(&objects, &dir).unwrap();
    let mut online: Vec<(String, Vec<Served>)> = Vec::new();
    for route in &gateway.queues {
        let config = plan.workers[&route.name].clone();
        let worker = Worker::load(config, options.clone()).await.unwrap();
        let mut lists = Vec::new();
        for (user, history) in offline.users.iter().zip(&offline.histories) {
            let answer = worker
                .recall(&RecallRequest {
                    user_id: user.clone(),
                    k: Some(kan_train::eval::LIST_LENGTH as u32),
                    history: Some(history.clone()),
                    exclude: Vec::new(),
                    context: Default::default(),
                    debug: false,
                })
                .await
                .unwrap();
            lists.push(
                answer
                    .candidates
                    .into_iter()
                    .map(|c| (c.item_id, c.score))
                    .collect(),
            );
        }
        online.push((route.name.clone(), lists));
    }

    if wall_clock().div_euclid(86_400) != now.div_euclid(86_400) {
        // Midnight UTC passed mid-test: the workers drew for the next day. Run again.
        return Box::pin(assert_parity(platform, strategies, options)).await;
    }
    for (name, served) in &online {
        let (_, scored) = offline.queues.iter().find(|(n, _)| n == name).unwrap();
        for (n, (s, o)) in served.iter().zip(scored).enumerate() {
            let s: Vec<&str> = s.iter().map(|(id, _)| id.as_str()).collect();
            assert_eq!(s, *o, "queue {name}, user {}", offline.users[n]);
        }
        assert!(
            served.iter().filter(|l| !l.is_empty()).count() >= 100,
            "{name} recalls for most users"
        );
    }

    for policy in policies {
        let spec = MergeSpec {
            policy,
            ..gateway.merge.clone()
        };
        let (_, scored) = offline.merges.iter().find(|(p, _)| *p == policy).unwrap();
        for n in 0..offline.users.len() {
            let answers: Vec<Vec<CandidateRef>> = online
                .iter()
                .map(|(_, lists)| {
                    lists[n]
                        .iter()
                        .map(|(item_id, score)| CandidateRef {
                            item_id,
                            score: *score,
                        })
                        .collect()
                })
                .collect();
            let lists: Vec<QueueList> = gateway
                .queues
                .iter()
                .zip(&answers)
                .map(|(q, candidates)| QueueList {
                    queue: &q.name,
                    weight: q.weight,
                    quota: q.quota.map(|n| n.max(0) as usize),
                    candidates,
                })
                .collect();
            let served: Vec<&str> = merge(&spec, &lists)
                .iter()
                .take(kan_train::eval::LIST_LENGTH)
                .map(|m| m.item_id)
                .collect();
            assert_eq!(served, scored[n], "{policy:?}, user {}", offline.users[n]);
        }
    }
    online
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kan_eval_scores_item_for_item_the_lists_the_workers_and_the_gateway_merge_serve() {
    let online = assert_parity(
        PLATFORM,
        &[
            (StrategyType::Itemcf, "itemcf"),
            (StrategyType::Item2vec, "item2vec"),
            (StrategyType::Social, "social"),
            (StrategyType::Attribute, "attribute"),
            (StrategyType::Popular, "popular"),
            (StrategyType::Exploratory, "exploratory"),
        ],
        WorkerOptions::default(),
    )
    .await;
    // Social is personal online too: scores are not all zero, lists differ between users.
    let (name, social) = &online[0];
    assert_eq!(name, "friends");
    assert!(social.iter().flatten().any(|(_, score)| *score > 0.0));
    assert!(social.windows(2).any(|w| w[0] != w[1]));
}

/// True when ONNX Runtime is installed; otherwise skips loudly, or fails when
/// `KAN_REQUIRE_TOOLS` is set (scripts/test.sh).
fn onnx_runtime_or_skip() -> bool {
    match kan_onnx::dylib_path(None) {
        Ok(_) => true,
        Err(e) if std::env::var_os("KAN_REQUIRE_TOOLS").is_none() => {
            eprintln!("skipping: {e}");
            false
        }
        Err(e) => panic!("ONNX Runtime is required (KAN_REQUIRE_TOOLS is set): {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kan_eval_scores_item_for_item_the_lists_the_encoder_workers_serve() {
    if !onnx_runtime_or_skip() {
        return;
    }
    let online = assert_parity(
        ENCODER_PLATFORM,
        &[
            (StrategyType::Dssm, "dssm"),
            (StrategyType::Dssm, "dssm-interests"),
            (StrategyType::Gat, "gat"),
            (StrategyType::Spectral, "spectral"),
            (StrategyType::Sequence, "sequence"),
        ],
        WorkerOptions::default(),
    )
    .await;
    let queue = |name: &str| &online.iter().find(|(n, _)| n == name).unwrap().1;
    // The threshold bites: the interests queue drops items the others keep.
    let longest = |name: &str| queue(name).iter().map(Vec::len).max().unwrap_or(0);
    assert!(longest("interests") < longest("towers"));
    assert!(queue("interests").iter().flatten().all(|(_, s)| *s >= 0.0));
    // Encoders are personal: lists differ between users.
    for name in ["towers", "interests", "graph", "eigen", "attention"] {
        assert!(queue(name).windows(2).any(|w| w[0] != w[1]), "{name}");
    }
}
