#!/usr/bin/env bash
# The small-scale reproduction of CTF (arXiv 2503.16194) on Fashion-MNIST, from scratch, resumable.
#
#   bash experiments/reproduce.sh [RUN_DIR]        (default RUN_DIR: runs/repro)
#
# Every step is a `ctfgen` command. A step whose output exists is skipped; an interrupted training continues
# with --resume; so running the script again after a stop (Ctrl-C, a crash, a reboot) continues where it
# stopped. Each finished step appends {step, command, seconds} to RUN_DIR/times.jsonl, which
# experiments/summarize.mjs turns into the wall-clock column of results/README.md.
#
# What it trains (results/README.md gives the reading):
#   tokenizer  S, V = 4096, 8×8 tokens, 3 epochs (more than the GPTs: it is the ceiling of every sample metric)
#   clusters   k-means K = 128 on the l2-normalised codebook
#   backbones  S and tiny: baseline and CTF stage 1 (files coarse-ar-*) with the same preset, epochs, batch, LR and seed
#   aux        the aux (files fine-aux-*) at presets tiny and S, each shared by both stage-1 models (as the paper
#              shares its GPT-L aux across backbones; the aux size is the paper's ablation too): on a CPU the aux
#              forward costs FLOPs like the stage-1 decode, so the aux size decides CTF's speed (results/README.md)
# GPT epochs count passes over the training split plus its mirrored copies (120 000 sequences). Each GPT logs its
# events (loss, validation loss every 100 steps) to *.events.jsonl and keeps snapshots every 200 steps for the curves.
set -euo pipefail
cd "${CTFGEN_REPO:-$(dirname "$0")/..}"  # CTFGEN_REPO: when running a copy of this script from elsewhere
RUN=${1:-runs/repro}
CTFGEN=(node dist/src/cli/main.js)
GPT_EPOCHS=${GPT_EPOCHS:-1}
TOKENIZER_EPOCHS=${TOKENIZER_EPOCHS:-3}
mkdir -p "$RUN"
# Native build, tsc, and PyTorch for the sampler benchmark.
[[ -n ${SKIP_SETUP:-} ]] || CTFGEN_TORCH=1 bash scripts/setup.sh

LOG_TAG=reproduce
source experiments/lib.sh  # log, step, train_step

TOK=$RUN/tokenizer.safetensors
TOKENIZER_CONFIG=(--preset S --codebook 4096)
[[ -e ${TOK%.safetensors}.train-state.safetensors ]] && TOKENIZER_CONFIG=()  # --resume takes them from the saved run
train_step tokenizer "$RUN/tokenizer.done" "$TOK" -- tokenizer train --data fashion-mnist \
  --out "$TOK" "${TOKENIZER_CONFIG[@]}" \
  --epochs "$TOKENIZER_EPOCHS" --seed 0 --progress-every 100 --eval-limit 0
touch "$RUN/tokenizer.done"
STDOUT_TO=$RUN/tokenizer-eval.json step tokenizer-eval "$RUN/tokenizer-eval.json" -- tokenizer eval --tokenizer "$TOK" \
  --grid "$RUN/tokenizer-recon.png" --json
step encode-train "$RUN/tokens-train.safetensors" -- tokenizer encode --tokenizer "$TOK" --split train --flip \
  --out "$RUN/tokens-train.safetensors"
step encode-test "$RUN/tokens-test.safetensors" -- tokenizer encode --tokenizer "$TOK" --split test \
  --out "$RUN/tokens-test.safetensors"
step cluster "$RUN/clusters.safetensors" -- cluster --tokenizer "$TOK" --k 128 --seed 0 \
  --out "$RUN/clusters.safetensors"

