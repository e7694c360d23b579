#!/usr/bin/env bash
# Where CTF wins: the paper's proportions (an aux ~3x the baseline), its vocabulary (V = 16384, K = 512), training
# length, dropout, and the stage-2 ceiling, against the plain baseline at equal backbone and training.
#
#   bash experiments/regime.sh [RUN_DIR]          (default RUN_DIR: runs/regime; resumable: run it again after any stop)
#   bash experiments/regime.sh [RUN_DIR] --lane a (one lane in the foreground, for debugging)
#
# Two lanes run side by side, each a single-threaded process (OPENBLAS_NUM_THREADS=1): on this 2-core machine two
# one-thread trainings did 1.15x (GPT preset S) to 1.25x (tokenizer S) the work of one two-thread training in the
# same time (experiments/README.md). Lane a trains the evaluation classifier, then works on V = 16384 / K = 512
# (baseline, stage 1 and aux S, the stage-2 ceiling, masked refinement, backbone tiny), then the paper-proportion aux
# (preset ML) on lane b's tokens; lane b works on V = 4096 / K = 128 (4 passes of stage 1 and baseline S, dropout 0).
# A second phase (appended to both lanes) adds backbone M at V = 16384, guidance below 1.5, R = 2, the V = 16384
# ceiling with rounds, FID per pass at CFG 1.5, and training length at V = 16384 (4 passes of baseline and stage 1 S).
# Where a lane needs the other's output it waits for it. Images/s in the evaluations below are therefore measured on a
# loaded machine and not comparable with the benchmarks; quality metrics do not depend on it.
#
# Every step is a ctfgen command (experiments/lib.sh): done steps are skipped, an interrupted training resumes, a
# stopped or failed command ends its lane without marking the step done. A run directory does not outlive its
# machine: `bash experiments/regime-store.sh save --with-states` at the end of a session keeps what the run finished
# (and the state of unfinished trainings) in results/regime/store/, and each launch restores it first.
set -euo pipefail
cd "${CTFGEN_REPO:-$(dirname "$0")/..}"
RUN=runs/regime LANE=
while (($#)); do
  case $1 in
    --lane) LANE=$2; shift 2 ;;
    *) RUN=$1; shift ;;
  esac
done
# The lanes run a snapshot of the built command ($RUN/.ctfgen, refreshed at each launch), so the working tree can be
# rebuilt while they run; a relaunch picks up the new build for the steps still to do.
CTFGEN=(node "$RUN/.ctfgen/dist/src/cli/main.js")
LOG_TAG="regime${LANE:+ $LANE}"
source "${CTFGEN_LIB:-experiments/lib.sh}"
mkdir -p "$RUN"

if [[ -z $LANE ]]; then
  [[ -n ${SKIP_SETUP:-} ]] || bash scripts/setup.sh
  rm -f "$RUN/lane-failed"
  # What earlier sessions finished (on other machines) comes back from results/regime/store/ first.
  bash experiments/regime-store.sh restore "$RUN"
  # Bash reads a script while running it: the lanes run a copy, so this file may be edited meanwhile.
  cp "$0" "$RUN/.regime.sh"; cp experiments/lib.sh "$RUN/.lib.sh"
  rm -rf "$RUN/.ctfgen"; mkdir -p "$RUN/.ctfgen/build"
  cp -r dist package.json bench "$RUN/.ctfgen/"; cp -r build/Release "$RUN/.ctfgen/build/"
  ln -s "$PWD/node_modules" "$RUN/.ctfgen/node_modules"
  pids=()
  for lane in a b; do
    # Each lane in its own process group, so a stop reaches the ctfgen command it runs (which saves and exits 143).
    OPENBLAS_NUM_THREADS=1 CTFGEN_REPO=$PWD CTFGEN_LIB=$RUN/.lib.sh setsid bash "$RUN/.regime.sh" "$RUN" \
      --lane "$lane" \
      >>"$RUN/lane-$lane.log" 2>&1 &
    pids+=($!)
  done
  trap 'for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null; done; wait' INT TERM
  log "lanes a and b started (logs: $RUN/lane-a.log, $RUN/lane-b.log)"
  rc=0
  for p in "${pids[@]}"; do wait "$p" || rc=$?; done
  ((rc)) && { log "a lane did not finish (exit $rc); run the script again to continue"; exit "$rc"; }
  log "finished: $RUN (node experiments/regime-summary.mjs $RUN writes results/regime/)"
  exit 0
