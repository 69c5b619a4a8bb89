//! Builders and a served gateway for the integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use kan_api::crd::{FilterSpec, MergeSpec, QueueRoute};
use kan_api::routing::RoutingConfig;
use kan_gateway::Gateway;
use kan_testkit::fake_queue::FakeQueue;

/// A config over `queues` (name, fake) with endpoints pointing at the fakes.
pub fn config(queues: &[(&str, &FakeQueue)]) -> RoutingConfig {
    RoutingConfig {
        gateway: "test-gw".into(),
        endpoints: queues
            .iter()
            .map(|(n, f)| (n.to_string(), f.url().to_string()))
            .collect::<BTreeMap<_, _>>(),
        queues: queues.iter().map(|(n, _)| QueueRoute::named(*n)).collect(),
        merge: MergeSpec::default(),
        filters: FilterSpec::default(),
        fallback: None,
        deadline_ms: 2000,
        circuit_breaker: None,
        exposure_log: None,
        experiments: Vec::new(),
    }
}

/// A gateway served on 127.0.0.1:0; stops when dropped.
pub struct Served {
    pub gateway: Gateway,
    pub url: String,
    pub client: reqwest::Client,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn serve(config: RoutingConfig) -> Served {
    serve_with_metrics(config, None).await
}

pub async fn serve_with_metrics(
    config: RoutingConfig,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
) -> Served {
    let gateway = Gateway::new(config).expect("valid config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let router = gateway.router(metrics);
    // The real listener, limits and all, as the binaries serve it.
    let limits = kan_http::ListenerLimits::named("gateway");
    let task = tokio::spawn(async move {
        let _ = kan_http::serve(listener, router, limits, std::future::pending()).await;
    });
    Served {
        gateway,
        url,
        client: reqwest::Client::new(),
        task,
    }
}

impl Served {
    /// POSTs `body` to `/v1/recall`; returns the status and the JSON answer.
    pub async fn recall(&self, body: serde_json::Value) -> (u16, serde_json::Value) {
        let response = self
            .client
            .post(format!("{}/v1/recall", self.url))
            .json(&body)
            .send()
            .await
            .expect("send");
        let status = response.status().as_u16();
        (status, response.json().await.expect("json body"))
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("send");
        (
            response.status().as_u16(),
            response.text().await.expect("text"),
        )
    }
}

/// The item ids of a gateway response.
pub fn ids(response: &serde_json::Value) -> Vec<String> {
    response["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .map(|c| c["item_id"].as_str().expect("id").to_string())
        .collect()
}

/// The status of one queue in a gateway response.
pub fn status_of<'a>(response: &'a serde_json::Value, queue: &str) -> &'a str {
    response["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .find(|q| q["name"] == queue)
        .and_then(|q| q["status"].as_str())
        .unwrap_or("absent")
}
