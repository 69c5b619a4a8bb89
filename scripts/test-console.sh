#!/usr/bin/env bash
# The console (`/ui`) in a real browser: starts `kan up` on a copy of examples/quickstart (the
# demo's bundles, so `make demo` must have run) on a free port, loads the page in headless
# Chromium and checks the DOM it renders:
#   1. a row per queue, each ready, with p50/p99 latency and its bundle's version; the
#      experiment's arms; a user's merged list with the titles the bundles carry;
#   2. a refused edit (a bad YAML file written into the watched directory) shows a banner with
#      the file and the reason, which goes away once the file is removed;
#   3. a queue whose bundle cannot load shows a banner naming it, gone once it is removed;
# and `kan up`'s start line names the console's address.
# Screenshots land in out/console-test/ (console.png, console-refused.png).
# Without Chromium it skips loudly, or fails when KAN_REQUIRE_TOOLS is set (scripts/test.sh).
# Usage: scripts/test-console.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
browser=$(command -v chromium || command -v chromium-browser || true)
if [[ -z $browser ]]; then
  if [[ -n ${KAN_REQUIRE_TOOLS:-} ]]; then
    echo "error: chromium is not installed (scripts/install-tools.sh installs it with apt)" >&2
    exit 1
  fi
  echo "SKIPPED: the console browser test needs chromium (scripts/install-tools.sh installs it with apt)" >&2
  exit 0
