//! Validation of every contract, mirroring the CRDs' schema ranges and CEL rules so that code
//! paths without an API server (`kan up`, worker and gateway config files, requests) reject the
//! same inputs with the same messages. Field paths are relative to the object validated.

use std::collections::BTreeSet;

mod references;
pub use references::{DanglingReference, Scope, references};

use crate::bundle::{BUNDLE_FORMAT_VERSION, BundleManifest};
use crate::bundle_uri::{self, BundleLocation, ObjectScheme};
use crate::crd::{
    Arm, BundleRef, FilterSpec, IndexSpec, IndexType, MAX_PROPENSITY_BOOST, MergePolicy, MergeSpec,
    OperationalSettings, PROPENSITY_KEYS, PropensitySpec, QueueRoute, RecallExperimentSpec,
    RecallGatewaySpec, RecallQueueSpec, Strategy,
};
use crate::error::{Collector, ValidationError, ValidationErrors};
use crate::routing::RoutingConfig;
use crate::wire::{
    MAX_CONTEXT_KEY_LEN, MAX_CONTEXT_KEYS, MAX_CONTEXT_VALUE_LEN, MAX_EXCLUDE, MAX_HISTORY,
    MAX_ID_LEN, MAX_K, RecallRequest,
};

fn in_range<T: PartialOrd + Copy + std::fmt::Display>(
    c: &mut Collector,
    value: T,
    min: T,
    max: T,
    field: &str,
) {
    c.check(
        value >= min && value <= max,
        field,
        format!("must be between {min} and {max}, got {value}"),
    );
}

/// A RecallQueue spec.
pub fn queue_spec(spec: &RecallQueueSpec) -> Result<(), ValidationErrors> {
    let mut c = Collector::default();
    in_range(&mut c, spec.candidates, 1, 10000, "candidates");
    in_range(&mut c, spec.max_candidates, 1, 10000, "maxCandidates");
    in_range(&mut c, spec.timeout_ms, 1, 10000, "timeoutMs");
    c.check(
        spec.candidates <= spec.max_candidates,
        "candidates",
        "candidates (the default k) must not exceed maxCandidates",
    );
    if let Some(r) = spec.replicas {
        in_range(&mut c, r, 0, 1000, "replicas");
    }
    c.check(
        !(spec.replicas.is_some() && spec.autoscaling.is_some()),
        "replicas",
        "set either replicas or autoscaling, not both",
    );
    if let Some(a) = &spec.autoscaling {
        in_range(&mut c, a.min_replicas, 1, 1000, "autoscaling.minReplicas");
        in_range(&mut c, a.max_replicas, 1, 1000, "autoscaling.maxReplicas");
        in_range(
            &mut c,
            a.target_cpu_utilization,
            1,
            100,
            "autoscaling.targetCpuUtilization",
        );
        c.check(
            a.min_replicas <= a.max_replicas,
            "autoscaling",
            "autoscaling.minReplicas must not exceed autoscaling.maxReplicas",
        );
        let cpu_request = spec
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .is_some_and(|requests| requests.contains_key("cpu"));
        c.check(
            cpu_request,
            "resources.requests.cpu",
            "autoscaling scales on CPU utilization, which needs a CPU request: set spec.resources.requests.cpu",
        );
    }
    if let Some(t) = spec.startup_timeout_seconds {
        in_range(&mut c, t, 60, 86400, "startupTimeoutSeconds");
    }
    let is_operational = matches!(spec.strategy, Strategy::Operational { .. });
    c.check(
        is_operational || spec.bundle.is_some(),
        "bundle",
        "every strategy except operational serves a bundle: set spec.bundle.uri",
    );
    if let Some(b) = &spec.bundle {
        bundle_ref(&mut c, b);
    }
    if let Some(index) = &spec.index {
        index_spec(&mut c, index);
    }
    strategy(&mut c, &spec.strategy);
    if let Some(signals) = &spec.signals {
        redis_signals(&mut c, &signals.redis);
    }
    c.finish()
}

/// Mirrors the CEL rules of `signals.redis`.
fn redis_signals(c: &mut Collector, r: &crate::crd::RedisSignals) {
    c.check(
        r.url.is_some() || r.secret_ref.is_some(),
        "signals.redis",
        "signals.redis needs a url, or a secretRef whose Secret has the key url",
    );
    if let Some(url) = &r.url {
        c.check(
            (url.starts_with("redis://") || url.starts_with("rediss://")) && !url.contains('@'),
            "signals.redis.url",
            "signals.redis.url must be redis:// or rediss:// without credentials: put the password in the Secret of secretRef (key password)",
        );
    }
}

