#!/usr/bin/env bash
# Carries a regime run across sessions and machines: the plan takes several sessions, and a run directory under runs/
# is scratch. `save` copies what the run finished into results/regime/store/ and lists every file with its SHA-256 in
# results/regime/store.sha256; `restore` copies it back into a new run directory before the script starts, so finished
# steps are skipped there. The store holds ~100-300 MB of weights and tokens: it is not committed (.gitignore), only
# its manifest is; move it with the working tree (rsync) when the work moves to another machine.
#
#   bash experiments/regime-store.sh save [RUN_DIR] [--with-states]   (default RUN_DIR: runs/regime)
#   bash experiments/regime-store.sh restore [RUN_DIR]
#
# Saved: the evaluation classifier, each vocabulary's tokenizer, clusters and encoded tokens, every finished GPT (its
# train report exists) with its report and event log, the snapshots that an evaluation still has to read, every
# evaluation report and grid, and the step logs. With --with-states also the checkpoint, train state and event log of
# a training that has not finished, so that it resumes (bit for bit) instead of starting over. Never saved: locks,
# temporaries, cached classifier features (recomputed in minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:?usage: regime-store.sh save|restore [RUN_DIR] [--with-states]}
shift
RUN=runs/regime STATES=0
for a in "$@"; do
  case $a in
    --with-states) STATES=1 ;;
    *) RUN=$a ;;
  esac
done
STORE=results/regime/store

# put SRC_ROOT DST_ROOT REL: copies one file (through a temporary name), unless the destination has the same bytes.
put() {
  local from=$1/$3 to=$2/$3
  [[ -e $to ]] && cmp -s "$from" "$to" && return
  mkdir -p "$(dirname "$to")"
  cp "$from" "$to.tmp" && mv -f "$to.tmp" "$to"
  echo "  $3"
}

case $mode in
save)
  [[ -d $RUN ]] || { echo "regime-store: no run directory $RUN" >&2; exit 1; }
  echo "regime-store: saving $RUN → $STORE" >&2
  cd "$RUN"
  files=()
  for f in classifier.safetensors classifier.safetensors.done classifier.report.json eval-real.json times.jsonl \
    attempts.jsonl; do
    [[ -e $f ]] && files+=("$f")
  done
  for v in v*/; do
    v=${v%/}
    if [[ -e $v/tokenizer.done ]]; then
      for f in tokenizer.safetensors tokenizer.done tokenizer-eval.json clusters.safetensors tokens-train.safetensors \
        tokens-test.safetensors; do
        [[ -e $v/$f ]] && files+=("$v/$f")
      done
    elif ((STATES)) && [[ -e $v/tokenizer.train-state.safetensors ]]; then
      files+=("$v/tokenizer.safetensors" "$v/tokenizer.train-state.safetensors")
    fi
    for f in "$v"/eval/*.json "$v"/eval/*.png; do [[ -e $f ]] && files+=("$f"); done
    for report in "$v"/*.report.json; do
      [[ -e $report ]] || continue
      m=${report%.report.json}
      files+=("$report" "$m.safetensors")
      [[ -e $m.events.jsonl ]] && files+=("$m.events.jsonl")
    done
    for snap in "$v"/*.step*.safetensors; do
      [[ -e $snap ]] || continue
      # A snapshot is worth carrying only while an evaluation of it is still to run.
      grep -lqF "$snap" "$v"/eval/*.json 2>/dev/null || files+=("$snap")
    done
    if ((STATES)); then
      for state in "$v"/*.train-state.safetensors; do
        [[ -e $state ]] || continue
        m=${state%.train-state.safetensors}
        [[ -e $m.report.json || $m == */tokenizer ]] && continue  # finished, or the tokenizer (above)
        files+=("$state" "$m.safetensors")
        [[ -e $m.events.jsonl ]] && files+=("$m.events.jsonl")
      done
    fi
  done
  cd - >/dev/null
  for f in "${files[@]}"; do put "$RUN" "$STORE" "$f"; done
  (cd "$STORE" && find . -type f ! -name '*.tmp' | sed 's|^\./||' | LC_ALL=C sort | xargs -d '\n' sha256sum) \
    >"$STORE.sha256.tmp" && mv -f "$STORE.sha256.tmp" "$STORE.sha256"
  du -sh "$STORE" >&2
  ;;
restore)
  [[ -d $STORE ]] || { echo "regime-store: nothing stored in $STORE" >&2; exit 0; }
  echo "regime-store: restoring $STORE → $RUN (files the run does not have)" >&2
  mkdir -p "$RUN"
  (cd "$STORE" && find . -type f ! -name '*.tmp' | sed 's|^\./||') | while read -r f; do
    [[ -e $RUN/$f ]] || put "$STORE" "$RUN" "$f"
  done
  ;;
*) echo "regime-store: unknown mode \"$mode\" (save or restore)" >&2; exit 2 ;;
esac
