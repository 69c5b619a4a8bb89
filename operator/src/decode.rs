//! Objects the operator cannot decode (a RecallQueue with a strategy this binary does not know,
//! after a `helm rollback` that kept a newer CRD): each one is skipped and reported, never
//! allowed to fail the watch or the list of its whole kind. Watches and lists read such kinds
//! as `DynamicObject`s and decode them one by one here: RecallQueue, RecallGateway and
//! RecallExperiment alike.

use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::error::Result;

/// Longest decode error kept in logs and events (a serde message names the field and the
/// expected values; the object itself is never logged).
const MAX_MESSAGE: usize = 300;

/// An object that could not be decoded into its type.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {key} cannot be decoded by this operator version: {message}")]
pub struct Undecodable {
    pub kind: String,
    /// `namespace/name`.
    pub key: String,
    /// The decode error, at most [`MAX_MESSAGE`] bytes.
    pub message: String,
}

/// Decodes `obj` as a `K`.
pub fn decode<K>(obj: &DynamicObject) -> Result<K, Undecodable>
where
    K: Resource<DynamicType = ()> + DeserializeOwned,
{
    obj.clone().try_parse::<K>().map_err(|e| Undecodable {
        kind: K::kind(&()).to_string(),
        key: format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any()),
        message: bounded(e.to_string()),
    })
}

/// Counts and logs one undecodable object (one bounded line).
pub fn report(undecodable: &Undecodable) {
    metrics::counter!(crate::metrics::UNDECODABLE, "kind" => undecodable.kind.clone()).increment(1);
    tracing::warn!(kind = %undecodable.kind, object = %undecodable.key, error = %undecodable.message, "skipping an object this operator cannot decode");
}

/// The `Api` of `K` read as dynamic objects, over one namespace or all.
pub fn dynamic_api<K>(client: &kube::Client, namespace: Option<&str>) -> Api<DynamicObject>
where
    K: Resource<DynamicType = ()>,
{
    let resource = ApiResource::erase::<K>(&());
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

/// Lists the `K`s of `namespace`, skipping (and reporting) those that cannot be decoded.
pub async fn list<K>(client: &kube::Client, namespace: &str) -> Result<Vec<K>>
where
    K: Resource<DynamicType = ()> + DeserializeOwned,
{
    let items = dynamic_api::<K>(client, Some(namespace))
        .list(&ListParams::default())
        .await?
        .items;
    Ok(decode_all(&items))
}

/// Reads the `K` named `name` in `namespace`: `None` when there is none, an error when it
/// cannot be decoded (the caller cannot decide without it).
pub async fn get<K>(client: &kube::Client, namespace: &str, name: &str) -> Result<Option<K>>
where
    K: Resource<DynamicType = ()> + DeserializeOwned,
{
    match dynamic_api::<K>(client, Some(namespace))
        .get_opt(name)
        .await?
    {
        None => Ok(None),
        Some(obj) => Ok(Some(decode::<K>(&obj)?)),
    }
}

/// The decodable objects of `items`, in order; the others are reported.
pub fn decode_all<K>(items: &[DynamicObject]) -> Vec<K>
where
    K: Resource<DynamicType = ()> + DeserializeOwned,
{
    items
        .iter()
        .filter_map(|obj| decode::<K>(obj).inspect_err(report).ok())
        .collect()
}

fn bounded(mut message: String) -> String {
    if message.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push('…');
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use kan_api::crd::RecallQueue;

    fn dynamic(yaml: &str) -> DynamicObject {
        let value: serde_json::Value = serde_saphyr::from_str(yaml).expect("yaml");
        serde_json::from_value(value).expect("a Kubernetes object")
    }

    const GOOD: &str = "apiVersion: kan.dev/v1alpha1\nkind: RecallQueue\nmetadata: {name: good, namespace: recsys}\nspec:\n  strategy: {type: popular}\n  bundle: {uri: /b}\n";
    const FUTURE: &str = "apiVersion: kan.dev/v1alpha1\nkind: RecallQueue\nmetadata: {name: future, namespace: recsys}\nspec:\n  strategy: {type: quantum}\n  bundle: {uri: /b}\n";

    #[test]
    fn an_unknown_strategy_is_skipped_with_a_short_reason_and_the_others_decode() {
        let items = [dynamic(FUTURE), dynamic(GOOD)];
        let queues: Vec<RecallQueue> = decode_all(&items);
        assert_eq!(queues.len(), 1);
        assert_eq!(queues[0].metadata.name.as_deref(), Some("good"));
        let err = decode::<RecallQueue>(&items[0]).expect_err("unknown variant");
        assert_eq!(err.kind, "RecallQueue");
        assert_eq!(err.key, "recsys/future");
        assert!(err.message.contains("quantum"), "{}", err.message);
        assert!(err.message.len() <= MAX_MESSAGE + '…'.len_utf8());
    }

    #[test]
    fn long_decode_errors_are_cut_at_a_char_boundary() {
        let long = "é".repeat(400);
        let cut = bounded(long);
        assert!(cut.len() <= MAX_MESSAGE + '…'.len_utf8());
        assert!(cut.ends_with('…'));
    }
}
