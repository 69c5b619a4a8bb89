//! Polls the online A/B readout (`GET /v1/experiments/readout`) of the gateway that serves an
//! experiment, for [`crate::status::readout`] to put into its status.
//!
//! Each gateway pod keeps its own exposure log, so by default every ready pod behind the
//! gateway's Service is asked (found through the Service's EndpointSlices) and the counts are
//! summed; asking the Service would read one pod's log at random. `--readout-url` replaces this
//! with one base URL (tests, an operator outside the cluster going through `kubectl proxy`).
//! A poll never fails the reconcile: what went wrong becomes an [`Observation::Failed`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::discovery::v1::EndpointSlice;
use kan_api::crd::RecallGatewaySpec;
use kan_api::events::Readout;
use kube::api::{Api, ListParams};

use crate::names::{HTTP_PORT, gateway_workload_name};
use crate::status::readout::Observation;

/// Default time between two polls of one experiment's readout.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(30);
/// Default time a gateway pod gets to answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// The path every gateway serves the readout on.
pub const READOUT_PATH: &str = "/v1/experiments/readout";
/// Largest readout body read from one pod (a readout is a few lines per arm).
const MAX_BODY_BYTES: usize = 1 << 20;
/// Most pods asked per poll.
const MAX_PODS: usize = 64;

/// How the operator polls readouts.
#[derive(Clone, Debug, PartialEq)]
pub struct ReadoutConfig {
    /// Time between two polls of one experiment; `None` turns polling off.
    pub period: Option<Duration>,
    /// Time a pod gets to answer.
    pub timeout: Duration,
    /// Base URL to poll instead of the gateway's pods: `{namespace}`, `{gateway}` and
    /// `{service}` are replaced (e.g. `http://127.0.0.1:8001/api/v1/namespaces/{namespace}/services/{service}:http/proxy`).
    pub url: Option<String>,
}

impl Default for ReadoutConfig {
    fn default() -> Self {
        Self {
            period: Some(DEFAULT_PERIOD),
            timeout: DEFAULT_TIMEOUT,
            url: None,
        }
    }
}

/// Polls readouts at most once per period per experiment.
pub struct Poller {
    cfg: ReadoutConfig,
    http: Result<reqwest::Client, String>,
    /// By experiment uid: when its readout was last polled.
    last: Mutex<HashMap<String, Instant>>,
}