fi
trap 'rc=$?; ((rc)) && echo "lane $LANE exit $rc" >"$RUN/lane-failed"' EXIT

CLASSIFIER=$RUN/classifier.safetensors
GPT_RECIPE=(--batch 128 --lr 3e-3 --seed 0 --val-limit 2000 --eval-every 100 --checkpoint-every 200 --progress-every 50)

# tokenizer DIR V: the VQ tokenizer (preset S, 3 epochs: more than the GPTs, it is the ceiling of every sample metric),
# its evaluation, and the encoded train (+ mirrored copies) and test splits.
tokenizer() {
  local dir=$1 v=$2 tok=$1/tokenizer.safetensors config=(--preset S --codebook "$2")
  mkdir -p "$dir/eval"
  [[ -e ${tok%.safetensors}.train-state.safetensors ]] && config=()  # --resume takes them from the saved run
  train_step "tokenizer-v$v" "$dir/tokenizer.done" "$tok" -- tokenizer train --data fashion-mnist \
    --out "$tok" "${config[@]}" \
    --epochs 3 --seed 0 --progress-every 100 --eval-limit 0
  touch "$dir/tokenizer.done"
  STDOUT_TO=$dir/tokenizer-eval.json step "tokenizer-eval-v$v" "$dir/tokenizer-eval.json" -- tokenizer eval \
    --tokenizer "$tok" --json
  step "encode-train-v$v" "$dir/tokens-train.safetensors" -- tokenizer encode --tokenizer "$tok" --split train --flip \
    --out "$dir/tokens-train.safetensors"
  step "encode-test-v$v" "$dir/tokens-test.safetensors" -- tokenizer encode --tokenizer "$tok" --split test \
    --out "$dir/tokens-test.safetensors"
}

# gpt DIR KIND PRESET NAME [ARGS...]: trains DIR/NAME.safetensors (one pass unless ARGS say --epochs) with the
# reproduction's recipe on DIR's tokens and clusters. KIND is baseline, stage1 or aux; the NAMEs keep the file names
# of the first launches (coarse-ar-S for stage 1, fine-aux-S for the aux), so a relaunch finds what they made.
gpt() {
  local dir=$1 kind=$2 preset=$3 name=$4 out=$1/$4.safetensors; shift 4
  local clusters=()
  [[ $kind != baseline ]] && clusters=(--clusters "$dir/clusters.safetensors")
  train_step "$(basename "$dir")-$name" "$dir/$name.report.json" "$out" -- train "$kind" \
    --tokens "$dir/tokens-train.safetensors" \
    --val-tokens "$dir/tokens-test.safetensors" "${clusters[@]}" --out "$out" --preset "$preset" \
    --epochs 1 "${GPT_RECIPE[@]}" "$@"
}

