//! End to end: the real `kan operator` binary against a Kubernetes API stand-in with watches.
//!
//! The stand-in is `kube_standin.py` (kmock 0.8 from PyPI plus a shim, see its README), found at
//! `$KAN_KUBE_STANDIN` or `../shared/tools/kube-standin` beside the checkout. Without it the test
//! says so loudly and passes (a fresh machine has no `../shared`); with it, a failure to
//! install kmock (`scripts/install-kube-standin.sh`) fails the test.
//!
//! The walk: apply the CRDs and `examples/` → every child is created → the Deployments report
//! ready pods → the gateway's routing ConfigMap routes every queue and the experiment is Live →
//! an experiment edit moves its buckets in the routing → a deleted queue leaves the routing and
//! the experiment turns not Live → a restarted operator makes no write at all → with two
//! replicas, a standby takes over within the Lease retry period when the leader stops, and
//! within the Lease duration when it is killed, and the new leader reconciles.
//!
//! Operators reach the stand-in through a proxy of this test that records every request line,
//! so "no write" is counted in requests (a no-op PATCH counts too), not inferred from
//! resourceVersions. Lease requests are leader election, not reconciles, and are left out.
//!
//! What the stand-in cannot show (docs/operator.md lists them): server-side-apply field
//! ownership (a field dropped from an apply is kept here, so the replicas → autoscaling
//! handover is only checked by `tests/e2e/kind.sh`), owner-reference garbage collection (the
//! deleted queue's children stay here), admission and CEL rules, RBAC, Table printing, and
//! built-in controllers (this test writes the Deployment status a real cluster's controllers
//! would).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kan_api::routing::RoutingConfig;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const NS: &str = "recsys";
/// Generous: the stand-in serves ~70 requests/s and CI machines are shared.
const STEP: Duration = Duration::from_secs(45);
/// Lease settings of the two-replica phase. The duration is long so that a takeover within
/// `LEASE_RETRY_S` can only come from the standby's polling, not from the lease expiring.
const LEASE_DURATION_S: u64 = 20;
const LEASE_GRACE_S: u64 = 5;
const LEASE_RETRY_S: u64 = 1;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The stand-in's directory, or `None` when this machine has none.
fn standin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("KAN_KUBE_STANDIN") {
        let dir = PathBuf::from(dir);
        assert!(
            dir.join("kube_standin.py").is_file(),
            "KAN_KUBE_STANDIN={} has no kube_standin.py",
            dir.display()
        );
        return Some(dir);
    }
    let dir = repo().join("../shared/tools/kube-standin");
    dir.join("kube_standin.py").is_file().then_some(dir)
}

fn tools() -> PathBuf {
    std::env::var_os("KAN_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/kan-tools")
        })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A child process killed (SIGKILL) when dropped.
struct Process {
    child: Child,
    log: PathBuf,
}

impl Process {
    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// SIGTERM, then waits for the exit.
    fn terminate(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "SIGTERM to {}", self.pid());
        let deadline = Instant::now() + STEP;
        while self.child.try_wait().expect("try_wait").is_none() {
            assert!(
                Instant::now() < deadline,
                "no exit after SIGTERM:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(mut command: Command, log: PathBuf) -> Process {
    let out = std::fs::File::create(&log).expect("log file");
    let err = out.try_clone().expect("log file");
    let child = command
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .expect("spawns");
    Process { child, log }
}

async fn wait_listening(port: u16, process: &Process) {
    let deadline = Instant::now() + STEP;
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing listens on {port}:\n{}",
            process.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Records the request line (`METHOD /path?query`) of every request it forwards.
#[derive(Clone, Default)]
struct RequestLog(Arc<Mutex<Vec<String>>>);

impl RequestLog {
    fn len(&self) -> usize {
        self.0.lock().expect("log").len()
    }

    /// Writes (anything but GET) after the first `from` requests, Lease requests excluded.
    fn writes_since(&self, from: usize) -> Vec<String> {
        self.0.lock().expect("log")[from..]
            .iter()
            .filter(|line| !line.starts_with("GET "))
            .filter(|line| !line.contains("/apis/coordination.k8s.io/"))
            .cloned()
            .collect()
    }

    fn push(&self, line: String) {
        self.0.lock().expect("log").push(line);
    }
}

/// A TCP proxy to `upstream` that parses the HTTP/1.1 requests going through it.
async fn start_proxy(upstream: SocketAddr, log: RequestLog) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    return;
                };
                let (mut from_client, mut to_client) = client.into_split();
                let (mut from_server, mut to_server) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
                    let _ = to_client.shutdown().await;
                });
                let mut parser = RequestParser::default();
                let mut chunk = vec![0u8; 64 * 1024];
                loop {
                    let n = match from_client.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    for line in parser.feed(&chunk[..n]) {
                        log.push(line);
                    }
                    if to_server.write_all(&chunk[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = to_server.shutdown().await;
            });
        }
    });
    port
}

