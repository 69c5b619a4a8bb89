#!/usr/bin/env bash
# Every `kan …` command in the fenced shell blocks and inline code of README.md and docs/*.md
# must parse: each subcommand exists and every `--flag` it uses is listed by
# `kan <subcommand> --help`. It checks that the documented commands are spelled as the binary
# takes them, including the inline ones in the prose and those scripts/run-doc-commands.sh
# skips (cluster-only); that script runs the fenced blocks on the demo data.
# Usage: scripts/check-doc-commands.sh [path/to/kan]
set -euo pipefail
cd "$(dirname "$0")/.."
kan="${1:-${CARGO_TARGET_DIR:-target}/debug/kan}"

# Commands of the docs this check does not run, with why.
skip_reason() {
  case "$1" in
    kubectl|helm|kind) echo "needs a Kubernetes cluster" ;;
    docker) echo "needs a container runtime" ;;
    curl) echo "run against kan up by scripts/run-doc-commands.sh" ;;
    *) echo "" ;;
  esac
}

# Fenced sh/bash/console blocks, continuation lines joined, one command per line.
commands() {
  awk '
    /^[[:space:]]*```/ { if (inb) { inb = 0 } else { inb = ($0 ~ /```(sh|bash|console|shell)[[:space:]]*$/) }; next }
    inb {
      line = $0; sub(/^[[:space:]]*\$[[:space:]]+/, "", line); sub(/[[:space:]]#.*$/, "", line)
      if (line ~ /\\[[:space:]]*$/) { sub(/\\[[:space:]]*$/, "", line); acc = acc line " "; next }
      print FILENAME "\t" acc line; acc = ""
      next
    }
    {
      # Inline code spans in the prose that are kan commands (`kan bench ann --vectors …`).
      rest = $0
      while (match(rest, /`kan [^`]*`/)) {
        print FILENAME "\t" substr(rest, RSTART + 1, RLENGTH - 2)
        rest = substr(rest, RSTART + RLENGTH)
      }
    }' README.md docs/*.md
}

failures=0
declare -A skipped=()
while IFS=$'\t' read -r file cmd; do
  # Split on shell separators; each part may be a `kan` command (after `do`, `then`, env vars).
  while IFS= read -r part; do
    read -r -a words <<<"$part"
    i=0
    while [[ $i -lt ${#words[@]} ]] && [[ ${words[$i]} =~ ^(do|then|time|[A-Z_]+=.*)$ ]]; do i=$((i + 1)); done
    [[ $i -lt ${#words[@]} ]] || continue
    first=${words[$i]}
    if [[ $first != kan ]]; then
      reason=$(skip_reason "$first")
      [[ -n $reason ]] && skipped[$first]=$reason
      continue
    fi
    # Longest chain of words that are subcommands.
    path=()
    j=$((i + 1))
    while [[ $j -lt ${#words[@]} ]] && [[ ${words[$j]} =~ ^[a-z][a-z0-9-]*$ ]] \
      && "$kan" "${path[@]}" --help 2>/dev/null | awk '/^Commands:/{c=1;next} /^$/{c=0} c{print $1}' | grep -x "${words[$j]}" >/dev/null; do
      path+=("${words[$j]}")
      j=$((j + 1))
    done
    if [[ ${#path[@]} -eq 0 ]]; then
      echo "$file: '$part': no kan subcommand" >&2
      failures=$((failures + 1))
      continue
    fi
    help=$("$kan" "${path[@]}" --help)
    for w in "${words[@]:j}"; do
      w=${w#[}
      [[ $w == --* ]] || continue
      flag=${w%%=*}
      if ! grep -qE -- "(^|[[:space:],])${flag}([[:space:]=,<]|$)" <<<"$help"; then
        echo "$file: '$part': kan ${path[*]} has no flag $flag" >&2
        failures=$((failures + 1))
      fi
    done
    echo "ok: kan ${path[*]} ($file)"
  done < <(sed -E 's/(\&\&|\|\||;|\|)/\n/g' <<<"$cmd")
done < <(commands)

for first in "${!skipped[@]}"; do
  echo "not checked: $first (${skipped[$first]})"
done
if [[ $failures -gt 0 ]]; then
  echo "$failures documented kan command(s) do not parse" >&2
  exit 1
fi
