//! References between objects: a gateway's queues and fallback, and an experiment's gateway and
//! its arms' queues and fallbacks, must name objects of the set being validated or served. Each
//! object is valid on its own; only the set can say that `nope` names nothing.

use std::collections::BTreeSet;
use std::fmt;

use crate::crd::QueueRoute;
use crate::manifest::KanObject;

/// How complete the set of objects is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everything that will run (`kan up DIR`): every reference must resolve.
    Complete,
    /// Some files picked by the user (`kan validate FILES`): references to a kind of which no
    /// object was given are not checked, so one file can be validated on its own.
    AsGiven,
}

/// A reference naming an object the set does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DanglingReference {
    /// Where the referring object comes from (its file).
    pub origin: String,
    /// Kind and name of the referring object.
    pub kind: &'static str,
    pub name: String,
    /// Path of the field holding the reference, e.g. `spec.queues[1].name`.
    pub field: String,
    /// Kind and name of the missing object.
    pub missing_kind: &'static str,
    pub missing: String,
}

impl fmt::Display for DanglingReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} {}: {}: {} '{}' does not exist: define it or remove the reference",
            self.origin, self.kind, self.name, self.field, self.missing_kind, self.missing
        )
    }
}

/// Every dangling reference among `objects` (each with its origin), in input order.
pub fn references(objects: &[(&str, &KanObject)], scope: Scope) -> Vec<DanglingReference> {
    let mut queues = BTreeSet::new();
    let mut gateways = BTreeSet::new();
    for (_, object) in objects {
        match object {
            KanObject::Queue(_) => queues.insert(object.name()),
            KanObject::Gateway(_) => gateways.insert(object.name()),
            KanObject::Experiment(_) => false,
        };
    }
    let check_queues = scope == Scope::Complete || !queues.is_empty();
    let check_gateways = scope == Scope::Complete || !gateways.is_empty();
    let mut out = Vec::new();
    for (origin, object) in objects {
        let mut refs: Vec<(String, &'static str, &str)> = Vec::new();
        match object {
            KanObject::Queue(_) => {}
            KanObject::Gateway(g) => {
                route_refs(&mut refs, "spec.queues", &g.spec.queues);
                if let Some(f) = &g.spec.fallback {
                    refs.push(("spec.fallback".into(), "RecallQueue", f));
                }
            }
            KanObject::Experiment(e) => {
                refs.push(("spec.gateway".into(), "RecallGateway", &e.spec.gateway));
                for (i, arm) in e.spec.arms.iter().enumerate() {
                    if let Some(routes) = &arm.queues {
                        route_refs(&mut refs, &format!("spec.arms[{i}].queues"), routes);
                    }
                    if let Some(f) = &arm.fallback {
                        refs.push((format!("spec.arms[{i}].fallback"), "RecallQueue", f));
                    }
                }
            }
        }
        for (field, missing_kind, missing) in refs {
            let dangling = match missing_kind {
                "RecallQueue" => check_queues && !queues.contains(missing),
                _ => check_gateways && !gateways.contains(missing),
            };
            if dangling {
                out.push(DanglingReference {
                    origin: origin.to_string(),
                    kind: object.kind(),
                    name: object.name().to_string(),
                    field,
                    missing_kind,
                    missing: missing.to_string(),
                });
            }
        }
    }
    out
}

fn route_refs<'a>(
    refs: &mut Vec<(String, &'static str, &'a str)>,
    field: &str,
    routes: &'a [QueueRoute],
) {
    for (i, route) in routes.iter().enumerate() {
        refs.push((format!("{field}[{i}].name"), "RecallQueue", &route.name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parse_manifests;

    const QUEUES: &str = "apiVersion: kan.dev/v1alpha1
kind: RecallQueue
metadata: {name: pop}
spec: {strategy: {type: popular}}
---
apiVersion: kan.dev/v1alpha1
kind: RecallQueue
metadata: {name: cf}
spec: {strategy: {type: itemcf}}
";

    fn gateway(queues: &str, fallback: &str) -> String {
        format!(
            "apiVersion: kan.dev/v1alpha1\nkind: RecallGateway\nmetadata: {{name: feed}}\nspec:\n  queues: [{queues}]\n  fallback: {fallback}\n"
        )
    }

    fn experiment(gateway: &str, queue: &str) -> String {
        format!(
            "apiVersion: kan.dev/v1alpha1\nkind: RecallExperiment\nmetadata: {{name: exp}}\nspec:\n  gateway: {gateway}\n  traffic: 10\n  arms:\n    - {{name: control, weight: 50}}\n    - {{name: treatment, weight: 50, queues: [{{name: {queue}}}], fallback: {queue}}}\n"
        )
    }

    fn check(files: &[(&str, String)], scope: Scope) -> Vec<String> {
        let parsed: Vec<(&str, Vec<KanObject>)> = files
            .iter()
            .map(|(f, text)| (*f, parse_manifests(text).expect("parses")))
            .collect();
        let objects: Vec<(&str, &KanObject)> = parsed
            .iter()
            .flat_map(|(f, objects)| objects.iter().map(move |o| (*f, o)))
            .collect();
        references(&objects, scope)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_set_whose_references_all_resolve_has_no_dangling_reference() {
        let files = [
            ("q.yaml", QUEUES.to_string()),
            ("g.yaml", gateway("{name: pop}, {name: cf}", "pop")),
            ("e.yaml", experiment("feed", "cf")),
        ];
        assert!(check(&files, Scope::Complete).is_empty());
    }

    #[test]
    fn a_gateway_route_and_fallback_to_missing_queues_name_the_file_field_and_queue() {
        let files = [
            ("q.yaml", QUEUES.to_string()),
            ("g.yaml", gateway("{name: pop}, {name: nope}", "gone")),
        ];
        assert_eq!(
            check(&files, Scope::AsGiven),
            [
                "g.yaml: RecallGateway feed: spec.queues[1].name: RecallQueue 'nope' does not exist: define it or remove the reference",
                "g.yaml: RecallGateway feed: spec.fallback: RecallQueue 'gone' does not exist: define it or remove the reference",
            ]
        );
    }

    #[test]
    fn an_experiment_naming_a_missing_gateway_and_queue_is_reported_for_each() {
        let files = [
            ("q.yaml", QUEUES.to_string()),
            ("g.yaml", gateway("{name: pop}", "pop")),
            ("e.yaml", experiment("other", "nope")),
        ];
        assert_eq!(
            check(&files, Scope::Complete),
            [
                "e.yaml: RecallExperiment exp: spec.gateway: RecallGateway 'other' does not exist: define it or remove the reference",
                "e.yaml: RecallExperiment exp: spec.arms[1].queues[0].name: RecallQueue 'nope' does not exist: define it or remove the reference",
                "e.yaml: RecallExperiment exp: spec.arms[1].fallback: RecallQueue 'nope' does not exist: define it or remove the reference",
            ]
        );
    }

    #[test]
    fn files_given_alone_are_not_refused_for_kinds_they_do_not_include() {
        let gateway_alone = [("g.yaml", gateway("{name: nope}", "gone"))];
        assert!(check(&gateway_alone, Scope::AsGiven).is_empty());
        assert_eq!(check(&gateway_alone, Scope::Complete).len(), 2);
        let experiment_alone = [("e.yaml", experiment("feed", "cf"))];
        assert!(check(&experiment_alone, Scope::AsGiven).is_empty());
        assert_eq!(check(&experiment_alone, Scope::Complete).len(), 3);
    }
}