/// Splits a client's byte stream into requests (head, then `Content-Length` body bytes).
#[derive(Default)]
struct RequestParser {
    buf: Vec<u8>,
    skip: usize,
    lost: bool,
}

impl RequestParser {
    fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        if self.lost {
            return lines;
        }
        self.buf.extend_from_slice(bytes);
        loop {
            let skipped = self.skip.min(self.buf.len());
            self.buf.drain(..skipped);
            self.skip -= skipped;
            if self.skip > 0 {
                break;
            }
            let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                break;
            };
            let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
            self.buf.drain(..end + 4);
            let mut head_lines = head.lines();
            let request_line = head_lines.next().unwrap_or_default();
            let mut parts = request_line.split(' ');
            let method = parts.next().unwrap_or_default();
            let target = parts.next().unwrap_or_default();
            lines.push(format!("{method} {target}"));
            for header in head_lines {
                let lower = header.to_ascii_lowercase();
                if let Some(length) = lower.strip_prefix("content-length:") {
                    self.skip = length.trim().parse().unwrap_or(0);
                } else if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                    // Not sent by kube-rs; make any count on this connection fail loudly.
                    lines.push("UNPARSED chunked request body".into());
                    self.lost = true;
                    return lines;
                }
            }
        }
        lines
    }
}

/// `GET path` on the operator's health port: (status, body).
async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.ok()?;
    let text = String::from_utf8_lossy(&response);
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

