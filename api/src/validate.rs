//! Validation of every contract, so that code paths without an API server (`kan up`, worker and
//! gateway config files, requests) reject the same inputs as the API server, with the same
//! messages. The per-field rules (ranges, lengths, list sizes, enums, unique names) are read
//! from the generated schema ([`schema`]); the functions here add the cross-field rules, which
//! mirror the CRDs' CEL rules. Field paths are relative to the object validated.

mod references;
pub mod schema;
pub use references::{DanglingReference, Scope, references};

use crate::bundle::{BUNDLE_FORMAT_VERSION, BundleManifest};
use crate::bundle_uri::{self, BundleLocation, ObjectScheme};
use crate::crd::{
    Arm, BundleRef, FilterSpec, IndexSpec, IndexType, MergePolicy, OperationalSettings,
    PropensitySpec, QueueRoute, RecallExperimentSpec, RecallGatewaySpec, RecallQueueSpec, Strategy,
};
use crate::error::{Collector, ValidationError, ValidationErrors};
use crate::routing::RoutingConfig;
use crate::wire::{
    MAX_CONTEXT_KEY_LEN, MAX_CONTEXT_KEYS, MAX_CONTEXT_VALUE_LEN, MAX_EXCLUDE, MAX_HISTORY,
    MAX_ID_LEN, MAX_K, RecallRequest,
};

/// A RecallQueue spec.
pub fn queue_spec(spec: &RecallQueueSpec) -> Result<(), ValidationErrors> {
    let mut c = Collector::default();
    schema::check_into(&mut c, schema::queue_spec(), spec, "");
    c.check(
        spec.candidates <= spec.max_candidates,
        "candidates",
        "candidates (the default k) must not exceed maxCandidates",
    );
    c.check(
        !(spec.replicas.is_some() && spec.autoscaling.is_some()),
        "replicas",
        "set either replicas or autoscaling, not both",
    );
    if let Some(a) = &spec.autoscaling {
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
    if let Strategy::Operational { operational } = &spec.strategy {
        operational_settings(&mut c, operational);
    }
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

/// Mirrors the CEL rules of `index`: which settings block goes with which index type.
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
        _ => {}
    }
    if index.type_ == IndexType::Qdrant && index.hnsw.is_some() {
        c.push(
            "index.hnsw",
            "index.hnsw is only allowed when index.type is embedded (a Qdrant collection keeps its own HNSW settings)",
        );
    }
}

/// Pinned items' windows: RFC 3339 times, start before end (the CRD's CEL rule).
fn operational_settings(c: &mut Collector, settings: &OperationalSettings) {
    for (i, item) in settings.items.iter().enumerate() {
        let field = format!("strategy.operational.items[{i}]");
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

/// The cross-field rules of a queue list (the CEL rules of RecallGateway and RecallExperiment).
fn queue_routes(
    c: &mut Collector,
    field: &str,
    routes: &[QueueRoute],
    deadline_ms: i32,
    policy: MergePolicy,
) {
    for (i, q) in routes.iter().enumerate() {
        let f = format!("{field}[{i}]");
        if let Some(t) = q.timeout_ms {
            c.check(
                t <= deadline_ms,
                format!("{f}.timeoutMs"),
                "a queue's timeoutMs must not exceed the gateway's deadlineMs",
            );
        }
        c.check(
            policy != MergePolicy::Quota || q.quota.is_some(),
            format!("{f}.quota"),
            "merge policy quota needs a quota on every queue",
        );
    }
}

fn filter_spec(c: &mut Collector, filters: &FilterSpec) {
    if let Some(p) = &filters.propensity {
        propensity_spec(c, "filters.propensity", p);
    }
}

/// A propensity stage on its own (as `kan eval --propensity-*` builds it); fields relative to it.
pub fn propensity(spec: &PropensitySpec) -> Result<(), ValidationErrors> {
    let mut c = Collector::default();
    schema::check_into(&mut c, schema::propensity(), spec, "propensity");
    propensity_spec(&mut c, "propensity", spec);
    c.finish()
}

fn propensity_spec(c: &mut Collector, field: &str, p: &PropensitySpec) {
    c.check(
        p.boost > 0.0 || p.min_lift.is_some(),
        format!("{field}.boost"),
        "boost 0 without minLift does nothing: set boost above 0, or minLift",
    );
}

/// A RecallGateway spec.
pub fn gateway_spec(spec: &RecallGatewaySpec) -> Result<(), ValidationErrors> {
    let mut c = Collector::default();
    schema::check_into(&mut c, schema::gateway_spec(), spec, "");
    queue_routes(
        &mut c,
        "queues",
        &spec.queues,
        spec.deadline_ms,
        spec.merge.policy,
    );
    filter_spec(&mut c, &spec.filters);
    if let Some(signals) = &spec.signals {
        redis_signals(&mut c, &signals.redis);
    }
    c.finish()
}

/// A RecallExperiment spec.
pub fn experiment_spec(spec: &RecallExperimentSpec) -> Result<(), ValidationErrors> {
    let mut c = Collector::default();
    schema::check_into(&mut c, schema::experiment_spec(), spec, "");
    c.check(
        spec.bucket_start + spec.traffic * 100 <= 10000,
        "bucketStart",
        "bucketStart + traffic * 100 must not exceed 10000 buckets: lower traffic or bucketStart",
    );
    arms(&mut c, "arms", &spec.arms, i32::MAX);
    c.finish()
}

/// The cross-field rules of an experiment's arms; `deadline_ms` is the gateway's, when known.
fn arms(c: &mut Collector, field: &str, arms: &[Arm], deadline_ms: i32) {
    for (i, arm) in arms.iter().enumerate() {
        let policy = arm
            .merge
            .as_ref()
            .map(|m| m.policy)
            .unwrap_or(MergePolicy::Rrf);
        if let Some(queues) = &arm.queues {
            queue_routes(
                c,
                &format!("{field}[{i}].queues"),
                queues,
                deadline_ms,
                policy,
            );
        }
    }
    let sum: i64 = arms.iter().map(|a| a.weight as i64).sum();
    c.check(
        sum == 100,
        field,
        format!("arm weights must sum to 100, they sum to {sum}"),
    );
}

/// A routing config (as the gateway loads it).
pub fn routing_config(config: &RoutingConfig) -> Result<(), ValidationErrors> {
    let mut c = Collector::default();
    schema::check_into(&mut c, schema::routing_config(), config, "");
    queue_routes(
        &mut c,
        "queues",
        &config.queues,
        config.deadline_ms,
        config.merge.policy,
    );
    filter_spec(&mut c, &config.filters);
    for (name, url) in &config.endpoints {
        c.check(
            url.starts_with("http://") || url.starts_with("https://"),
            format!("endpoints.{name}"),
            format!("'{url}' is not an http(s) URL"),
        );
    }
    for (i, exp) in config.experiments.iter().enumerate() {
        let f = format!("experiments[{i}]");
        arms(&mut c, &format!("{f}.arms"), &exp.arms, config.deadline_ms);
        c.check(
            exp.buckets.start <= exp.buckets.end,
            format!("{f}.buckets"),
            "buckets.start must not exceed buckets.end",
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