fn bundle_ref(c: &mut Collector, b: &BundleRef) {
    let location = match bundle_uri::parse(&b.uri) {
        Ok(location) => Some(location),
        Err(e) => {
            c.push("bundle.uri", e);
            None
        }
    };
    if let Some(endpoint) = &b.endpoint {
        c.check(
            endpoint.starts_with("http://") || endpoint.starts_with("https://"),
            "bundle.endpoint",
            "must be an http:// or https:// URL, e.g. http://minio.storage:9000",
        );
        let is_s3 = matches!(
            location,
            Some(BundleLocation::Object {
                scheme: ObjectScheme::S3,
                ..
            })
        );
        c.check(
            location.is_none() || is_s3,
            "bundle.endpoint",
            "bundle.endpoint is only used with s3:// URIs (an S3-compatible server such as MinIO)",
        );
    }
}

fn index_spec(c: &mut Collector, index: &IndexSpec) {
    match (index.type_, &index.qdrant) {
        (IndexType::Qdrant, None) => c.push(
            "index.qdrant",
            "index type qdrant needs index.qdrant with url and collection",
        ),
        (IndexType::Embedded, Some(_)) => c.push(
            "index.qdrant",
            "index.qdrant is only allowed when index.type is qdrant",
        ),
        (IndexType::Qdrant, Some(q)) => {
            c.check(!q.url.is_empty(), "index.qdrant.url", "must not be empty");
            c.check(
                !q.collection.is_empty(),
                "index.qdrant.collection",
                "must not be empty",
            );
            in_range(c, q.timeout_ms, 1, 60000, "index.qdrant.timeoutMs");
            if let Some(collections) = &q.collections {
                in_range(
                    c,
                    collections.keep_versions,
                    1,
                    100,
                    "index.qdrant.collections.keepVersions",
                );
                in_range(
                    c,
                    collections.lease_seconds,
                    1,
                    3600,
                    "index.qdrant.collections.leaseSeconds",
                );
            }
        }
        (IndexType::Embedded, None) => {}
    }
    match (index.type_, &index.hnsw) {
        (IndexType::Qdrant, Some(_)) => c.push(
            "index.hnsw",
            "index.hnsw is only allowed when index.type is embedded (a Qdrant collection keeps its own HNSW settings)",
        ),
        (IndexType::Embedded, Some(h)) => {
            in_range(c, h.m, 4, 128, "index.hnsw.m");
            in_range(c, h.ef_construction, 8, 4096, "index.hnsw.efConstruction");
            in_range(c, h.ef_search, 1, 8192, "index.hnsw.efSearch");
        }
        (_, None) => {}
    }
}

fn strategy(c: &mut Collector, strategy: &Strategy) {
    match strategy {
        Strategy::Dssm { dssm: s }
        | Strategy::Gat { gat: s }
        | Strategy::Spectral { spectral: s } => {
            let prefix = format!("strategy.{}", strategy.type_());
            in_range(
                c,
                s.history_length,
                1,
                1000,
                &format!("{prefix}.historyLength"),
            );
            in_range(
                c,
                s.inference_threads,
                1,
                64,
                &format!("{prefix}.inferenceThreads"),
            );
            if let Some(t) = s.score_threshold {
                in_range(c, t, -1.0, 1.0, &format!("{prefix}.scoreThreshold"));
            }
        }
        Strategy::Item2vec { item2vec: s } => {
            in_range(
                c,
                s.history_length,
                1,
                1000,
                "strategy.item2vec.historyLength",
            );
            in_range(
                c,
                s.recency_decay,
                0.0,
                1.0,
                "strategy.item2vec.recencyDecay",
            );
        }
        Strategy::Itemcf { itemcf: s } => {
            in_range(
                c,
                s.history_length,
                1,
                1000,
                "strategy.itemcf.historyLength",
            );
            in_range(c, s.recency_decay, 0.0, 1.0, "strategy.itemcf.recencyDecay");
        }
        Strategy::Social { social: s } => {
            in_range(c, s.max_friends, 1, 10000, "strategy.social.maxFriends");
            in_range(
                c,
                s.half_life_hours,
                0.0,
                1_000_000.0,
                "strategy.social.halfLifeHours",
            );
        }
        Strategy::Exploratory { exploratory: s } => {
            in_range(
                c,
                s.dominant_interests,
                0,
                100,
                "strategy.exploratory.dominantInterests",
            );
            in_range(c, s.kg_hops, 1, 2, "strategy.exploratory.kgHops");
            in_range(
                c,
                s.kg_hop_decay,
                0.0,
                1.0,
                "strategy.exploratory.kgHopDecay",
            );
        }
        Strategy::Popular { popular: s } => {
            c.check(
                s.segment_by.len() <= 16,
                "strategy.popular.segmentBy",
                "at most 16 keys",
            );
            in_range(c, s.new_items, 0, 1000, "strategy.popular.newItems");
            if let Some(t) = &s.trending {
                in_range(
                    c,
                    t.window_minutes,
                    1,
                    1440,
                    "strategy.popular.trending.windowMinutes",
                );
                in_range(
                    c,
                    t.half_life_minutes,
                    1,
                    1440,
                    "strategy.popular.trending.halfLifeMinutes",
                );
            }
        }
        Strategy::Operational { operational } => operational_settings(c, operational),
        Strategy::Attribute { attribute: s } => {
            let f = |name: &str| format!("strategy.attribute.{name}");
            in_range(c, s.history_length, 1, 1000, &f("historyLength"));
            in_range(c, s.recency_decay, 0.0, 1.0, &f("recencyDecay"));
            in_range(c, s.max_tags, 1, 1000, &f("maxTags"));
            in_range(c, s.per_tag_cap, 1, 100_000, &f("perTagCap"));
            in_range(c, s.kg_hops, 1, 2, &f("kgHops"));
            in_range(c, s.kg_hop_decay, 0.0, 1.0, &f("kgHopDecay"));
        }
    }
}