fi
source scripts/env.sh
bundles=data/bundles/ml-100k
for s in $(grep -ho 'ml-100k/[a-z0-9]*' examples/quickstart/*.yaml | cut -d/ -f2 | sort -u); do
  if [[ ! -f $bundles/$s/manifest.json ]]; then
    echo "error: $bundles/$s is missing: run 'make demo' first (it trains the quickstart's bundles)" >&2
    exit 1
  fi
done

tmp=$(mktemp -d)
up_pid=""
cleanup() {
  if [[ -n $up_pid ]]; then
    kill -INT "$up_pid" 2>/dev/null || true
    wait "$up_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
shots=out/console-test
mkdir -p "$shots" "$tmp/qs"
# The quickstart, with its bundle paths made absolute so the copy can live anywhere.
for f in examples/quickstart/*.yaml; do
  sed "s#uri: \.\./\.\./data/#uri: $root/data/#" "$f" >"$tmp/qs/$(basename "$f")"
done

fail() {
  echo "FAIL: $*" >&2
  echo "--- kan up log (last 20 lines)" >&2
  tail -20 "$tmp/up.log" >&2
  exit 1
}

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
kan up "$tmp/qs" --listen "127.0.0.1:$port" --poll-ms 200 >"$tmp/up.log" 2>&1 &
up_pid=$!
queues=$(grep -l '^kind: RecallQueue' "$tmp"/qs/*.yaml | xargs -n1 awk '/^  name:/ {print $2; exit}' | sort | tr '\n' ' ')
want=$(wc -w <<<"$queues")

# Waits until the JSON at $1 satisfies the Python expression $2 (on `j`), at most 60 s.
wait_for() {
  for _ in $(seq 1 240); do
    kill -0 "$up_pid" 2>/dev/null || fail "kan up exited"
    if curl -sf "$base$1" | python3 -c "import json, sys; j = json.load(sys.stdin); sys.exit(0 if ($2) else 1)" 2>/dev/null; then
      return 0
    fi
    sleep 0.25
  done
  fail "timed out waiting for $1 to satisfy: $2"
}

# The page as Chromium renders it, after its scripts ran.
dom() {
  timeout 60 "$browser" --headless --no-sandbox --disable-gpu --user-data-dir="$tmp/profile" \
    --virtual-time-budget=5000 --dump-dom "$base$1" 2>/dev/null
}
shot() {
  rm -f "$2"
  timeout 60 "$browser" --headless --no-sandbox --disable-gpu --user-data-dir="$tmp/profile" \
    --virtual-time-budget=5000 --window-size=1280,1800 --screenshot="$2" "$base$1" >/dev/null 2>&1 || true
  [[ -s $2 ]] && [[ $(head -c 8 "$2" | od -An -tx1 | tr -d ' \n') == 89504e470d0a1a0a ]] \
    || fail "no PNG screenshot of $1 at $2"
}

# Checks a dumped DOM (file $1) with the check named $2; the rest are its arguments.
check() {
  python3 - "$@" <<'PY'
import html.parser, json, os, sys

path, what, *args = sys.argv[1:]
page = open(path, encoding="utf-8").read()

class Page(html.parser.HTMLParser):
    """Text of elements by id, table rows by table id, and attributes by id."""
    def __init__(self):
        super().__init__()
        self.stack, self.attrs, self.text, self.tables = [], {}, {}, {}
        self.table, self.row, self.cell = None, None, None
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.attrs[a["id"]] = a
            self.text.setdefault(a["id"], "")
        self.stack.append(a.get("id"))
        if tag == "table":
            self.table = a.get("id")
            self.tables.setdefault(self.table, [])
        elif tag == "tr" and self.table:
            self.row = []
            self.tables[self.table].append(self.row)
        elif tag in ("td", "th") and self.row is not None:
            self.cell = [tag, ""]
            self.row.append(self.cell)
    def handle_endtag(self, tag):
        if self.stack:
            self.stack.pop()
        if tag in ("td", "th"):
            self.cell = None
    def handle_data(self, data):
        for i in self.stack:
            if i:
                self.text[i] = self.text.get(i, "") + data
        if self.cell is not None:
            self.cell[1] += data

p = Page()
p.feed(page)
errors = []
def expect(ok, message):
    if not ok:
        errors.append(message)
def number(s):
    try:
        return float(s)
    except ValueError:
        return None

banner_shown = "banner" in p.attrs and "hidden" not in p.attrs["banner"]
banner = p.text.get("banner", "")
if what == "serving":
    queues, bundles = args[0].split(), args[1]
    expect(not banner_shown, f"no banner while all is well, found: {banner!r}")
    rows = [[c[1].strip() for c in r] for r in p.tables.get("queues", []) if r and r[0][0] == "td"]
    expect(sorted(r[0] for r in rows) == sorted(queues), f"queue rows {[r[0] for r in rows]}, expected {queues}")
    for r in rows:
        name, routed, p50, p99, version = r[0], r[1], number(r[8]), number(r[9]), r[10]
        expect(routed == "ready", f"queue {name}: routed {routed!r}")
        expect(p50 is not None and p99 is not None and p99 >= p50, f"queue {name}: p50 {r[8]!r} p99 {r[9]!r}")
        manifest = json.load(open(os.path.join(bundles, name, "manifest.json")))
        expect(version == manifest["version"][:12], f"queue {name}: bundle {version!r}, manifest {manifest['version']!r}")
    arms = [[c[1].strip() for c in r] for r in p.tables.get("experiments", []) if r and r[0][0] == "td"]
    expect(sorted(r[3] for r in arms) == ["control", "treatment"], f"experiment rows {arms}")
    expect("gat-vs-dssm = " in p.text.get("arms", ""), f"the user's arm: {p.text.get('arms')!r}")
    titles = {}
    for name in queues:
        f = os.path.join(bundles, name, "titles.tsv")
        if os.path.exists(f):
            for line in open(f, encoding="utf-8"):
                if "\t" in line:
                    i, t = line.rstrip("\n").split("\t", 1)
                    titles[i] = t.strip()
    merged = [r for r in p.tables.get("merged", []) if r and r[0][0] == "td"]
    expect(len(merged) >= 10, f"{len(merged)} merged rows for user 196")
    for r in merged:
        shown = r[1][1].strip()
        item = shown.split()[-1] if shown else ""
        expect(item in titles and shown == f"{titles[item]} {item}", f"merged row {shown!r}: expected the title {titles.get(item)!r} beside id {item!r}")
elif what == "banner":
    expect(banner_shown, "the banner is hidden")
    for needle in args:
        expect(needle in banner, f"the banner lacks {needle!r}: {banner!r}")
elif what == "no-banner":
    expect(not banner_shown, f"the banner is still shown: {banner!r}")
else:
    sys.exit(f"unknown check {what}")
if errors:
    print("\n".join("   " + e for e in errors), file=sys.stderr)
    sys.exit(1)
PY
}

wait_for /ui/config "len(j.get('endpoints') or {}) >= $want"
# Some traffic, so every queue has latency percentiles and a version.
for u in 1 2 3 42 196 7 13 22; do
  curl -sf "$base/v1/recall" -H 'content-type: application/json' -d "{\"user_id\": \"$u\", \"k\": 20}" >/dev/null \
    || fail "recall for user $u"
done

echo "-- 1. queues, latency, versions, arms and titles"
grep -q "console http://127.0.0.1:$port/ui" "$tmp/up.log" || fail "kan up's start line does not name the console (/ui)"
dom "/ui?user=196" >"$tmp/dom1.html"
check "$tmp/dom1.html" serving "$queues" "$root/$bundles" || fail "the console while serving"
shot "/ui?user=196" "$shots/console.png"

echo "-- 2. a refused edit shows a banner until it is fixed"
cat >"$tmp/qs/zz-refused.yaml" <<'EOF'
apiVersion: kan.dev/v1alpha1
kind: RecallQueue
metadata: {name: refused}
spec:
  strategy: {type: popular}
  candidates: 0
EOF
wait_for /stats "j.get('last_reload_error')"
dom /ui >"$tmp/dom2.html"
check "$tmp/dom2.html" banner "config rejected" "zz-refused.yaml" "spec.candidates" || fail "the banner for a refused edit"
shot /ui "$shots/console-refused.png"
rm "$tmp/qs/zz-refused.yaml"
wait_for /stats "not j.get('last_reload_error')"
dom /ui >"$tmp/dom3.html"
check "$tmp/dom3.html" no-banner || fail "the banner after the refused edit was removed"

echo "-- 3. a queue whose bundle does not load shows a banner until it is removed"
cat >"$tmp/qs/zz-broken.yaml" <<EOF
apiVersion: kan.dev/v1alpha1
kind: RecallQueue
metadata: {name: broken}
spec:
  strategy: {type: itemcf}
  bundle: {uri: $tmp/no-such-bundle}
EOF
wait_for /stats "'broken' in (j.get('queue_problems') or {})"
dom /ui >"$tmp/dom4.html"
check "$tmp/dom4.html" banner "queue broken" "no-such-bundle" || fail "the banner for a bundle that does not load"
rm "$tmp/qs/zz-broken.yaml"
wait_for /stats "not j.get('queue_problems') and not j.get('last_reload_error')"
dom /ui >"$tmp/dom5.html"
check "$tmp/dom5.html" no-banner || fail "the banner after the broken queue was removed"

echo "console: ok (screenshots in $shots/)"
