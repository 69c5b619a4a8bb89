//! Writes with no-op detection. Each child carries the hash of what was last applied; a child
//! whose hash matches the desired object is left alone, so a reconcile with nothing to change
//! issues no writes at all (reads only).

use std::fmt::Debug;

use kube::Resource;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::names::{APPLIED_HASH_ANNOTATION, FIELD_MANAGER, short_hash};

/// What happened to a child.
#[derive(Debug)]
pub struct Ensured<K> {
    /// The live object after the call.
    pub object: K,
    /// True when the operator wrote it.
    pub written: bool,
}

/// Server-side applies `desired` unless the live object already carries its hash.
pub async fn ensure<K>(api: &Api<K>, desired: K) -> Result<Ensured<K>>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + Debug,
{
    ensure_current(api, desired, |_| true).await
}

/// [`ensure`], also re-applying when the live object carries the hash but `current` says its
/// content was changed by hand (the hash annotation survives an edit of the data).
pub async fn ensure_current<K>(
    api: &Api<K>,
    mut desired: K,
    current: impl Fn(&K) -> bool,
) -> Result<Ensured<K>>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + Debug,
{
    let name = desired.meta().name.clone().ok_or(Error::MissingMetadata {
        kind: "child",
        field: "name",
    })?;
    let body = serde_json::to_vec(&desired).map_err(|e| Error::Render {
        what: format!("{} {name}", K::kind(&())),
        message: e.to_string(),
    })?;
    let hash = short_hash(&body);
    desired
        .meta_mut()
        .annotations
        .get_or_insert_default()
        .insert(APPLIED_HASH_ANNOTATION.to_string(), hash.clone());

    let live = api.get_opt(&name).await?;
    let applied_hash = |k: &K| {
        k.meta()
            .annotations
            .as_ref()
            .and_then(|a| a.get(APPLIED_HASH_ANNOTATION))
            .cloned()
    };
    if let Some(live) = live.filter(|l| applied_hash(l).as_ref() == Some(&hash) && current(l)) {
        return Ok(Ensured {
            object: live,
            written: false,
        });
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let object = api.patch(&name, &params, &Patch::Apply(&desired)).await?;
    Ok(Ensured {
        object,
        written: true,
    })
}

/// Deletes child `name` if it exists and is controlled by the owner with `owner_uid` (never
/// touches objects someone else created). Returns true when it deleted.
pub async fn remove_owned<K>(api: &Api<K>, name: &str, owner_uid: &str) -> Result<bool>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let Some(live) = api.get_opt(name).await? else {
        return Ok(false);
    };
    let owned = live
        .meta()
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == owner_uid && o.controller == Some(true));
    if !owned {
        return Ok(false);
    }
    api.delete(name, &DeleteParams::background()).await?;
    Ok(true)
}

/// Writes `status` to the status subresource when it differs from `current`.
///
/// A JSON merge patch with every status field present (absent ones as `null`) rather than an
/// apply: it clears fields that became empty with the same meaning on every API server.
pub async fn write_status<K, S>(
    api: &Api<K>,
    name: &str,
    current: Option<&S>,
    status: &S,
) -> Result<bool>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    S: Serialize + PartialEq,
{
    if current == Some(status) {
        return Ok(false);
    }
    let mut value = serde_json::to_value(status).map_err(|e| Error::Render {
        what: format!("{} status", K::kind(&())),
        message: e.to_string(),
    })?;
    if let Some(current) = current.and_then(|c| serde_json::to_value(c).ok()) {
        // Null out fields the new status no longer has.
        if let (Some(new), Some(old)) = (value.as_object_mut(), current.as_object()) {
            for key in old.keys() {
                new.entry(key.clone()).or_insert(serde_json::Value::Null);
            }
        }
    }
    let patch = serde_json::json!({ "status": value });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(true)
}