fn operational_settings(c: &mut Collector, settings: &OperationalSettings) {
    let n = settings.items.len();
    c.check(
        (1..=10000).contains(&n),
        "strategy.operational.items",
        "needs between 1 and 10000 items",
    );
    for (i, item) in settings.items.iter().enumerate() {
        let field = format!("strategy.operational.items[{i}]");
        c.check(
            !item.item_id.is_empty(),
            format!("{field}.itemId"),
            "must not be empty",
        );
        let start = item
            .start
            .as_deref()
            .map(|s| parse_time(c, s, &format!("{field}.start")));
        let end = item
            .end
            .as_deref()
            .map(|s| parse_time(c, s, &format!("{field}.end")));
        if let (Some(Some(start)), Some(Some(end))) = (start, end) {
            c.check(
                start < end,
                field,
                "a pinned item's start must be before its end",
            );
        }
    }
}

/// Parses an RFC 3339 time into seconds since the epoch, recording an error when it is not one.
fn parse_time(c: &mut Collector, value: &str, field: &str) -> Option<i64> {
    let parsed = parse_rfc3339(value);
    c.check(
        parsed.is_some(),
        field,
        format!("'{value}' is not an RFC 3339 time such as 2026-01-31T08:00:00Z"),
    );
    parsed
}

/// Seconds since the epoch of an RFC 3339 timestamp (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`).
pub fn parse_rfc3339(value: &str) -> Option<i64> {
    let b = value.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| value.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, s) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut rest = &value[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6
            && (rest.starts_with('+') || rest.starts_with('-'))
            && &rest[3..4] == ":" =>
        {
            let oh: i64 = rest[1..3].parse().ok()?;
            let om: i64 = rest[4..6].parse().ok()?;
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant's algorithm).
    let (y2, m2) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days * 86400 + h * 3600 + mi * 60 + s - offset)
}

fn queue_routes(
    c: &mut Collector,
    field: &str,
    routes: &[QueueRoute],
    deadline_ms: i32,
    policy: MergePolicy,
) {
    c.check(
        (1..=64).contains(&routes.len()),
        field,
        "needs between 1 and 64 queues",
    );
    let mut seen = BTreeSet::new();
    for (i, q) in routes.iter().enumerate() {
        let f = format!("{field}[{i}]");
        c.check(!q.name.is_empty(), format!("{f}.name"), "must not be empty");
        c.check(
            seen.insert(q.name.as_str()),
            format!("{f}.name"),
            format!("queue '{}' is listed twice", q.name),
        );
        if let Some(quota) = q.quota {
            in_range(c, quota, 1, 10000, &format!("{f}.quota"));
        }
        c.check(
            q.weight.is_finite() && (0.0..=1000.0).contains(&q.weight),
            format!("{f}.weight"),
            format!("must be between 0 and 1000, got {}", q.weight),
        );
        if let Some(t) = q.timeout_ms {
            in_range(c, t, 1, 60000, &format!("{f}.timeoutMs"));
            c.check(
                t <= deadline_ms,
                format!("{f}.timeoutMs"),
                "a queue's timeoutMs must not exceed the gateway's deadlineMs",
            );
        }
        if let Some(h) = q.hedge_after_ms {
            in_range(c, h, 1, 60000, &format!("{f}.hedgeAfterMs"));
        }
        c.check(
            policy != MergePolicy::Quota || q.quota.is_some(),
            format!("{f}.quota"),
            "merge policy quota needs a quota on every queue",
        );
    }
}

