//! Services: a queue's Service is named after the queue (that name is its endpoint); a
//! gateway's is `<gateway>-gateway`.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::child_meta;
use crate::names::{
    Component, HTTP_PORT, METRICS_PORT, Parent, gateway_workload_name, selector_labels,
};

/// The Service in front of a queue's workers.
pub fn worker_service(parent: &Parent) -> Service {
    service(parent, Component::Worker, parent.name.clone())
}

/// The Service in front of a gateway.
pub fn gateway_service(parent: &Parent) -> Service {
    service(
        parent,
        Component::Gateway,
        gateway_workload_name(&parent.name),
    )
}

fn service(parent: &Parent, component: Component, name: String) -> Service {
    Service {
        metadata: child_meta(parent, component, name),
        spec: Some(ServiceSpec {
            selector: Some(selector_labels(component, &parent.name)),
            ports: Some(vec![port("http", HTTP_PORT), port("metrics", METRICS_PORT)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_string()),
        port,
        target_port: Some(IntOrString::String(name.to_string())),
        protocol: Some("TCP".to_string()),
        ..ServicePort::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::children::fixtures::parent;

    #[test]
    fn queue_service_exposes_http_and_metrics_and_selects_the_workers() {
        let s = worker_service(&parent("RecallQueue", "itemcf"));
        assert_eq!(s.metadata.name.as_deref(), Some("itemcf"));
        let spec = s.spec.expect("spec");
        let ports: Vec<(Option<&str>, i32, Option<IntOrString>)> = spec
            .ports
            .iter()
            .flatten()
            .map(|p| (p.name.as_deref(), p.port, p.target_port.clone()))
            .collect();
        assert_eq!(
            ports,
            [
                (Some("http"), 8080, Some(IntOrString::String("http".into()))),
                (
                    Some("metrics"),
                    9090,
                    Some(IntOrString::String("metrics".into()))
                )
            ]
        );
        assert_eq!(
            spec.selector,
            Some(selector_labels(Component::Worker, "itemcf"))
        );
    }

    #[test]
    fn gateway_service_is_suffixed_and_selects_gateway_pods() {
        let s = gateway_service(&parent("RecallGateway", "feed"));
        assert_eq!(s.metadata.name.as_deref(), Some("feed-gateway"));
        assert_eq!(
            s.spec.and_then(|s| s.selector),
            Some(selector_labels(Component::Gateway, "feed"))
        );
    }
}