# gpt KIND PRESET [SUFFIX CLUSTERS]: trains RUN/FILE-PRESET[SUFFIX].safetensors with the shared recipe (on the
# coarse map CLUSTERS, default RUN/clusters.safetensors). KIND is baseline, stage1 or aux; FILE keeps the names of the
# first runs (coarse-ar for stage 1, fine-aux for the aux), which the summary and the step names use.
declare -A FILE_OF=([baseline]=baseline [stage1]=coarse-ar [aux]=fine-aux)
gpt() {
  local kind=$1 preset=$2 name=${FILE_OF[$1]}-$2${3:-}
  local out=$RUN/$name.safetensors clusters=()
  [[ $kind != baseline ]] && clusters=(--clusters "${4:-$RUN/clusters.safetensors}")
  train_step "$name" "${out%.safetensors}.report.json" "$out" -- train "$kind" \
    --tokens "$RUN/tokens-train.safetensors" --val-tokens "$RUN/tokens-test.safetensors" \
    "${clusters[@]}" --out "$out" --preset "$preset" --epochs "$GPT_EPOCHS" --batch 128 --lr 3e-3 --seed 0 \
    --val-limit 2000 --eval-every 100 --checkpoint-every 200 --snapshot-every 200 --progress-every 50
}
# ev NAME ARGS...: one `ctfgen eval` of the pieces named by ARGS into RUN/eval/NAME.json (+ grids and .npz beside it).
CLASSIFIER=$RUN/classifier.safetensors
ev() {
  local name=$1; shift
  step "eval-$name" "$RUN/eval/$name.json" -- eval --tokenizer "$TOK" --clusters "$RUN/clusters.safetensors" \
    --classifier "$CLASSIFIER" \
    --n "${EVAL_N:-10000}" --seed "${EVAL_SEED:-0}" --batch 64 --cfg 2 --t1 1 --t2 1 "$@" --out "$RUN/eval/$name.json"
}
mkdir -p "$RUN/eval"

# 1. The backbone-S comparison, the classifier and the real-data / tokenizer rows.
gpt stage1 S
gpt baseline S
gpt aux tiny
train_step classifier "${CLASSIFIER%.safetensors}.report.json" "$CLASSIFIER" -- eval classifier train \
  --data fashion-mnist --out "$CLASSIFIER" --seed 0
step eval-real "$RUN/eval/real.json" -- eval real --classifier "$CLASSIFIER" --out "$RUN/eval/real.json"
step eval-recon "$RUN/eval/recon.json" -- eval recon --tokenizer "$TOK" --classifier "$CLASSIFIER" \
  --out "$RUN/eval/recon.json"
ev S-auxtiny --method both --stage1 "$RUN/coarse-ar-S.safetensors" --aux "$RUN/fine-aux-tiny.safetensors" \
  --baseline "$RUN/baseline-S.safetensors"

# bench RUNNAME BACKBONE AUX: images/s of the trained pieces, ours and the PyTorch sampler, alternating (ctfgen bench
# sample reads a run directory with the standard names, so RUN/RUNNAME holds links to the pieces).
bench() {
  local dir=$RUN/$1
  mkdir -p "$dir" "$RUN/bench"
  ln -sf ../tokenizer.safetensors "$dir/tokenizer.safetensors"; ln -sf ../clusters.safetensors \
    "$dir/clusters.safetensors"
  ln -sf "../coarse-ar-$2.safetensors" "$dir/stage1.safetensors"; ln -sf "../baseline-$2.safetensors" \
    "$dir/baseline.safetensors"
  ln -sf "../fine-aux-$3.safetensors" "$dir/aux.safetensors"
  step "bench-$1" "$RUN/bench/$1.json" -- bench sample --run "$dir" --rounds 15 --json "$RUN/bench/$1.json"
}
bench S-auxtiny S tiny

# 2. The aux at the backbone's size, and the second backbone.
gpt aux S
ev S-auxS --method ctf --stage1 "$RUN/coarse-ar-S.safetensors" --aux "$RUN/fine-aux-S.safetensors"
bench S-auxS S S
gpt stage1 tiny
gpt baseline tiny
ev tiny-auxtiny --method both --stage1 "$RUN/coarse-ar-tiny.safetensors" --aux "$RUN/fine-aux-tiny.safetensors" \
  --baseline "$RUN/baseline-tiny.safetensors"
