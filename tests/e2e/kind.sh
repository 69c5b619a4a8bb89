#!/usr/bin/env bash
# End-to-end check on a local kind cluster: build the image, install the chart, apply an
# operational queue (needs no bundle) and a gateway, wait for both to be Ready, call the
# gateway, switch the queue from replicas to autoscaling (no pod restarted, never fewer
# replicas), apply an experiment the gateway would refuse (not routed, Ready=False, the gateway
# keeps serving) and one the CRD's CEL rules refuse, delete everything and check the children
# were garbage-collected.
#
# Needs docker, kind, kubectl and helm. It cannot run in Kan's CI (no Docker there); run it
# by hand:  tests/e2e/kind.sh        (KEEP=1 keeps the cluster afterwards)
set -euo pipefail
cd "$(dirname "$0")/../.."

cluster=${KIND_CLUSTER:-kan-e2e}
image=${IMAGE:-kan:e2e}
ns=kan-e2e

for tool in docker kind kubectl helm curl; do
  command -v "$tool" >/dev/null || { echo "error: $tool is required" >&2; exit 1; }
done

kind get clusters | grep -qx "$cluster" || kind create cluster --name "$cluster" --wait 120s
trap '[[ -n "${KEEP:-}" ]] || kind delete cluster --name "$cluster"' EXIT
kubectl config use-context "kind-$cluster"

docker build -t "$image" .
kind load docker-image "$image" --name "$cluster"

helm upgrade --install kan charts/kan --namespace kan-system --create-namespace \
  --set image.repository="${image%:*}" --set image.tag="${image##*:}" --set image.pullPolicy=Never \
  --wait --timeout 3m

kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$ns" apply -f examples/queue-editorial.yaml
kubectl -n "$ns" apply -f - <<'YAML'
apiVersion: kan.dev/v1alpha1
kind: RecallGateway
metadata:
  name: e2e
spec:
  queues: [{name: editorial}]
YAML

kubectl -n "$ns" wait rq/editorial --for=condition=Ready --timeout=180s
kubectl -n "$ns" wait rgw/e2e --for=condition=Ready --timeout=180s
kubectl -n "$ns" get rq,rgw

kubectl -n "$ns" port-forward svc/e2e-gateway 18080:8080 >/dev/null &
pf=$!
# The routing ConfigMap reaches the gateway pod through the kubelet's volume sync (up to a
# minute): retry until the pinned item comes back.
for _ in $(seq 1 60); do
  body=$(curl -sf localhost:18080/v1/recall -H 'content-type: application/json' -d '{"user_id": "u1", "k": 5}' || true)
  if grep -q '"item_id":"50"' <<<"$body"; then break; fi
  sleep 2
done
kill "$pf"
echo "gateway answered: $body"
grep -q '"item_id":"50"' <<<"$body" || { echo "error: the pinned item 50 was not returned" >&2; exit 1; }

# Scaling is not a restart: replicas 1 -> 2 patches the Deployment, the pods stay.
pods_before=$(kubectl -n "$ns" get pods -l app.kubernetes.io/instance=editorial -o name | sort)
kubectl -n "$ns" patch rq/editorial --type merge -p '{"spec": {"replicas": 2}}'
kubectl -n "$ns" rollout status deploy/editorial --timeout=120s
for pod in $pods_before; do
  kubectl -n "$ns" get "$pod" >/dev/null || { echo "error: $pod was restarted by a scaling edit" >&2; exit 1; }
done
# replicas -> autoscaling: the operator hands spec.replicas over (field manager
# kan-operator-handover) before dropping it, so the Deployment never falls to 1 pod while the
# HPA has not acted yet (without metrics-server on kind, it never does).
kubectl -n "$ns" patch rq/editorial --type merge -p \
  '{"spec": {"replicas": null, "autoscaling": {"minReplicas": 2, "maxReplicas": 4}, "resources": {"requests": {"cpu": "50m"}}}}'
kubectl -n "$ns" wait hpa/editorial --for=jsonpath='{.spec.maxReplicas}'=4 --timeout=60s
for _ in $(seq 1 15); do
  replicas=$(kubectl -n "$ns" get deploy/editorial -o jsonpath='{.spec.replicas}')
  [[ "$replicas" -ge 2 ]] || { echo "error: replicas fell to $replicas after switching to autoscaling" >&2; exit 1; }
  sleep 2
done
kubectl -n "$ns" get deploy/editorial -o jsonpath='{.metadata.managedFields[*].manager}' | grep -q kan-operator-handover \
  || { echo "error: no replicas handover field manager on deploy/editorial" >&2; exit 1; }

# An arm queue timeout above the gateway's deadline passes admission (a rule over two objects)
# but kan gateway would refuse it: not routed, Ready=False naming the field, gateway unchanged.
hash_before=$(kubectl -n "$ns" get rgw/e2e -o jsonpath='{.status.routingHash}')
kubectl -n "$ns" apply -f - <<'YAML'
apiVersion: kan.dev/v1alpha1
kind: RecallExperiment
metadata:
  name: too-slow
spec:
  gateway: e2e
  traffic: 10
  arms:
    - {name: control, weight: 50}
    - {name: treatment, weight: 50, queues: [{name: editorial, timeoutMs: 5000}]}
YAML
kubectl -n "$ns" wait rexp/too-slow --for=jsonpath='{.status.conditions[?(@.type=="Ready")].reason}'=RefusedByGateway --timeout=60s
kubectl -n "$ns" get rexp/too-slow -o jsonpath='{.status.conditions[?(@.type=="Ready")].message}' | grep -q 'timeoutMs' \
  || { echo "error: the refusal does not name the field" >&2; exit 1; }
[[ "$(kubectl -n "$ns" get rgw/e2e -o jsonpath='{.status.routingHash}')" == "$hash_before" ]] \
  || { echo "error: the routing changed for a refused experiment" >&2; exit 1; }
kubectl -n "$ns" wait rgw/e2e --for=condition=Ready --timeout=60s
kubectl -n "$ns" delete rexp/too-slow --wait

# An arm with merge policy quota and a queue without a quota: the CRD's CEL rule (the one the
# RecallGateway CRD has too) refuses it at admission, naming the rule.
if out=$(kubectl -n "$ns" apply -f - 2>&1 <<'YAML'
apiVersion: kan.dev/v1alpha1
kind: RecallExperiment
metadata:
  name: no-quota
spec:
  gateway: e2e
  traffic: 10
  arms:
    - {name: control, weight: 50}
    - {name: treatment, weight: 50, queues: [{name: editorial}], merge: {policy: quota}}
YAML
); then
  echo "error: an arm with merge policy quota and no quotas was admitted" >&2; exit 1
fi
grep -qi quota <<<"$out" || { echo "error: the CEL refusal does not mention quotas: $out" >&2; exit 1; }

kubectl -n "$ns" delete rgw/e2e rq/editorial --wait
kubectl -n "$ns" wait --for=delete deploy/editorial deploy/e2e-gateway --timeout=120s 2>/dev/null || true
left=$(kubectl -n "$ns" get deploy,svc,cm -l app.kubernetes.io/managed-by=kan-operator -o name)
[[ -z "$left" ]] || { echo "error: children left after deletion: $left" >&2; exit 1; }
echo "kind e2e passed"