# ev DIR NAME ARGS...: one `ctfgen eval` (10 000 samples, seed EVAL_SEED) into DIR/eval/NAME.json, at CFG 2, tau 1 (the
# defaults when this study began) unless ARGS say otherwise.
ev() {
  local dir=$1 name=$2; shift 2
  wait_for "$CLASSIFIER.done" "the evaluation classifier (lane b)"
  step "eval-$(basename "$dir")-$name" "$dir/eval/$name.json" -- eval --tokenizer "$dir/tokenizer.safetensors" \
    --clusters "$dir/clusters.safetensors" \
    --classifier "$CLASSIFIER" --n "${EVAL_N:-10000}" --seed "${EVAL_SEED:-0}" --batch 64 \
    --cfg 2 --t1 1 --t2 1 "$@" \
    --out "$dir/eval/$name.json"
}
# best_setting EVAL_DIR METHOD: "cfg t1 t2" of the lowest FID among METHOD.json and sweep-METHOD-*.json (seed 0).
best_setting() {
  node -e '
    const fs = require("fs"), [dir, method] = process.argv.slice(1);
    const names =
      fs.readdirSync(dir).filter((f) => f === `${method}.json` ||
        (f.startsWith(`sweep-${method}-cfg`) && f.endsWith(".json")));
    const runs = names.map((f) => JSON.parse(fs.readFileSync(`${dir}/${f}`, "utf8")));
    const fid = (r) => Object.values(r.results)[0].metrics.fid;
    const best = runs.reduce((a, b) => (fid(b) < fid(a) ? b : a));
    const k = best.knobs;
    console.log(k.cfg, k.t1, k.t2 ?? 1);' "$1" "$2"
}
# ceiling DIR NAME AUX BASELINE STAGE1 [ARGS...]: the stage-2 decomposition (ctfgen eval ceiling) into
# DIR/eval/ceiling-NAME.json, at CFG 2, tau 1 unless ARGS say otherwise (as ev).
ceiling() {
  local dir=$1 name=$2 aux=$3 baseline=$4 stage1=$5; shift 5
  wait_for "$CLASSIFIER.done" "the evaluation classifier (lane b)"
  step "ceiling-$(basename "$dir")-$name" "$dir/eval/ceiling-$name.json" -- eval ceiling \
    --tokenizer "$dir/tokenizer.safetensors" \
    --clusters "$dir/clusters.safetensors" --aux "$dir/$aux.safetensors" --baseline "$dir/$baseline.safetensors" \
    --stage1 "$dir/$stage1.safetensors" --classifier "$CLASSIFIER" --n 10000 --seed 0 \
    --cfg 2 --t1 1 --t2 1 --out "$dir/eval/ceiling-$name.json" "$@"
}
# snap NAME PASS: the model NAME of a 4-pass run after PASS passes (a snapshot, or the run's own checkpoint).
snap() { (($2 < 4)) && echo "$1.step$((937 * $2))" || echo "$1"; }
# ctf / base DIR STAGE1|BASELINE [AUX]: the pieces of one method, by model name.
ctf() { echo --method ctf --stage1 "$1/$2.safetensors" --aux "$1/$3.safetensors"; }
base() { echo --method baseline --baseline "$1/$2.safetensors"; }