ev tiny-auxS --method ctf --stage1 "$RUN/coarse-ar-tiny.safetensors" --aux "$RUN/fine-aux-S.safetensors"
bench tiny-auxtiny tiny tiny

# 3. FID against training steps (the snapshots every 200 steps and the final model), 2000 images each.
for snap in "$RUN"/baseline-S.step*.safetensors "$RUN/baseline-S.safetensors"; do
  s=$(basename "$snap" .safetensors); EVAL_N=2000 ev "curve-$s" --method baseline --baseline "$snap"
done
for snap in "$RUN"/coarse-ar-S.step*.safetensors "$RUN/coarse-ar-S.safetensors"; do
  s=$(basename "$snap" .safetensors); EVAL_N=2000 ev "curve-$s-auxtiny" --method ctf --stage1 "$snap" \
    --aux "$RUN/fine-aux-tiny.safetensors"
done
# 4. Sampling ablations on the S models (no retraining), each against the main setting (CFG 2, τ1 = τ2 = 1, mask on).
CTF_S=(--method ctf --stage1 "$RUN/coarse-ar-S.safetensors" --aux "$RUN/fine-aux-tiny.safetensors")
BASE_S=(--method baseline --baseline "$RUN/baseline-S.safetensors")
for t in 0.9 1.1; do ev "S-auxtiny-t1-$t" "${CTF_S[@]}" --t1 "$t"; ev "S-auxtiny-t2-$t" "${CTF_S[@]}" \
  --t2 "$t"; ev "S-baseline-t-$t" "${BASE_S[@]}" --t1 "$t"; done
for c in 1.5 2.5; do ev "S-auxtiny-cfg-$c" "${CTF_S[@]}" --cfg "$c"; ev "S-baseline-cfg-$c" "${BASE_S[@]}" \
  --cfg "$c"; done
ev S-auxtiny-greedy2 "${CTF_S[@]}" --t2 0
ev S-auxtiny-nomask "${CTF_S[@]}" --mask off

# 5. Clustering ablations (paper Table 3): K = 32 and 512, and random clusters with the k-means sizes; stage 1 (S)
# and the aux (tiny) retrained on each coarse map, evaluated at the main setting.
for variant in k32 k512 random; do
  case $variant in
    k32) cargs=(--k 32) ;; k512) cargs=(--k 512) ;; random) cargs=(--k 128 --mode random) ;;
  esac
  step "cluster-$variant" "$RUN/clusters-$variant.safetensors" -- cluster --tokenizer "$TOK" "${cargs[@]}" --seed 0 \
    --out "$RUN/clusters-$variant.safetensors"
  gpt stage1 S "-$variant" "$RUN/clusters-$variant.safetensors"
  gpt aux tiny "-$variant" "$RUN/clusters-$variant.safetensors"
  step "eval-S-auxtiny-$variant" "$RUN/eval/S-auxtiny-$variant.json" -- eval --tokenizer "$TOK" \
    --clusters "$RUN/clusters-$variant.safetensors" \
    --classifier "$CLASSIFIER" --n "${EVAL_N:-10000}" --seed 0 --batch 64 --method ctf \
    --stage1 "$RUN/coarse-ar-S-$variant.safetensors" --aux "$RUN/fine-aux-tiny-$variant.safetensors" \
    --out "$RUN/eval/S-auxtiny-$variant.json"
done

# 6. The main comparisons again with sampling seeds 1 and 2 (same models), for the spread over seeds.
for seed in 1 2; do
  EVAL_SEED=$seed ev "S-auxtiny-seed$seed" --method both --stage1 "$RUN/coarse-ar-S.safetensors" \
    --aux "$RUN/fine-aux-tiny.safetensors" --baseline "$RUN/baseline-S.safetensors"
  EVAL_SEED=$seed ev "tiny-auxtiny-seed$seed" --method both --stage1 "$RUN/coarse-ar-tiny.safetensors" \
    --aux "$RUN/fine-aux-tiny.safetensors" --baseline "$RUN/baseline-tiny.safetensors"
done

log "finished: $RUN (node experiments/summarize.mjs $RUN writes the tables)"