impl Poller {
    pub fn new(cfg: ReadoutConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"));
        Self {
            cfg,
            http,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// How soon an experiment whose gateway serves a readout should be reconciled again.
    pub fn period(&self) -> Option<Duration> {
        self.cfg.period
    }

    /// Looks at the readout of the experiment with `uid` served by gateway `gateway` (its spec
    /// when it exists) in `namespace`: polls when the gateway serves one and a poll is due.
    pub async fn observe(
        &self,
        client: &kube::Client,
        uid: &str,
        namespace: &str,
        gateway: &str,
        spec: Option<&RecallGatewaySpec>,
    ) -> Observation {
        if let Some(why) = not_served(gateway, spec) {
            return Observation::NotServed(why);
        }
        if !self.due(uid) {
            return Observation::NotDue;
        }
        let urls = match &self.cfg.url {
            Some(template) => vec![expand(template, namespace, gateway)],
            None => match pod_urls_of(client, namespace, gateway).await {
                Ok(urls) => urls,
                Err(failed) => return failed,
            },
        };
        let http = match &self.http {
            Ok(http) => http,
            Err(e) => {
                return Observation::Failed {
                    reason: "GatewayUnreachable",
                    message: e.clone(),
                };
            }
        };
        let answers =
            futures::future::join_all(urls.iter().map(|url| fetch(http, url, self.cfg.timeout)))
                .await;
        let total = answers.len();
        let mut readouts = Vec::with_capacity(total);
        let mut failures = Vec::new();
        for (url, answer) in urls.iter().zip(answers) {
            match answer {
                Ok(readout) => readouts.push(readout),
                Err(why) => failures.push(format!("{url}: {why}")),
            }
        }
        if let Some(first) = failures.first() {
            metrics::counter!(crate::metrics::READOUT_POLLS, "outcome" => "failed").increment(1);
            return Observation::Failed {
                reason: "GatewayUnreachable",
                message: format!(
                    "{} of {total} gateway pod(s) did not answer the readout ({first})",
                    failures.len()
                ),
            };
        }
        metrics::counter!(crate::metrics::READOUT_POLLS, "outcome" => "read").increment(1);
        Observation::Read(readouts)
    }

    /// True (and the poll recorded) when the experiment's last poll is a period old.
    fn due(&self, uid: &str) -> bool {
        let Some(period) = self.cfg.period else {
            return false;
        };
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        if last
            .get(uid)
            .is_some_and(|at| now.duration_since(*at) < period)
        {
            return false;
        }
        last.insert(uid.to_string(), now);
        true
    }
}

/// Why gateway `name` serves no readout, if it does not: it must exist, log exposures and
/// have a signal store (the readout joins the two).
pub fn not_served(name: &str, spec: Option<&RecallGatewaySpec>) -> Option<String> {
    match spec {
        None => Some(format!("RecallGateway '{name}' does not exist")),
        Some(s) if s.exposure_log.is_none() => Some(format!(
            "RecallGateway '{name}' has no exposureLog: it serves no readout"
        )),
        Some(s) if s.signals.is_none() => Some(format!(
            "RecallGateway '{name}' has no signals store: it serves no readout"
        )),
        Some(_) => None,
    }
}

/// `template` with its placeholders replaced, and the readout path appended.
pub fn expand(template: &str, namespace: &str, gateway: &str) -> String {
    let base = template
        .replace("{namespace}", namespace)
        .replace("{gateway}", gateway)
        .replace("{service}", &gateway_workload_name(gateway));
    format!("{}{READOUT_PATH}", base.trim_end_matches('/'))
}

/// The readout URL of every ready pod behind gateway `gateway`'s Service.
async fn pod_urls_of(
    client: &kube::Client,
    namespace: &str,
    gateway: &str,
) -> Result<Vec<String>, Observation> {
    let service = gateway_workload_name(gateway);
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), namespace);
    let params = ListParams::default().labels(&format!("kubernetes.io/service-name={service}"));
    let slices = api.list(&params).await.map_err(|e| Observation::Failed {
        reason: "EndpointsUnavailable",
        message: format!("listing the EndpointSlices of Service '{service}': {e}"),
    })?;
    let urls = pod_urls(&slices.items);
    if urls.is_empty() {
        return Err(Observation::Failed {
            reason: "NoReadyGatewayPod",
            message: format!("Service '{service}' has no ready pod to read"),
        });
    }
    Ok(urls)
}

/// The readout URL of each ready endpoint of `slices` on their `http` port, sorted, at most
/// [`MAX_PODS`]. An endpoint whose readiness is unknown counts as ready (the API's meaning).
pub fn pod_urls(slices: &[EndpointSlice]) -> Vec<String> {
    let mut urls: Vec<String> = slices
        .iter()
        .flat_map(|slice| {
            let port = slice
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some("http"))
                .and_then(|p| p.port)
                .unwrap_or(HTTP_PORT);
            let v6 = slice.address_type == "IPv6";
            slice
                .endpoints
                .iter()
                .flatten()
                .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false))
                .flat_map(|e| e.addresses.iter())
                .map(move |address| {
                    let host = if v6 {
                        format!("[{address}]")
                    } else {
                        address.clone()
                    };
                    format!("http://{host}:{port}{READOUT_PATH}")
                })
                .collect::<Vec<_>>()
        })
        .collect();
    urls.sort();
    urls.dedup();
    urls.truncate(MAX_PODS);
    urls
}