fn merge_spec(c: &mut Collector, field: &str, merge: &MergeSpec) {
    in_range(c, merge.total, 1, 10000, &format!("{field}.total"));
    c.check(
        merge.rrf_k.is_finite() && (0.0..=100000.0).contains(&merge.rrf_k),
        format!("{field}.rrfK"),
        "must be between 0 and 100000",
    );
}

fn filter_spec(c: &mut Collector, filters: &FilterSpec) {
    if let Some(m) = filters.max_per_source {
        in_range(c, m, 1, 10000, "filters.maxPerSource");
    }
    if let Some(p) = &filters.propensity {
        propensity_spec(c, "filters.propensity", p);
    }
}

/// A propensity stage on its own (as `kan eval --propensity-*` builds it); fields relative to it.
pub fn propensity(spec: &PropensitySpec) -> Result<(), ValidationErrors> {
    let mut c = Collector::default();
    propensity_spec(&mut c, "propensity", spec);
    c.finish()
}

fn propensity_spec(c: &mut Collector, field: &str, p: &PropensitySpec) {
    c.check(
        !p.table.trim().is_empty() && p.table.len() <= 1024,
        format!("{field}.table"),
        "must name a bundle directory holding propensity.safetensors (at most 1024 characters)",
    );
    c.check(
        !p.keys.is_empty() && p.keys.len() <= PROPENSITY_KEYS.len(),
        format!("{field}.keys"),
        format!(
            "must list 1 to {} context keys of {}",
            PROPENSITY_KEYS.len(),
            PROPENSITY_KEYS.join(", ")
        ),
    );
    let mut seen = BTreeSet::new();
    for (i, key) in p.keys.iter().enumerate() {
        c.check(
            PROPENSITY_KEYS.contains(&key.as_str()),
            format!("{field}.keys[{i}]"),
            format!(
                "unknown context key `{key}`: use {}",
                PROPENSITY_KEYS.join(", ")
            ),
        );
        c.check(
            seen.insert(key.as_str()),
            format!("{field}.keys[{i}]"),
            format!("`{key}` is listed twice"),
        );
    }
    c.check(
        p.boost.is_finite() && (0.0..=MAX_PROPENSITY_BOOST).contains(&p.boost),
        format!("{field}.boost"),
        format!("must be between 0 and {MAX_PROPENSITY_BOOST}"),
    );
    if let Some(min) = p.min_lift {
        c.check(
            min.is_finite() && min > 0.0 && min <= 100.0,
            format!("{field}.minLift"),
            "must be above 0 and at most 100",
        );
    }
    c.check(
        p.boost > 0.0 || p.min_lift.is_some(),
        format!("{field}.boost"),
        "boost 0 without minLift does nothing: set boost above 0, or minLift",
    );
}

/// A RecallGateway spec.
pub fn gateway_spec(spec: &RecallGatewaySpec) -> Result<(), ValidationErrors> {
    let mut c = Collector::default();
    in_range(&mut c, spec.deadline_ms, 1, 60000, "deadlineMs");
    in_range(&mut c, spec.replicas, 0, 1000, "replicas");
    queue_routes(
        &mut c,
        "queues",
        &spec.queues,
        spec.deadline_ms,
        spec.merge.policy,
    );
    merge_spec(&mut c, "merge", &spec.merge);
    filter_spec(&mut c, &spec.filters);
    if let Some(cb) = &spec.circuit_breaker {
        in_range(
            &mut c,
            cb.failure_threshold,
            1,
            10000,
            "circuitBreaker.failureThreshold",
        );
        in_range(&mut c, cb.open_ms, 1, 3_600_000, "circuitBreaker.openMs");
    }
    if let Some(signals) = &spec.signals {
        redis_signals(&mut c, &signals.redis);
    }
    c.finish()
}

