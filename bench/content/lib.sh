# Helpers shared by the content benchmarks (sourced; needs $out).

# One RecallQueue file per setting: queue TYPE NAME BUNDLE SETTINGS prints its path.
queue() {
  mkdir -p "$out/q/$2"
  printf 'apiVersion: kan.dev/v1alpha1\nkind: RecallQueue\nmetadata: {name: %s}\nspec:\n  strategy: {type: %s, %s: %s}\n  bundle: {uri: %s}\n' \
    "$2" "$1" "$1" "$4" "$(realpath "$3")" >"$out/q/$2/queue.yaml"
  echo "$out/q/$2/queue.yaml"
}

# A `kan eval` report as table rows: R@20, N@20, R@50, cov@20, cov@300.
table() { # REPORT.json
  python3 - "$1" <<'P'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"# {r['dataset']}: {r['split']}, {r['part']}, {r['users']} users, {r['items']} items")
for x in r['rows']:
    m = x['metrics']
    print(f"| {x['name']} | {m['recall@20']:.4f} | {m['ndcg@20']:.4f} | {m['recall@50']:.4f} | {m['coverage@20']:.4f} | {m['coverage@300']:.4f} |")
P
}