/// The sum of a Prometheus counter's samples whose labels contain `labels`.
fn counter(metrics: &str, name: &str, labels: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

struct Operator {
    process: Process,
    health: u16,
}

impl Operator {
    fn start(dir: &Path, kubeconfig: &Path, identity: &str) -> Operator {
        let health = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_kan"));
        command
            .args(["operator", "--log-format", "text", "--leader-elect"])
            .args(["--listen", &format!("127.0.0.1:{health}")])
            .args(["--lease-namespace", "kan-system", "--identity", identity])
            .args(["--lease-duration-s", &LEASE_DURATION_S.to_string()])
            .args(["--lease-grace-s", &LEASE_GRACE_S.to_string()])
            .args(["--lease-retry-s", &LEASE_RETRY_S.to_string()])
            .env("KUBECONFIG", kubeconfig)
            .env("KAN_LOG", "info")
            .env_remove("KAN_WATCH_NAMESPACES")
            .env_remove("POD_NAME")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
        let process = spawn(command, dir.join(format!("operator-{identity}.log")));
        Operator { process, health }
    }

    async fn readyz(&self) -> Option<(u16, String)> {
        http_get(self.health, "/readyz").await
    }

    async fn metrics(&self) -> String {
        http_get(self.health, "/metrics")
            .await
            .map(|(_, body)| body)
            .unwrap_or_default()
    }
}

/// Polls `check` until it returns `Some`, or fails naming `what` with the operators' logs.
async fn eventually<T, F, Fut>(what: &str, operators: &[&Operator], mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + STEP;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = operators.iter().map(|o| o.process.log_tail()).collect();
            panic!(
                "timed out waiting for {what}; operator logs:\n{}",
                logs.join("\n---\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn kan_resource(kind: &str) -> ApiResource {
    ApiResource {
        group: "kan.dev".into(),
        version: "v1alpha1".into(),
        api_version: "kan.dev/v1alpha1".into(),
        kind: kind.into(),
        plural: format!("{}s", kind.to_ascii_lowercase()),
    }
}

fn core_resource(kind: &str, group: &str, version: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: if group.is_empty() {
            version.into()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.into(),
        plural: plural.into(),
    }
}

struct Cluster {
    client: kube::Client,
}

impl Cluster {
    fn api(&self, resource: &ApiResource) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), NS, resource)
    }

    fn queues(&self) -> Api<DynamicObject> {
        self.api(&kan_resource("RecallQueue"))
    }

    fn experiments(&self) -> Api<DynamicObject> {
        self.api(&kan_resource("RecallExperiment"))
    }

    fn gateways(&self) -> Api<DynamicObject> {
        self.api(&kan_resource("RecallGateway"))
    }

    fn deployments(&self) -> Api<DynamicObject> {
        self.api(&core_resource("Deployment", "apps", "v1", "deployments"))
    }

    fn config_maps(&self) -> Api<DynamicObject> {
        self.api(&core_resource("ConfigMap", "", "v1", "configmaps"))
    }

    async fn names(&self, api: &Api<DynamicObject>) -> BTreeSet<String> {
        api.list(&Default::default())
            .await
            .map(|list| {
                list.items
                    .into_iter()
                    .filter_map(|o| o.metadata.name)
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn routing(&self) -> Option<RoutingConfig> {
        let cm = self.config_maps().get_opt("feed-routing").await.ok()??;
        let text = cm
            .data
            .get("data")?
            .get("routing.yaml")?
            .as_str()?
            .to_string();
        Some(serde_saphyr::from_str(&text).expect("routing.yaml parses"))
    }

    /// (status, reason) of condition `kind` of `name`.
    async fn condition(
        &self,
        api: &Api<DynamicObject>,
        name: &str,
        kind: &str,
    ) -> Option<(String, String)> {
        let obj = api.get_opt(name).await.ok()??;
        let condition = obj.data["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == kind)?
            .clone();
        Some((
            condition["status"].as_str()?.to_string(),
            condition["reason"].as_str()?.to_string(),
        ))
    }

    /// What the Deployment controller and kubelets of a real cluster would report: every pod
    /// of every Deployment ready.
    async fn mark_deployments_ready(&self) {
        let api = self.deployments();
        for d in api.list(&Default::default()).await.expect("list").items {
            let name = d.metadata.name.clone().expect("name");
            let replicas = d.data["spec"]["replicas"].as_i64().unwrap_or(2);
            let status = json!({"status": {
                "observedGeneration": d.metadata.generation.unwrap_or(1),
                "replicas": replicas, "updatedReplicas": replicas,
                "readyReplicas": replicas, "availableReplicas": replicas,
            }});
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await
                .expect("status patch");
        }
    }
}

/// A queue, a gateway and an experiment (on the examples' gateway) with enum values from the
/// future.
fn undecodable_objects() -> Vec<(&'static str, DynamicObject)> {
    let object = |value: Value| serde_json::from_value(value).expect("object");
    vec![
        (
            "RecallQueue",
            object(
                json!({"apiVersion": "kan.dev/v1alpha1", "kind": "RecallQueue",
                "metadata": {"name": "future"},
                "spec": {"strategy": {"type": "quantum"}, "bundle": {"uri": "/b"}}}),
            ),
        ),
        (
            "RecallGateway",
            object(
                json!({"apiVersion": "kan.dev/v1alpha1", "kind": "RecallGateway",
                "metadata": {"name": "future"},
                "spec": {"queues": [{"name": "popular"}], "merge": {"policy": "quantum"}}}),
            ),
        ),
        (
            "RecallExperiment",
            object(
                json!({"apiVersion": "kan.dev/v1alpha1", "kind": "RecallExperiment",
                "metadata": {"name": "future"},
                "spec": {"gateway": "feed", "layer": "other", "traffic": 10, "arms": [
                    {"name": "control", "weight": 50},
                    {"name": "treatment", "weight": 50, "merge": {"policy": "quantum"}}]}}),
            ),
        ),
    ]
}

fn read_yaml(path: &Path) -> DynamicObject {
    let text = std::fs::read_to_string(path).expect("read");
    let value: Value = serde_saphyr::from_str(&text).expect("yaml");
    serde_json::from_value(value).expect("a Kubernetes object")
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_binary_walks_apply_ready_route_edit_delete_restart_and_handover_on_the_standin()
 {
    let Some(standin) = standin_dir() else {
        eprintln!(
            "\n\n*** SKIPPED: no Kubernetes API stand-in at ../shared/tools/kube-standin and \
             KAN_KUBE_STANDIN is unset: the operator's end-to-end test did not run. ***\n\n"
        );
        return;
    };
    let install = Command::new(repo().join("scripts/install-kube-standin.sh"))
        .status()
        .expect("runs install-kube-standin.sh");
    assert!(
        install.success(),
        "installing kmock for the stand-in failed"
    );
    let dir = tempfile::tempdir().expect("tempdir");

    // The stand-in, and the recording proxy the operators reach it through.
    let api_port = free_port();
    let mut python = Command::new(tools().join("kube-standin/bin/python"));
    python
        .arg(standin.join("kube_standin.py"))
        .args(["--port", &api_port.to_string()]);
    let standin_process = spawn(python, dir.path().join("standin.log"));
    wait_listening(api_port, &standin_process).await;
    let requests = RequestLog::default();
    let proxy_port = start_proxy(([127, 0, 0, 1], api_port).into(), requests.clone()).await;
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: s\n  cluster: {{server: 'http://127.0.0.1:{proxy_port}'}}\ncontexts:\n- name: s\n  context: {{cluster: s, user: s, namespace: default}}\ncurrent-context: s\nusers:\n- name: s\n  user: {{token: t}}\n"
        ),
    )
    .expect("kubeconfig");
    let config = kube::Config::new(format!("http://127.0.0.1:{api_port}").parse().expect("uri"));
    let cluster = Cluster {
        client: kube::Client::try_from(config).expect("client"),
    };

    // CRDs first (the operator's watches need them), then the operator, then the examples.
    let crds = Api::<DynamicObject>::all_with(
        cluster.client.clone(),
        &core_resource(
            "CustomResourceDefinition",
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
        ),
    );
    for file in yaml_files(&repo().join("crds")) {
        crds.create(&PostParams::default(), &read_yaml(&file))
            .await
            .expect("CRD created");
    }
    let mut first = Operator::start(dir.path(), &kubeconfig, "op-a");
    eventually("op-a to lead", &[&first], || async {
        (first.readyz().await? == (200, "leader".to_string())).then_some(())
    })
    .await;

    let mut queues = BTreeSet::new();
    for file in yaml_files(&repo().join("examples")) {
        let obj = read_yaml(&file);
        let kind = obj.types.as_ref().expect("kind").kind.clone();
        if kind == "RecallQueue" {
            queues.insert(obj.metadata.name.clone().expect("name"));
        }
        cluster
            .api(&kan_resource(&kind))
            .create(&PostParams::default(), &obj)
            .await
            .unwrap_or_else(|e| panic!("{} created: {e}", file.display()));
    }
    assert!(queues.len() >= 3, "the examples have queues: {queues:?}");
    // One object of each kind that this version cannot decode (a newer CRD's enum values; the
    // stand-in, like a real server after a `helm rollback`, stores them): each is skipped and
    // reported, and the walk below shows that nothing else is held up by them.
    for (kind, object) in undecodable_objects() {
        cluster
            .api(&kan_resource(kind))
            .create(&PostParams::default(), &object)
            .await
            .unwrap_or_else(|e| panic!("undecodable {kind} created: {e}"));
    }

    // Children: a ConfigMap, Deployment and Service per queue, and the gateway's.
    let mut deployments = queues.clone();
    deployments.insert("feed-gateway".into());
    let mut config_maps: BTreeSet<String> = queues.iter().map(|q| format!("{q}-worker")).collect();
    config_maps.insert("feed-routing".into());
    eventually("every child", &[&first], || async {
        let have_d = cluster.names(&cluster.deployments()).await;
        let have_cm = cluster.names(&cluster.config_maps()).await;
        (deployments.is_subset(&have_d) && config_maps.is_subset(&have_cm)).then_some(())
    })
    .await;
    let first_routing = cluster.routing().await.expect("routing");
    assert!(
        first_routing.endpoints.is_empty(),
        "no worker pod is ready yet, so nothing is routed: {:?}",
        first_routing.endpoints
    );

    // Ready pods: every queue is routed and the experiment is Live.
    cluster.mark_deployments_ready().await;
    eventually("every queue routed", &[&first], || async {
        let routing = cluster.routing().await?;
        let routed: BTreeSet<String> = routing.endpoints.keys().cloned().collect();
        (routed == queues && routing.experiments.len() == 1).then_some(())
    })
    .await;
    eventually("the experiment Live", &[&first], || async {
        let ready = cluster
            .condition(&cluster.experiments(), "gat-vs-dssm", "Ready")
            .await?;
        (ready == ("True".into(), "Live".into())).then_some(())
    })
    .await;

    let metrics = first.metrics().await;
    for kind in ["RecallQueue", "RecallGateway", "RecallExperiment"] {
        assert!(
            counter(
                &metrics,
                "kan_operator_undecodable_objects_total",
                &format!("\"{kind}\"")
            ) >= 1.0,
            "the undecodable {kind} is counted:\n{metrics}"
        );
    }
    // Each start reports them again (a Warning event): gone before the restart below.
    for (kind, object) in undecodable_objects() {
        let name = object.metadata.name.expect("name");
        cluster
            .api(&kan_resource(kind))
            .delete(&name, &DeleteParams::default())
            .await
            .expect("deleted");
    }

    // An experiment edit reaches the routing: 20 % → 40 % of the layer's buckets.
    cluster
        .experiments()
        .patch(
            "gat-vs-dssm",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"traffic": 40}})),
        )
        .await
        .expect("experiment edited");
    eventually("the edited buckets routed", &[&first], || async {
        let routing = cluster.routing().await?;
        let buckets = routing.experiments.first()?.buckets;
        ((buckets.start, buckets.end) == (0, 4000)).then_some(())
    })
    .await;

    // A deleted queue leaves the routing; the experiment whose arm uses it is no longer Live.
    cluster
        .queues()
        .delete("itemcf", &DeleteParams::default())
        .await
        .expect("queue deleted");
    eventually("itemcf unrouted", &[&first], || async {
        let routing = cluster.routing().await?;
        (!routing.endpoints.contains_key("itemcf") && routing.endpoints.len() == queues.len() - 1)
            .then_some(())
    })
    .await;
    eventually("the experiment not Live", &[&first], || async {
        let ready = cluster
            .condition(&cluster.experiments(), "gat-vs-dssm", "Ready")
            .await?;
        (ready == ("False".into(), "ArmQueuesNotRouted".into())).then_some(())
    })
    .await;
    // Let the last writes land (status of the gateway, events) before the restart.
    quiet(&requests, &[&first]).await;

    // A restarted operator reconciles everything and writes nothing.
    first.process.terminate();
    let before_restart = requests.len();
    assert!(
        requests
            .writes_since(0)
            .iter()
            .any(|w| w.starts_with("PATCH ")),
        "the proxy saw op-a's writes"
    );
    let second = Operator::start(dir.path(), &kubeconfig, "op-b");
    let live_queues = queues.len() as f64 - 1.0;
    eventually("op-b to reconcile every object", &[&second], || async {
        let metrics = second.metrics().await;
        let done = counter(
            &metrics,
            "kan_operator_reconciliations_total",
            "RecallQueue",
        ) >= live_queues
            && counter(
                &metrics,
                "kan_operator_reconciliations_total",
                "RecallGateway",
            ) >= 1.0
            && counter(
                &metrics,
                "kan_operator_reconciliations_total",
                "RecallExperiment",
            ) >= 1.0;
        done.then_some(())
    })
    .await;
    quiet(&requests, &[&second]).await;
    let writes = requests.writes_since(before_restart);
    assert!(
        writes.is_empty(),
        "a restart with nothing changed writes nothing, but op-b wrote:\n{}",
        writes.join("\n")
    );

    // Two replicas: a standby takes over when the leader stops, then when it is killed.
    let third = Operator::start(dir.path(), &kubeconfig, "op-c");
    eventually("op-c to stand by", &[&third], || async {
        (third.readyz().await? == (200, "standby".to_string())).then_some(())
    })
    .await;
    let mut second = second;
    let stopped = Instant::now();
    second.process.terminate();
    eventually("op-c to lead", &[&third], || async {
        (third.readyz().await? == (200, "leader".to_string())).then_some(())
    })
    .await;
    let takeover = stopped.elapsed();
    // The bound is the retry period; the Lease (20 s) has not expired, so only the standby's
    // polling of a released Lease can explain a takeover this soon.
    assert!(
        takeover < Duration::from_secs(LEASE_RETRY_S + 5),
        "a standby takes over a released Lease within its retry period (+ margin), took {takeover:?}"
    );
    // Edit only once the new leader has listed and reconciled the gateway and had a moment to
    // open its watch: the stand-in does not replay changes made between a list and the watch
    // that follows it (a real API server resumes the watch from the list's resourceVersion),
    // so an edit landing in that gap would never reach the new leader here.
    eventually("op-c to reconcile the gateway", &[&third], || async {
        let metrics = third.metrics().await;
        (counter(
            &metrics,
            "kan_operator_reconciliations_total",
            "RecallGateway",
        ) >= 1.0)
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster
        .gateways()
        .patch(
            "feed",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"merge": {"total": 250}}})),
        )
        .await
        .expect("gateway edited");
    eventually("the new leader to route the edit", &[&third], || async {
        (cluster.routing().await?.merge.total == 250).then_some(())
    })
    .await;

    // A killed leader never releases the Lease: the standby waits for it to expire.
    let fourth = Operator::start(dir.path(), &kubeconfig, "op-d");
    eventually("op-d to stand by", &[&fourth], || async {
        (fourth.readyz().await? == (200, "standby".to_string())).then_some(())
    })
    .await;
    let mut third = third;
    let killed = Instant::now();
    third.process.kill();
    let deadline = Instant::now() + Duration::from_secs(LEASE_DURATION_S + 30);
    while fourth.readyz().await != Some((200, "leader".to_string())) {
        assert!(
            Instant::now() < deadline,
            "op-d never took over from a killed leader:\n{}",
            fourth.process.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The holder renews `LEASE_GRACE_S` before expiry, so its Lease had at least that long
    // to run when it was killed.
    assert!(
        killed.elapsed() >= Duration::from_secs(LEASE_GRACE_S - 1),
        "a standby must not take a Lease before it expires, took over after {:?}",
        killed.elapsed()
    );
    drop(standin_process);
}

/// Waits until the operators made no request but Lease renewals and watches for a second.
async fn quiet(requests: &RequestLog, operators: &[&Operator]) {
    let mut seen = requests.len();
    let mut since = Instant::now();
    eventually("the operator to go quiet", operators, || {
        let now = requests.len();
        let writes = requests.writes_since(seen);
        if !writes.is_empty() || now < seen {
            since = Instant::now();
        }
        seen = now;
        let done = since.elapsed() > Duration::from_secs(1);
        async move { done.then_some(()) }
    })
    .await;
}