/// A RecallExperiment spec. `deadline_ms` is the target gateway's, when known.
pub fn experiment_spec(spec: &RecallExperimentSpec) -> Result<(), ValidationErrors> {
    let mut c = Collector::default();
    c.check(
        !spec.gateway.is_empty(),
        "gateway",
        "must name a RecallGateway",
    );
    c.check(!spec.layer.is_empty(), "layer", "must not be empty");
    in_range(&mut c, spec.traffic, 0, 100, "traffic");
    in_range(&mut c, spec.bucket_start, 0, 9999, "bucketStart");
    c.check(
        spec.bucket_start + spec.traffic * 100 <= 10000,
        "bucketStart",
        "bucketStart + traffic * 100 must not exceed 10000 buckets: lower traffic or bucketStart",
    );
    arms(&mut c, &spec.arms, i32::MAX);
    c.finish()
}

fn arms(c: &mut Collector, arms: &[Arm], deadline_ms: i32) {
    c.check(
        (1..=16).contains(&arms.len()),
        "arms",
        "needs between 1 and 16 arms",
    );
    let mut seen = BTreeSet::new();
    for (i, arm) in arms.iter().enumerate() {
        let f = format!("arms[{i}]");
        c.check(
            !arm.name.is_empty(),
            format!("{f}.name"),
            "must not be empty",
        );
        c.check(
            seen.insert(arm.name.as_str()),
            format!("{f}.name"),
            format!("arm '{}' is listed twice", arm.name),
        );
        in_range(c, arm.weight, 0, 100, &format!("{f}.weight"));
        let policy = arm
            .merge
            .as_ref()
            .map(|m| m.policy)
            .unwrap_or(MergePolicy::Rrf);
        if let Some(queues) = &arm.queues {
            queue_routes(c, &format!("{f}.queues"), queues, deadline_ms, policy);
        }
        if let Some(merge) = &arm.merge {
            merge_spec(c, &format!("{f}.merge"), merge);
        }
    }
    let sum: i64 = arms.iter().map(|a| a.weight as i64).sum();
    c.check(
        sum == 100,
        "arms",
        format!("arm weights must sum to 100, they sum to {sum}"),
    );
}

/// A routing config (as the gateway loads it).
pub fn routing_config(config: &RoutingConfig) -> Result<(), ValidationErrors> {
    let mut c = Collector::default();
    c.check(
        !config.gateway.is_empty(),
        "gateway",
        "must name the gateway",
    );
    in_range(&mut c, config.deadline_ms, 1, 60000, "deadlineMs");
    queue_routes(
        &mut c,
        "queues",
        &config.queues,
        config.deadline_ms,
        config.merge.policy,
    );
    merge_spec(&mut c, "merge", &config.merge);
    filter_spec(&mut c, &config.filters);
    for (name, url) in &config.endpoints {
        c.check(
            url.starts_with("http://") || url.starts_with("https://"),
            format!("endpoints.{name}"),
            format!("'{url}' is not an http(s) URL"),
        );
    }
    let mut names = BTreeSet::new();
    for (i, exp) in config.experiments.iter().enumerate() {
        let f = format!("experiments[{i}]");
        c.check(
            names.insert(exp.name.as_str()),
            format!("{f}.name"),
            "experiment names must be unique",
        );
        let mut inner = Collector::default();
        arms(&mut inner, &exp.arms, config.deadline_ms);
        if let Err(e) = inner.finish() {
            c.extend_prefixed(&f, e);
        }
        c.check(
            exp.buckets.start >= 0
                && exp.buckets.start <= exp.buckets.end
                && exp.buckets.end <= 10000,
            format!("{f}.buckets"),
            "buckets must satisfy 0 <= start <= end <= 10000",
        );
    }
    for conflict in crate::assignment::layer_conflicts(
        config.experiments.iter().filter(|e| !e.paused).map(|e| {
            (
                e.name.as_str(),
                e.layer.as_str(),
                e.salt.as_str(),
                e.buckets,
            )
        }),
    ) {
        c.push("experiments", conflict.message);
    }
    c.finish()
}

