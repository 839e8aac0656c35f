#!/usr/bin/env bash
# The steps of the ci-guard GitHub Actions (action.yml and actions/*/action.yml), one phase per call:
#
#   ci-guard-action.sh cache-key | install | preflight | check | run | start | stop | comment | finish
#
# Every action input arrives as an environment variable named CIG_<INPUT> (set through the step's
# `env:`, never interpolated into the script, so no input or event value can inject shell code).
# Outputs go to $GITHUB_OUTPUT; the ci-guard commands themselves write their own outputs and step
# summaries with --format github.
set -euo pipefail

phase="${1:?usage: ci-guard-action.sh PHASE}"

notice() { echo "::notice title=ci-guard::$*"; }
warning() { echo "::warning title=ci-guard::$*"; }
error() { echo "::error title=ci-guard::$*"; }
output() { echo "$1=$2" >>"${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set}"; }
is_true() { case "${1,,}" in true | yes | 1 | on) return 0 ;; *) return 1 ;; esac; }

# Inputs override the job's environment only when they are given: an empty input must not hide a
# CI_GUARD_LEDGER or ANTHROPIC_API_KEY that the workflow set at job level.
export_if_set() {
  local name="$1" value="${2:-}"
  if [ -n "$value" ]; then export "$name=$value"; fi
}
export_if_set CI_GUARD_LEDGER "${CIG_LEDGER:-}"
export_if_set ANTHROPIC_API_KEY "${CIG_ANTHROPIC_API_KEY:-}"
export_if_set OPENAI_API_KEY "${CIG_OPENAI_API_KEY:-}"
export_if_set GITHUB_TOKEN "${CIG_GITHUB_TOKEN:-}"
export_if_set CI_GUARD_AGENT "${CIG_AGENT:-}"
export_if_set CI_GUARD_ANTHROPIC_UPSTREAM "${CIG_ANTHROPIC_UPSTREAM:-}"
export_if_set CI_GUARD_OPENAI_UPSTREAM "${CIG_OPENAI_UPSTREAM:-}"

workdir="${RUNNER_TEMP:-${TMPDIR:-/tmp}}/ci-guard"
mkdir -p "$workdir"
# One summary per use of the action (preflight picks the name; later steps get it from its output),
# so two agents in one job never overwrite each other's summary.
summary_path="${CIG_SUMMARY_PATH:-$workdir/summary-${GITHUB_RUN_ID:-local}-$(date +%s%N)-$RANDOM.json}"
state_path="${CIG_STATE_PATH:-${CI_GUARD_STATE:-$workdir/state.json}}"

# Exit 82 (run, start, stop) and 3 (check) are infrastructure failures, never decisions.
INFRA_RUN="ci-guard could not run the agent because of an infrastructure failure (exit 82: the ledger is unreachable or misconfigured, a provider key the run needs is missing, or the upstream is unreachable); this is not a policy decision. See the log above."
INFRA_CHECK="ci-guard check could not decide because of an infrastructure failure (exit 3: the ledger is unreachable or misconfigured); this is not a policy decision. See the log above."

# start has no command to detect an agent from: auto means none there.
start_preset() {
  case "${CIG_PRESET:-none}" in auto | "") echo none ;; *) echo "$CIG_PRESET" ;; esac
}

policy_args() {
  POLICY_ARGS=()
  if [ -n "${CIG_POLICY:-}" ]; then POLICY_ARGS+=(--policy "$CIG_POLICY"); fi
  if [ -n "${CIG_AGENT:-}" ]; then POLICY_ARGS+=(--agent "$CIG_AGENT"); fi
}

# --- install ----------------------------------------------------------------------------------
phase_install() {
  if ! is_true "${CIG_INSTALL:-true}"; then
    command -v ci-guard >/dev/null || { error "install is false but ci-guard is not on PATH"; exit 2; }
    return 0
  fi
  # The action installs the ci-guard of its own checkout, so the version is the ref the workflow pinned.
  python -m pip install --disable-pip-version-check --quiet "${CIG_SOURCE:?CIG_SOURCE is not set}"
  ci-guard --version
}

phase_cache_key() {
  # The pip cache is keyed on the action's own pyproject.toml and the Python version in use.
  local hash
  hash=$( { cat "${CIG_SOURCE:?CIG_SOURCE is not set}/pyproject.toml"; python --version; } | sha256sum | cut -c1-16)
  output key "$hash"
  output pip-cache-dir "$(python -m pip cache dir 2>/dev/null || echo "$HOME/.cache/pip")"
}

