# Shared helpers of the experiment scripts (sourced, not run). Every step is a `ctfgen` command; a step whose
# output exists is skipped, an interrupted training continues with --resume, and a command that stops (a signal:
# exit 130/143) or fails ends the script (set -e) without marking the step done, so running the script again
# continues where it stopped. Each finished step appends {step, command, seconds} to $RUN/times.jsonl (seconds of the
# attempt that finished it), every attempt {step, seconds, exit} to $RUN/attempts.jsonl.
#
# Callers set RUN (the run directory) and CTFGEN (the command, an array) before using these.

log() { printf '[%s %s] %s\n' "${LOG_TAG:-experiment}" "$(date +%H:%M:%S)" "$*" >&2; }

# step NAME OUTPUT -- ARGS...: runs `ctfgen ARGS` unless OUTPUT exists; records the time. With STDOUT_TO set,
# the command's stdout goes to that file (through a temporary name, renamed once the command succeeded).
step() {
  local name=$1 output=$2; shift 3
  if [[ -e $output ]]; then log "$name: done before ($output)"; return; fi
  log "$name: ctfgen $*"
  local t0=$SECONDS rc=0
  if [[ -n ${STDOUT_TO:-} ]]; then
    "${CTFGEN[@]}" "$@" >"$STDOUT_TO.tmp" || rc=$?
    ((rc)) || mv -f "$STDOUT_TO.tmp" "$STDOUT_TO"
  else
    "${CTFGEN[@]}" "$@" || rc=$?
  fi
  local dt=$((SECONDS - t0))
  # Every attempt's time, finished or not, so a resumed step's total is the sum of its attempts.
  printf '{"step":"%s","seconds":%d,"exit":%d,"endedAt":"%s"}\n' "$name" "$dt" "$rc" "$(date -u +%FT%TZ)" >>"$RUN/attempts.jsonl"
  # 130/143: stopped by a signal after saving; anything else non-zero: failed. Either way not finished.
  if ((rc)); then log "$name: not finished (exit $rc)"; return "$rc"; fi
  printf '{"step":"%s","command":"ctfgen %s","seconds":%d,"finishedAt":"%s","threads":"%s"}\n' \
    "$name" "$*" "$dt" "$(date -u +%FT%TZ)" "${OPENBLAS_NUM_THREADS:-default}" >>"$RUN/times.jsonl"
  log "$name: finished in ${dt} s"
}

# train_step NAME DONE CHECKPOINT -- ARGS...: like step with DONE as the output (a file written only at the end),
# adding --resume when CHECKPOINT's train state exists (checkpoints are written during training too).
train_step() {
  local name=$1 done=$2 state=${3%.safetensors}.train-state.safetensors; shift 4
  if [[ ! -e $done && -e $state ]]; then step "$name" "$done" -- "$@" --resume; else step "$name" "$done" -- "$@"; fi
}

# wait_for FILE [WHAT]: blocks until FILE exists (another lane of the same script makes it); gives up when a
# lane wrote $RUN/lane-failed.
wait_for() {
  local f=$1 said=0
  until [[ -e $f ]]; do
    if [[ -e $RUN/lane-failed ]]; then log "another lane failed ($(cat "$RUN/lane-failed")); not waiting for $f"; return 1; fi
    ((said)) || log "waiting for ${2:-$f}"
    said=1
    sleep 20
  done
}