/// A request, before it is served. Returns the first problem with the field it concerns. Every
/// field is bounded, so no request costs more than these limits allow.
pub fn recall_request(req: &RecallRequest) -> Result<(), ValidationError> {
    let bad = |field: &str, message: String| Err(ValidationError::new(field, message));
    if req.user_id.is_empty() || req.user_id.len() > MAX_ID_LEN {
        return bad("user_id", format!("must be 1 to {MAX_ID_LEN} bytes long"));
    }
    if let Some(k) = req.k
        && !(1..=MAX_K).contains(&k)
    {
        return bad("k", format!("must be between 1 and {MAX_K}, got {k}"));
    }
    if let Some(history) = &req.history {
        item_ids("history", history, MAX_HISTORY)?;
    }
    item_ids("exclude", &req.exclude, MAX_EXCLUDE)?;
    if req.context.len() > MAX_CONTEXT_KEYS {
        return bad(
            "context",
            format!("at most {MAX_CONTEXT_KEYS} keys, got {}", req.context.len()),
        );
    }
    for (key, value) in &req.context {
        if key.is_empty() || key.len() > MAX_CONTEXT_KEY_LEN {
            return bad(
                "context",
                format!("keys must be 1 to {MAX_CONTEXT_KEY_LEN} bytes long"),
            );
        }
        if value.len() > MAX_CONTEXT_VALUE_LEN {
            return bad(
                &format!("context.{key}"),
                format!("at most {MAX_CONTEXT_VALUE_LEN} bytes, got {}", value.len()),
            );
        }
    }
    Ok(())
}

/// A list of item ids: at most `max` of them, each 1 to [`MAX_ID_LEN`] bytes.
fn item_ids(field: &str, ids: &[String], max: usize) -> Result<(), ValidationError> {
    if ids.len() > max {
        return Err(ValidationError::new(
            field,
            format!("at most {max} items, got {}", ids.len()),
        ));
    }
    match ids
        .iter()
        .position(|id| id.is_empty() || id.len() > MAX_ID_LEN)
    {
        Some(i) => Err(ValidationError::new(
            field,
            format!("item {i} must be 1 to {MAX_ID_LEN} bytes long"),
        )),
        None => Ok(()),
    }
}

/// A bundle manifest (the file checksums are verified by the loader, which reads the files).
pub fn bundle_manifest(m: &BundleManifest) -> Result<(), ValidationErrors> {
    let mut c = Collector::default();
    c.check(
        m.format_version == BUNDLE_FORMAT_VERSION,
        "format_version",
        format!("this Kan reads bundle format {BUNDLE_FORMAT_VERSION}, the bundle is format {}: retrain or upgrade Kan", m.format_version),
    );
    c.check(
        !m.files.is_empty(),
        "files",
        "a bundle lists at least one file",
    );
    for (path, digest) in &m.files {
        c.check(
            !path.starts_with('/') && !path.split('/').any(|p| p == ".." || p.is_empty()),
            format!("files.{path}"),
            "paths must be relative and stay inside the bundle",
        );
        c.check(
            digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
            format!("files.{path}"),
            "must be a sha256 hex digest",
        );
    }
    c.check(
        m.version == crate::bundle::content_version(&m.files),
        "version",
        "does not match the content hash of the listed files: the manifest was edited by hand or is corrupt",
    );
    if m.strategy.uses_vector_index() {
        c.check(
            m.dim.is_some_and(|d| d > 0),
            "dim",
            "vector strategies need the embedding dimension",
        );
    }
    c.finish()
}

/// Any Kan object: the Rust rules above plus the CRDs' own CEL rules, evaluated client-side.
pub fn object(object: &crate::manifest::KanObject) -> Result<(), ValidationErrors> {
    use crate::manifest::KanObject;
    let prefix = |r: Result<(), ValidationErrors>| {
        r.map_err(|e| {
            ValidationErrors(
                e.0.into_iter()
                    .map(|e| ValidationError::new(format!("spec.{}", e.field), e.message))
                    .collect(),
            )
        })
    };
    let (rust, cel) = match object {
        KanObject::Queue(o) => (prefix(queue_spec(&o.spec)), o.validate_cel()),
        KanObject::Gateway(o) => (prefix(gateway_spec(&o.spec)), o.validate_cel()),
        KanObject::Experiment(o) => (prefix(experiment_spec(&o.spec)), o.validate_cel()),
    };
    let mut errors = rust.err().map(|e| e.0).unwrap_or_default();
    if let Err(cel_errors) = cel {
        for e in cel_errors.as_slice() {
            // CEL's path is the error's field (not a prefix of its message: "spec: spec: …").
            let field = if e.field_path.is_empty() {
                "spec"
            } else {
                e.field_path.as_str()
            };
            // The Rust rules already report most CEL rules with a field path; keep CEL's own
            // report only for rules the Rust side did not catch.
            if !errors.iter().any(|r| e.message.contains(&r.message)) {
                errors.push(ValidationError::new(field, e.message.clone()));
            }
        }
    }
    ValidationErrors(errors).into_result()
}