# --- preflight: fork pull requests get no secrets, so the run is skipped with a notice --------
event_facts() {
  # Prints "<fork> <pr>" from the event payload: fork is true when the PR head lives in another
  # repository (or was deleted), which is when GitHub withholds secrets from `pull_request` runs.
  python - "${GITHUB_EVENT_PATH:-}" <<'PY'
import json, sys
path = sys.argv[1]
try:
    with open(path, encoding="utf-8") as fh:
        event = json.load(fh)
except (OSError, ValueError):
    print("false -"); sys.exit(0)
pr = event.get("pull_request") or {}
if not pr:
    print("false -"); sys.exit(0)
head = (pr.get("head") or {}).get("repo") or {}
base = (pr.get("base") or {}).get("repo") or {}
fork = not head or head.get("full_name") != base.get("full_name")
print(("true" if fork else "false"), pr.get("number") or "-")
PY
}

needed_key_missing() {
  case "${CIG_PRESET:-none}" in
    claude-code) [ -z "${ANTHROPIC_API_KEY:-}${ANTHROPIC_AUTH_TOKEN:-}" ] ;;
    codex) [ -z "${OPENAI_API_KEY:-}${CODEX_API_KEY:-}" ] ;;
    *) [ -z "${ANTHROPIC_API_KEY:-}${ANTHROPIC_AUTH_TOKEN:-}${OPENAI_API_KEY:-}" ] ;;
  esac
}

phase_preflight() {
  local fork pr mode="${CIG_MODE:-run}"
  read -r fork pr < <(event_facts)
  output fork "$fork"
  if [ "$pr" != "-" ]; then output pr "$pr"; fi
  output summary-path "$summary_path"
  output state-path "$state_path"
  local wants_agent=false
  if [ "$mode" = start ] || { [ "$mode" = run ] && [ -n "${CIG_COMMAND:-}" ]; }; then wants_agent=true; fi
  if [ "$wants_agent" = true ] && [ "$fork" = true ] && needed_key_missing; then
    notice "pull request #$pr comes from a fork, and GitHub gives fork pull requests no secrets: skipping the agent run (nothing was spent). Use a two-stage workflow to review forks; see docs/github.md."
    output skip true
    output decision skip
    output reason "fork pull request without provider secrets"
    # as `ci-guard run` reports a skipped run: the action's status and exit-code say so too
    output status skipped
    output exit-code 80
    return 0
  fi
  # With a stop key the start step ran and a proxy may be running: a state file the agent deleted
  # must not make stop skip it.
  if [ "$mode" = stop ] && [ ! -f "$state_path" ] && [ -z "${CIG_STOP_KEY:-}" ]; then
    notice "no ci-guard state file at $state_path: the start step was skipped or denied, nothing to stop."
    output skip true
    # a fork's start was skipped by the preflight above (no secrets): say so; otherwise the start
    # step's own decision output tells denied from skipped, which this step cannot know
    if [ "$fork" = true ] && needed_key_missing; then
      output status skipped
      output exit-code 80
    fi
    return 0
  fi
  output skip false
}

# --- check ------------------------------------------------------------------------------------
phase_check() {
  policy_args
  local rc=0
  ci-guard check "${POLICY_ARGS[@]}" --format github || rc=$?
  output exit-code "$rc"
  # 0 allow, 1 deny/skip (a decision, not a failure); anything else is an error worth stopping for.
  case "$rc" in
    0 | 1) ;;
    3) error "$INFRA_CHECK"; exit 3 ;;
    *) error "ci-guard check failed (exit $rc)"; exit "$rc" ;;
  esac
}

# --- run --------------------------------------------------------------------------------------
phase_run() {
  policy_args
  local rc=0
  # The command is the workflow author's shell text (trusted, like a `run:` step); bash -c keeps
  # quoting and pipes working. Event data belongs in env vars the command reads, not in the text.
  ci-guard run "${POLICY_ARGS[@]}" --preset "${CIG_PRESET:-none}" --summary "$summary_path" \
    --format github -- bash -c "$CIG_COMMAND" || rc=$?
  output exit-code "$rc"
  case "$rc" in
    0) ;;
    80) notice "the policy did not allow this agent run; see the step summary for the rule and the reason." ;;
    81) warning "a ci-guard cap stopped the agent; see the step summary for which one." ;;
    82) error "$INFRA_RUN" ;;
    *) warning "the agent command exited with code $rc" ;;
  esac
}