A=$RUN/v4096 B=$RUN/v16384
# The order puts first what no earlier session measured: lane a the paper's vocabulary (V = 16384, K = 512) at
# backbone S with the stage-2 ceiling, lane b training length (stage 1 and baseline S for 4 passes, an evaluation per
# pass). Each of them fits one session of both lanes; the rest follows in later launches.
case $LANE in
a)
  # The evaluation classifier first (both lanes' evaluations need it), then V = 16384, K = 512.
  train_step classifier "$CLASSIFIER.done" "$CLASSIFIER" -- eval classifier train --data fashion-mnist \
    --out "$CLASSIFIER" --seed 0
  touch "$CLASSIFIER.done"
  step eval-real "$RUN/eval-real.json" -- eval real --classifier "$CLASSIFIER" --out "$RUN/eval-real.json"
  tokenizer "$B" 16384
  step cluster-v16384 "$B/clusters.safetensors" -- cluster --tokenizer "$B/tokenizer.safetensors" --k 512 --seed 0 \
    --out "$B/clusters.safetensors"
  step eval-recon-v16384 "$B/eval/recon.json" -- eval recon --tokenizer "$B/tokenizer.safetensors" \
    --classifier "$CLASSIFIER" --out "$B/eval/recon.json"
  gpt "$B" stage1 S coarse-ar-S
  gpt "$B" baseline S baseline-S
  gpt "$B" aux S fine-aux-S
  ev "$B" baseline-S $(base "$B" baseline-S)
  ev "$B" ctf-S-auxS $(ctf "$B" coarse-ar-S fine-aux-S)
  ceiling "$B" S-auxS fine-aux-S baseline-S coarse-ar-S
  # Beyond the paper (docs/refinement.md) at the paper's vocabulary: the aux that reads chosen fine tokens.
  gpt "$B" aux S fine-aux-S-masked --refine masked
  for rounds in 1 4 8; do
    ev "$B" "ctf-S-auxS-masked-R$rounds" $(ctf "$B" coarse-ar-S fine-aux-S-masked) --refine-rounds "$rounds"
  done
  # Backbone tiny at V = 16384 with the shared aux S.
  gpt "$B" baseline tiny baseline-tiny
  gpt "$B" stage1 tiny coarse-ar-tiny
  ev "$B" baseline-tiny $(base "$B" baseline-tiny)
  ev "$B" ctf-tiny-auxS $(ctf "$B" coarse-ar-tiny fine-aux-S)
  for rounds in 1 4 8; do
    ev "$B" "ctf-tiny-auxS-masked-R$rounds" $(ctf "$B" coarse-ar-tiny fine-aux-S-masked) --refine-rounds "$rounds"
  done
  # The paper's proportions: an aux of preset ML (6 layers, dim 256), ~3x baseline S's parameters, 2 passes with
  # its validation curve, shared by the S and tiny stage-1 models (V = 4096, lane b's tokens).
  wait_for "$A/clusters.safetensors" "the V = 4096 tokens and clusters (lane b)"
  gpt "$A" aux ML fine-aux-ML --epochs 2 --snapshot-every 937
  # One pass of stage 1 and baseline S at V = 4096 (the first session trained them on another machine; training is
  # deterministic, so these are the same weights), for the guidance sweep (lane b) and stage 1 S with the ML aux.
  gpt "$A" stage1 S coarse-ar-S
  ev "$A" ctf-S-auxML $(ctf "$A" coarse-ar-S fine-aux-ML)
  gpt "$A" baseline S baseline-S
  # Backbone M (4 layers, dim 256) at V = 16384: the baseline here, stage 1 on lane b, CTF with the shared aux S.
  # Each method's grid, CFG {1, 1.25, 1.5, 2} x tau1 {0.8, 0.9} and CFG 1.25 at tau1 0.7, is split over both lanes
  # once the models exist (the first launch's grid, CFG {1.25, 1.5, 2}, put CTF's best at its lowest guidance).
  gpt "$B" baseline M baseline-M
  for cfg in 1 1.25; do
    for t1 in 0.8 0.9; do
      ev "$B" "sweep-baseline-M-cfg$cfg-t$t1" $(base "$B" baseline-M) --cfg "$cfg" --t1 "$t1"
    done
  done
  ev "$B" sweep-baseline-M-cfg1.25-t0.7 $(base "$B" baseline-M) --cfg 1.25 --t1 0.7
  for cfg in 1.5 2; do
    for t1 in 0.8 0.9; do
      wait_for "$B/eval/sweep-baseline-M-cfg$cfg-t$t1.json" "the baseline M at CFG $cfg (lane b)"
    done
  done
  read -r cfg t1 _ < <(best_setting "$B/eval" baseline-M)
  EVAL_SEED=1 ev "$B" best-baseline-M-seed1 $(base "$B" baseline-M) --cfg "$cfg" --t1 "$t1"
  # The stage-2 ceiling at V = 16384 with the masked aux, eight rounds (at V = 4096 it cut stage 2's cost to 1 FID).
  ceiling "$B" S-auxS-masked-R8 fine-aux-S-masked baseline-S coarse-ar-S --refine-rounds 8 --cfg 1.5 --t1 0.8
  # The paper-sized aux shared by a tiny stage 1 as well (V = 4096, CFG 2, tau1 1, as the S rows there): stage 1 and
  # baseline tiny, one pass, against CTF with the aux S and with the aux ML.
  gpt "$A" stage1 tiny coarse-ar-tiny
  gpt "$A" baseline tiny baseline-tiny
  ev "$A" baseline-tiny $(base "$A" baseline-tiny)
  ev "$A" ctf-tiny-auxS $(ctf "$A" coarse-ar-tiny fine-aux-S)
  ev "$A" ctf-tiny-auxML $(ctf "$A" coarse-ar-tiny fine-aux-ML)
  # Training length at the paper's vocabulary: the baseline S for 4 passes, a snapshot per pass (stage 1 on lane b).
  gpt "$B" baseline S baseline-S-4p --epochs 4 --snapshot-every 937
  ;;
