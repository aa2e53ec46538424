#!/usr/bin/env bash
# Run one benchmark on two git revisions, alternating A B A B..., so that the ratio between them
# survives a noisy machine (both see the same load). Each revision runs from its own worktree
# (PYTHONPATH and working directory), so its own code is measured, workers included.
#
#   benchmarks/revisions.sh BASE HEAD ROUNDS python benchmarks/targeting.py --devices 1000000
#   benchmarks/revisions.sh f9a3bdc HEAD 2 python benchmarks/fanout.py --runs 10
#
# Each revision runs its own benchmarks/ unless SAME_BENCH=1, which copies HEAD_REV's
# benchmarks/ into BASE_REV's worktree (for a script BASE_REV did not have yet).
set -euo pipefail
[ $# -ge 4 ] || { echo "usage: $0 BASE_REV HEAD_REV ROUNDS COMMAND..." >&2; exit 2; }
base=$1 head=$2 rounds=$3
shift 3
repo=$(git rev-parse --show-toplevel)
work=$(mktemp -d)
trap 'git -C "$repo" worktree remove --force "$work/a" >/dev/null 2>&1 || true;
      git -C "$repo" worktree remove --force "$work/b" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git -C "$repo" worktree add --detach "$work/a" "$base" >/dev/null
git -C "$repo" worktree add --detach "$work/b" "$head" >/dev/null
if [ "${SAME_BENCH:-0}" = 1 ]; then
  rm -rf "$work/a/benchmarks" && cp -r "$work/b/benchmarks" "$work/a/benchmarks"
fi
for round in $(seq 1 "$rounds"); do
  for side in a b; do
    rev=$([ "$side" = a ] && echo "$base" || echo "$head")
    echo "=== round $round, $rev ($(git -C "$work/$side" rev-parse --short HEAD))"
    (cd "$work/$side" && PYTHONPATH="$work/$side" "$@")
  done
done