# --- start / stop (agents that are actions: claude-code-action, codex-action) ----------------
phase_start() {
  policy_args
  local rc=0
  # The agent is another step (an action or a plain `run:`), which reads the environment exported
  # through GITHUB_ENV: the proxy, the run token and the preset's model, turn cap or CODEX_HOME.
  ci-guard start "${POLICY_ARGS[@]}" --preset "$(start_preset)" --state "$state_path" --format github || rc=$?
  output exit-code "$rc"
  case "$rc" in
    0) ;;
    80) notice "the policy did not allow this agent run: the agent steps after this one should be skipped (if: steps.<id>.outputs.decision == 'allow')." ;;
    82) error "$INFRA_RUN"; exit 82 ;;
    *) error "ci-guard start failed (exit $rc)"; exit "$rc" ;;
  esac
}

phase_stop() {
  local rc=0
  if [ -z "${CIG_STOP_KEY:-}" ]; then
    warning "no stop-key input: the state file and the run summary, which the agent step could rewrite, cannot be authenticated. Pass stop-key: \${{ steps.<start-id>.outputs.stop-key }}."
  fi
  # The key reaches ci-guard through its environment (not argv, which every process can read), and
  # only this step's: it is never exported to the job.
  CI_GUARD_STOP_KEY="${CIG_STOP_KEY:-}" ci-guard stop --state "$state_path" --summary "$summary_path" \
    --format github || rc=$?
  output exit-code "$rc"
  case "$rc" in
    0) ;;
    81) warning "a ci-guard cap stopped the agent; see the step summary for which one." ;;
    2) error "ci-guard stop refused a state file or run summary that was changed after ci-guard wrote it (see above); the run was stopped and reported from the ledger."; exit 2 ;;
    3 | 82) error "$INFRA_RUN"; exit "$rc" ;;
    *) error "ci-guard stop failed (exit $rc)"; exit "$rc" ;;
  esac
}

# --- comment ----------------------------------------------------------------------------------
phase_comment() {
  local behavior="${CIG_COMMENT:-update}" comment_on="${CIG_COMMENT_ON:-spend}"
  if [ "$behavior" = off ]; then
    # No comment; the policy's handoff (label, review request) still applies when a cap stopped the run.
    if [ -z "${CIG_POLICY:-}" ] || [ ! -f "$summary_path" ]; then return 0; fi
    behavior=update
    comment_on=never
  fi
  if [ ! -f "$summary_path" ]; then
    notice "no run summary at $summary_path: no comment to post."
    return 0
  fi
  local args=(--summary "$summary_path" --platform github --behavior "$behavior" --comment-on "$comment_on")
  if [ -n "${CIG_POLICY:-}" ]; then args+=(--policy "$CIG_POLICY"); fi
  # Explicit targets win over the summary's run context (a second stage must not trust an artifact).
  if [ -n "${CIG_REPO:-}" ]; then args+=(--repo "$CIG_REPO"); fi
  if [ -n "${CIG_PR:-}" ]; then args+=(--pr "$CIG_PR"); fi
  if [ -n "${CIG_FOOTER_ON:-}" ]; then args+=(--footer-on "$CIG_FOOTER_ON"); fi
  # A comment that cannot be posted (fork token, rate limit) is a warning, never a failed job.
  ci-guard comment "${args[@]}" || warning "the cost comment could not be posted (exit $?)"
}

# --- finish: turn the outcome into the step's success or failure -----------------------------
phase_finish() {
  local decision="${CIG_DECISION:-}" rc="${CIG_EXIT_CODE:-0}"
  # An infrastructure failure is never a policy decision: the step fails whatever fail-on-deny says.
  # (The run step already annotated it; this step is what turns the job red.)
  if [ "$rc" = 82 ]; then error "failing the step: infrastructure failure (exit 82), see above"; exit 82; fi
  if [ "$decision" != allow ] && [ -n "$decision" ] && is_true "${CIG_FAIL_ON_DENY:-false}"; then
    error "the policy decision was '$decision' and fail-on-deny is true"
    exit 1
  fi
  case "$rc" in
    "" | 0 | 80) exit 0 ;;
    81) if is_true "${CIG_FAIL_ON_CAP:-false}"; then error "a cap stopped the agent and fail-on-cap is true"; exit 81; fi ;;
    *) exit "$rc" ;;
  esac
}

case "$phase" in
  install | preflight | check | run | start | stop | comment | finish) "phase_$phase" ;;
  cache-key) phase_cache_key ;;
  *) echo "ci-guard-action.sh: unknown phase '$phase'" >&2; exit 2 ;;
esac