b)
  # V = 4096, K = 128: the reproduction's setting, then training length.
  tokenizer "$A" 4096
  step cluster-v4096 "$A/clusters.safetensors" -- cluster --tokenizer "$A/tokenizer.safetensors" --k 128 --seed 0 \
    --out "$A/clusters.safetensors"
  # Training length: stage 1 S and baseline S for 4 passes, a snapshot per pass (CTF with the 1-pass aux S).
  gpt "$A" stage1 S coarse-ar-S-4p --epochs 4 --snapshot-every 937
  gpt "$A" aux S fine-aux-S
  for pass in 1 2 3; do
    EVAL_N=2000 ev "$A" "pass$pass-ctf-S-auxS" $(ctf "$A" "coarse-ar-S-4p.step$((937 * pass))" fine-aux-S)
  done
  EVAL_N=2000 ev "$A" pass4-ctf-S-auxS $(ctf "$A" coarse-ar-S-4p fine-aux-S)
  gpt "$A" baseline S baseline-S-4p --epochs 4 --snapshot-every 937
  for pass in 1 2 3; do
    EVAL_N=2000 ev "$A" "pass$pass-baseline-S" $(base "$A" "baseline-S-4p.step$((937 * pass))")
  done
  EVAL_N=2000 ev "$A" pass4-baseline-S $(base "$A" baseline-S-4p)
  ev "$A" ctf-S4p-auxS $(ctf "$A" coarse-ar-S-4p fine-aux-S)
  ev "$A" baseline-S-4p $(base "$A" baseline-S-4p)
  # Dropout 0 for the three models at S, one pass.
  gpt "$A" baseline S baseline-S-d0 --dropout 0
  gpt "$A" stage1 S coarse-ar-S-d0 --dropout 0
  gpt "$A" aux S fine-aux-S-d0 --dropout 0
  ev "$A" baseline-S-d0 $(base "$A" baseline-S-d0)
  ev "$A" ctf-S-auxS-d0 $(ctf "$A" coarse-ar-S-d0 fine-aux-S-d0)
  # Each method at its best sampling setting (V = 16384, backbone S): CFG x tau1 for both, then tau2 for CTF; the
  # best FID of the grid is sampled again with seeds 1 and 2.
  for cfg in 1.5 2 3; do
    for t1 in 0.8 0.9 1; do
      [[ $cfg == 2 && $t1 == 1 ]] && continue  # baseline-S / ctf-S-auxS above
      ev "$B" "sweep-baseline-S-cfg$cfg-t$t1" $(base "$B" baseline-S) --cfg "$cfg" --t1 "$t1"
      ev "$B" "sweep-ctf-S-auxS-cfg$cfg-t$t1" $(ctf "$B" coarse-ar-S fine-aux-S) --cfg "$cfg" --t1 "$t1"
    done
  done
  # Both methods' best V = 16384 setting lay at the grid's edge (CFG 1.5, tau 0.8): one step beyond it.
  ev "$B" sweep-baseline-S-cfg1.5-t0.7 $(base "$B" baseline-S) --cfg 1.5 --t1 0.7
  ev "$B" sweep-ctf-S-auxS-cfg1.5-t0.7 $(ctf "$B" coarse-ar-S fine-aux-S) --cfg 1.5 --t1 0.7
  read -r cfg t1 _ < <(best_setting "$B/eval" ctf-S-auxS)
  ev "$B" "sweep-ctf-S-auxS-cfg$cfg-t$t1-t2.9" $(ctf "$B" coarse-ar-S fine-aux-S) --cfg "$cfg" --t1 "$t1" --t2 0.9
  for method in baseline-S ctf-S-auxS; do
    read -r cfg t1 t2 < <(best_setting "$B/eval" "$method")
    args=$(base "$B" baseline-S)
    [[ $method == ctf* ]] && args="$(ctf "$B" coarse-ar-S fine-aux-S) --t2 $t2"
    for seed in 1 2; do
      EVAL_SEED=$seed ev "$B" "best-$method-seed$seed" $args --cfg "$cfg" --t1 "$t1"
    done
  done
  # Masked refinement (R = 4) at CTF's best stage-1 setting, three seeds: the iterative stage 2 against the baseline
  # at each one's best.
  read -r cfg t1 t2 < <(best_setting "$B/eval" ctf-S-auxS)
  for seed in 0 1 2; do
    EVAL_SEED=$seed ev "$B" "best-ctf-S-auxS-masked-R4-seed$seed" $(ctf "$B" coarse-ar-S fine-aux-S-masked) \
      --refine-rounds 4 --cfg "$cfg" --t1 "$t1" --t2 "$t2"
  done
  # V = 4096: guidance 1.5 and 3 beside the 2 above, for one pass, four passes and dropout 0 (a better-trained model
  # may want less guidance, so a comparison at CFG 2 alone can mislead).
  for cfg in 1.5 3; do
    ev "$A" "sweep-baseline-S-4p-cfg$cfg-t1" $(base "$A" baseline-S-4p) --cfg "$cfg"
    ev "$A" "sweep-ctf-S4p-auxS-cfg$cfg-t1" $(ctf "$A" coarse-ar-S-4p fine-aux-S) --cfg "$cfg"
    ev "$A" "sweep-baseline-S-d0-cfg$cfg-t1" $(base "$A" baseline-S-d0) --cfg "$cfg"
    ev "$A" "sweep-ctf-S-auxS-d0-cfg$cfg-t1" $(ctf "$A" coarse-ar-S-d0 fine-aux-S-d0) --cfg "$cfg"
  done
  wait_for "$A/coarse-ar-S.report.json" "stage 1 S, one pass (lane a)"
  for cfg in 1.5 3; do
    ev "$A" "sweep-ctf-S-auxS-cfg$cfg-t1" $(ctf "$A" coarse-ar-S fine-aux-S) --cfg "$cfg"
  done
  wait_for "$A/fine-aux-ML.report.json" "the ML aux (lane a)"
  ev "$A" ctf-S4p-auxML $(ctf "$A" coarse-ar-S-4p fine-aux-ML)
  # Four passes at V = 4096, each method at CFG 1.5 (both its best there) with the paper-sized aux: three seeds.
  ev "$A" sweep-ctf-S4p-auxML-cfg1.5-t1 $(ctf "$A" coarse-ar-S-4p fine-aux-ML) --cfg 1.5
  for seed in 1 2; do
    EVAL_SEED=$seed ev "$A" "best-baseline-S-4p-seed$seed" $(base "$A" baseline-S-4p) --cfg 1.5
    EVAL_SEED=$seed ev "$A" "best-ctf-S4p-auxML-seed$seed" $(ctf "$A" coarse-ar-S-4p fine-aux-ML) --cfg 1.5
  done
  wait_for "$A/baseline-S.report.json" "the baseline S, one pass (lane a)"
  for cfg in 1.5 3; do
    ev "$A" "sweep-baseline-S-cfg$cfg-t1" $(base "$A" baseline-S) --cfg "$cfg"
  done
  # Both methods' best V = 16384 setting lay at the grid's lowest guidance (1.5): guidance 1.25 and 1 (off) at tau 0.8.
  for cfg in 1.25 1; do
    ev "$B" "sweep-baseline-S-cfg$cfg-t0.8" $(base "$B" baseline-S) --cfg "$cfg" --t1 0.8
    ev "$B" "sweep-ctf-S-auxS-cfg$cfg-t0.8" $(ctf "$B" coarse-ar-S fine-aux-S) --cfg "$cfg" --t1 0.8
  done
  # Two rounds of masked refinement at V = 16384 (1, 4 and 8 on lane a), backbones S and tiny.
  ev "$B" ctf-S-auxS-masked-R2 $(ctf "$B" coarse-ar-S fine-aux-S-masked) --refine-rounds 2
  ev "$B" ctf-tiny-auxS-masked-R2 $(ctf "$B" coarse-ar-tiny fine-aux-S-masked) --refine-rounds 2
  # Backbone M at V = 16384 (the baseline M trains on lane a): stage 1 M, CTF with the shared aux S over the
  # guidance x temperature grid, seeds 1 and 2 at its best; then a share of the baseline M's grid and its seed 2.
  gpt "$B" stage1 M coarse-ar-M
  for cfg in 1.25 1.5 2 1; do
    for t1 in 0.8 0.9; do
      ev "$B" "sweep-ctf-M-auxS-cfg$cfg-t$t1" $(ctf "$B" coarse-ar-M fine-aux-S) --cfg "$cfg" --t1 "$t1"
    done
  done
  ev "$B" sweep-ctf-M-auxS-cfg1.25-t0.7 $(ctf "$B" coarse-ar-M fine-aux-S) --cfg 1.25 --t1 0.7
  read -r cfg t1 _ < <(best_setting "$B/eval" ctf-M-auxS)
  for seed in 1 2; do
    EVAL_SEED=$seed ev "$B" "best-ctf-M-auxS-seed$seed" $(ctf "$B" coarse-ar-M fine-aux-S) --cfg "$cfg" --t1 "$t1"
  done
  wait_for "$B/baseline-M.report.json" "the baseline M (lane a)"
  for cfg in 1.5 2; do
    for t1 in 0.8 0.9; do
      ev "$B" "sweep-baseline-M-cfg$cfg-t$t1" $(base "$B" baseline-M) --cfg "$cfg" --t1 "$t1"
    done
  done
  for f in cfg1-t0.8 cfg1-t0.9 cfg1.25-t0.8 cfg1.25-t0.9 cfg1.25-t0.7; do
    wait_for "$B/eval/sweep-baseline-M-$f.json" "the baseline M's grid (lane a)"
  done
  read -r cfg t1 _ < <(best_setting "$B/eval" baseline-M)
  EVAL_SEED=2 ev "$B" best-baseline-M-seed2 $(base "$B" baseline-M) --cfg "$cfg" --t1 "$t1"
  # FID per training pass at CFG 1.5 (V = 4096; the curve above is at CFG 2, where the better-trained baseline is
  # over-guided).
  for pass in 1 2 3 4; do
    EVAL_N=2000 ev "$A" "pass$pass-baseline-S-cfg1.5" $(base "$A" "$(snap baseline-S-4p "$pass")") --cfg 1.5
    EVAL_N=2000 ev "$A" "pass$pass-ctf-S-auxS-cfg1.5" $(ctf "$A" "$(snap coarse-ar-S-4p "$pass")" fine-aux-S) --cfg 1.5
  done
  # Training length at V = 16384: stage 1 S for 4 passes (the baseline on lane a), both evaluated after every pass
  # at the one-pass models' best setting (CFG 1.5, tau1 0.8), 10 000 samples; CTF with the one-pass aux S.
  gpt "$B" stage1 S coarse-ar-S-4p --epochs 4 --snapshot-every 937
  for pass in 1 2 3 4; do
    ev "$B" "pass$pass-ctf-S-auxS" $(ctf "$B" "$(snap coarse-ar-S-4p "$pass")" fine-aux-S) --cfg 1.5 --t1 0.8
  done
  for pass in 1 2 3 4; do
    # A snapshot is written once, at its step; the last pass is the run's own checkpoint, done with its report.
    done_file=$B/baseline-S-4p.step$((937 * pass)).safetensors
    ((pass < 4)) || done_file=$B/baseline-S-4p.report.json
    wait_for "$done_file" "the baseline S after pass $pass (lane a)"
    ev "$B" "pass$pass-baseline-S" $(base "$B" "$(snap baseline-S-4p "$pass")") --cfg 1.5 --t1 0.8
  done
  ;;
*) echo "regime.sh: unknown lane \"$LANE\" (a or b)" >&2; exit 2 ;;
esac
log "lane $LANE finished"
