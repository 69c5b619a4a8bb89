#!/usr/bin/env bash
# End-to-end check on a local kind cluster: build the image, install the chart, apply an
# operational queue (needs no bundle) and a gateway, wait for both to be Ready, call the
# gateway, delete everything and check the children were garbage-collected.
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

kubectl -n "$ns" delete rgw/e2e rq/editorial --wait
kubectl -n "$ns" wait --for=delete deploy/editorial deploy/e2e-gateway --timeout=120s 2>/dev/null || true
left=$(kubectl -n "$ns" get deploy,svc,cm -l app.kubernetes.io/managed-by=kan-operator -o name)
[[ -z "$left" ]] || { echo "error: children left after deletion: $left" >&2; exit 1; }
echo "kind e2e passed"
