# Shared helpers of the experiment scripts (sourced, not run). Every step is a `ctfgen` command run by `ctfgen step`
# (src/run/stage.ts, the stage runner `ctfgen demo` uses too): a step whose output exists is skipped, an interrupted
# training continues with --resume, and a command that stops (a signal: exit 130/143) or fails ends the script
# (set -e) without marking the step done, so running the script again continues where it stopped. Each finished step
# appends {step, command, seconds} to $RUN/times.jsonl (seconds of the attempt that finished it), every attempt
# {step, seconds, exit} to $RUN/attempts.jsonl.
#
# Callers set RUN (the run directory) and CTFGEN (the command, an array) before using these.

log() { printf '[%s %s] %s\n' "${LOG_TAG:-experiment}" "$(date +%H:%M:%S)" "$*" >&2; }

# step NAME OUTPUT -- ARGS...: runs `ctfgen ARGS` unless OUTPUT exists; records the time. With STDOUT_TO set,
# the command's stdout goes to that file once the command succeeded.
step() {
  local name=$1 output=$2 extra=(); shift 3
  [[ -n ${STDOUT_TO:-} ]] && extra=(--stdout-to "$STDOUT_TO")
  "${CTFGEN[@]}" step "$name" --done "$output" "${extra[@]}" --records "$RUN" --log-tag "${LOG_TAG:-experiment}" \
    -- "$@"
}

# train_step NAME DONE CHECKPOINT -- ARGS...: like step with DONE as the output (a file written only at the end),
# adding --resume when CHECKPOINT's train state exists (checkpoints are written during training too).
train_step() {
  local name=$1 done=$2 checkpoint=$3; shift 4
  "${CTFGEN[@]}" step "$name" --done "$done" --resumes "$checkpoint" --records "$RUN" \
    --log-tag "${LOG_TAG:-experiment}" -- "$@"
}

# wait_for FILE [WHAT]: blocks until FILE exists (another lane of the same script makes it); gives up when a
# lane wrote $RUN/lane-failed.
wait_for() {
  local f=$1 said=0
  until [[ -e $f ]]; do
    if [[ -e $RUN/lane-failed ]]; then
      log "another lane failed ($(cat "$RUN/lane-failed")); not waiting for $f"
      return 1
    fi
    ((said)) || log "waiting for ${2:-$f}"
    said=1
    sleep 20
  done
}
