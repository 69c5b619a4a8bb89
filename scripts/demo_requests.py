"""Sends recall requests to a Kan gateway and prints the answers readably (used by demo.sh)."""
import json
import sys
import urllib.request


def titles(item_file):
    out = {}
    with open(item_file, encoding="latin-1") as f:
        header = f.readline().rstrip("\n").split("\t")
        id_col = next(i for i, h in enumerate(header) if h.startswith("item_id"))
        title_col = next((i for i, h in enumerate(header) if h.startswith("movie_title")), None)
        for line in f:
            cols = line.rstrip("\n").split("\t")
            if title_col is not None and len(cols) > title_col:
                out[cols[id_col]] = cols[title_col]
    return out


def recall(base, user, k=10):
    body = json.dumps({"user_id": user, "k": k, "debug": True}).encode()
    req = urllib.request.Request(base + "/v1/recall", body, {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def main():
    base, item_file, users = sys.argv[1], sys.argv[2], sys.argv[3:]
    names = titles(item_file)
    for user in users:
        resp = recall(base, user)
        arms = ", ".join(f"{a['experiment']}={a['arm']}" for a in resp["assignments"]) or "no experiment"
        print(f"\nuser {user}  [{arms}]  {resp['took_ms']:.1f} ms" + ("  DEGRADED" if resp["degraded"] else ""))
        print("  queues: " + ", ".join(f"{q['name']}:{q['status']}({q['returned']})" for q in resp["queues"]))
        for i, c in enumerate(resp["candidates"], 1):
            title = names.get(c["item_id"], "?")
            print(f"  {i:2d}. {title[:48]:48s} item {c['item_id']:>5s}  from {', '.join(c['sources'])}")


if __name__ == "__main__":
    main()