/// One pod's readout, or why there is none, in words stable from one poll to the next.
async fn fetch(http: &reqwest::Client, url: &str, timeout: Duration) -> Result<Readout, String> {
    let why = |e: reqwest::Error| {
        if e.is_timeout() {
            format!("no answer within {} ms", timeout.as_millis())
        } else if e.is_connect() {
            "connection failed".to_string()
        } else {
            "request failed".to_string()
        }
    };
    let mut response = http.get(url).send().await.map_err(why)?;
    if !response.status().is_success() {
        return Err(format!("answered HTTP {}", response.status().as_u16()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(why)? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(format!("answered more than {MAX_BODY_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body)
        .map_err(|e| format!("answered a body that is not a readout ({e})"))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};

    use super::*;

    fn slice(address_type: &str, port: i32, endpoints: &[(&str, Option<bool>)]) -> EndpointSlice {
        EndpointSlice {
            address_type: address_type.into(),
            ports: Some(vec![EndpointPort {
                name: Some("http".into()),
                port: Some(port),
                ..Default::default()
            }]),
            endpoints: Some(
                endpoints
                    .iter()
                    .map(|(address, ready)| Endpoint {
                        addresses: vec![address.to_string()],
                        conditions: Some(EndpointConditions {
                            ready: *ready,
                            ..Default::default()
                        }),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn every_ready_pod_of_every_slice_is_asked_once_and_not_ready_ones_never() {
        let slices = [
            slice(
                "IPv4",
                8080,
                &[
                    ("10.0.0.2", Some(true)),
                    ("10.0.0.3", Some(false)),
                    ("10.0.0.1", None),
                ],
            ),
            slice("IPv6", 8081, &[("fd00::1", Some(true))]),
            slice("IPv4", 8080, &[("10.0.0.1", Some(true))]),
        ];
        assert_eq!(
            pod_urls(&slices),
            [
                "http://10.0.0.1:8080/v1/experiments/readout",
                "http://10.0.0.2:8080/v1/experiments/readout",
                "http://[fd00::1]:8081/v1/experiments/readout",
            ]
        );
    }

    #[test]
    fn the_url_template_names_the_namespace_and_the_gateway_service() {
        assert_eq!(
            expand(
                "http://127.0.0.1:8001/api/v1/namespaces/{namespace}/services/{service}:http/proxy/",
                "recsys",
                "feed"
            ),
            "http://127.0.0.1:8001/api/v1/namespaces/recsys/services/feed-gateway:http/proxy/v1/experiments/readout"
        );
    }

    #[test]
    fn only_a_gateway_with_an_exposure_log_and_a_signal_store_serves_a_readout() {
        let spec = |yaml: &str| -> RecallGatewaySpec {
            serde_saphyr::from_str(yaml).expect("gateway spec parses")
        };
        assert!(not_served("feed", None).is_some_and(|w| w.contains("does not exist")));
        let plain = spec("queues: [{name: a}]");
        assert!(not_served("feed", Some(&plain)).is_some_and(|w| w.contains("exposureLog")));
        let logged = spec("queues: [{name: a}]\nexposureLog: /var/log/kan/e.jsonl");
        assert!(not_served("feed", Some(&logged)).is_some_and(|w| w.contains("signals")));
        let both = spec(
            "queues: [{name: a}]\nexposureLog: /var/log/kan/e.jsonl\nsignals: {redis: {url: redis://r:6379}}",
        );
        assert_eq!(not_served("feed", Some(&both)), None);
    }

    #[test]
    fn a_poll_is_due_once_per_period_and_never_when_polling_is_off() {
        let poller = Poller::new(ReadoutConfig {
            period: Some(Duration::from_secs(3600)),
            ..ReadoutConfig::default()
        });
        assert!(poller.due("a"));
        assert!(!poller.due("a"));
        assert!(poller.due("b"));
        let off = Poller::new(ReadoutConfig {
            period: None,
            ..ReadoutConfig::default()
        });
        assert!(!off.due("a"));
    }
}
