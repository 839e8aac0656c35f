"""A metering proxy that outlives the command that started it, for agents that are CI actions.

``start`` decides, reserves and launches ``ci-guard proxy --state FILE`` as a detached process;
the agent action runs in a later step with the exported environment; ``stop`` sends the proxy
SIGTERM, and the proxy settles the run and writes its summary before it exits. The state file
(mode 0600) carries what the proxy needs except the real provider keys, which it inherits from
the environment of ``start`` and which never touch the disk.

The agent can rewrite every file here: the state, the summary and the outcome file are
authenticated with the run's stop key (``stopkey.py``), which the agent never sees, and `stop`
signals only the process the key names, while its start time still matches.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ci_guard.errors import CiGuardError, InvalidInputError, ProviderError
from ci_guard.files import write_text_atomic
from ci_guard.meter.procs import alive as _alive
from ci_guard.meter.procs import start_time as process_start_time
from ci_guard.meter.stopkey import StopKey
from ci_guard.meter.summary import RunSummary
from ci_guard.secrets import register

# `stop` needs none of these: they are imported by start/serve only, so that stopping a run is not
# slowed by importing the proxy, the policy models and asyncio (over a second on a busy runner).
if TYPE_CHECKING:
    from ci_guard.context.model import RunContext
    from ci_guard.meter.session import MeterSession
    from ci_guard.meter.status import FinalStatus
    from ci_guard.meter.upstreams import Upstreams
    from ci_guard.policy.decision import Decision

LEDGER_ENV = "CI_GUARD_LEDGER"


def agent_dir(state_path: str) -> Path:
    """Where `start` keeps a preset's generated configuration (the codex preset's CODEX_HOME)."""
    return Path(state_path).resolve().with_suffix(".agent")


def default_state_path(environ: dict[str, str] | None = None) -> str:
    """$RUNNER_TEMP/ci-guard-state.json; elsewhere next to the default ledger, outside the checkout."""
    from ci_guard.ledger import default_ledger_path

    env = os.environ if environ is None else environ
    if env.get("RUNNER_TEMP"):
        return str(Path(env["RUNNER_TEMP"]) / "ci-guard-state.json")
    return str(default_ledger_path(env).parent / "ci-guard-state.json")


@dataclass
class Started:
    state_path: str
    run_id: str
    decision: Decision
    proxy_url: str | None
    token: str | None
    refused_summary: RunSummary | None = None
    preset_env: dict[str, str] = field(default_factory=dict)
    # for the CI step only (a masked step output): never the agent's environment or a file
    stop_key: str | None = None

    def agent_env(self) -> dict[str, str]:
        """What later steps need: the proxy, the run token and the preset's configuration."""
        from ci_guard.meter.presets import proxy_environment

        if not self.proxy_url or not self.token:
            return {}
        return {
            **proxy_environment(proxy_url=self.proxy_url, token=self.token, run_id=self.run_id,
                                model=self.decision.model, max_turns=self.decision.limits.max_turns),
            "CI_GUARD_STATE": self.state_path,
            **self.preset_env,
        }


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, default=str), mode=0o600)  # it holds the run token


def summary_path_of(state_path: str | Path) -> Path:
    """Where the proxy writes the run summary: next to the state file, never a path a file names."""
    return Path(state_path).resolve().with_suffix(".summary.json")


def summary_mac_path(summary_path: str | Path) -> Path:
    """The MAC of a run summary (start/stop with a stop key), next to it."""
    return Path(summary_path).with_suffix(".mac")


def read_state(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError as exc:
        raise InvalidInputError(f"{path}: no ci-guard state file here; was `ci-guard start` run in this job?") from exc
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{path}:{exc.lineno}:{exc.colno}: the state file is not valid JSON") from exc


def start(*, policy_path: str, context: RunContext, ledger_url: str | None, budget_snapshot: str | None,
          upstreams: Upstreams, state_path: str, quiet: bool = False, ready_timeout_s: float = 15.0,
          preset: str = "none", environ: dict[str, str] | None = None) -> Started:
    from ci_guard.meter import lifecycle
    from ci_guard.meter.live_log import LiveLog
    from ci_guard.meter.presets import check_preset, preset_environment
    from ci_guard.meter.session import new_run_token
    from ci_guard.meter.upstreams import require_keys

    live = LiveLog(quiet=quiet)
    check_preset(preset, dict(os.environ if environ is None else environ))
    prepared = lifecycle.prepare_run(policy_path=policy_path, context=context, ledger_url=ledger_url,
                                     budget_snapshot=budget_snapshot, now=None, live=live)
    prepared.recorder.close()  # the detached proxy opens its own ledger connection
    state = Path(state_path).resolve()
    key = StopKey.new(prepared.run_id)
    register(key.encode())
    if prepared.refused_summary is not None:
        _write_json_atomic(state, key.sign({"run_id": prepared.run_id, "refused": True,
                                            "summary": prepared.refused_summary.to_json()}))
        return Started(str(state), prepared.run_id, prepared.decision, None, None, prepared.refused_summary,
                       stop_key=key.encode())
    try:
        require_keys(upstreams, model=prepared.decision.model,
                     model_provider=prepared.pricer.provider_of(prepared.decision.model) if prepared.pricer else None)
    except BaseException:
        lifecycle.abandon_run(prepared.ledger_url, prepared.run_id)
        raise
    token = new_run_token()
    register(token)
    # The state file is readable by the agent (CI_GUARD_STATE): it names the ledger without its
    # password. The proxy gets the full URL through its own environment (it is undumpable, so the
    # agent cannot read it from /proc); `stop` takes it from its own --ledger / CI_GUARD_LEDGER.
    data = {
        "run_id": prepared.run_id, "token": token, "policy_path": str(Path(policy_path).resolve()),
        "ledger_url": _public_url(prepared.ledger_url), "decision": prepared.decision.model_dump(mode="json"),
        "upstreams": {"anthropic": upstreams.anthropic, "openai": upstreams.openai},
        "started_at": datetime.now(UTC).isoformat(), "port": None, "pid": None,
        "summary_path": str(summary_path_of(state)), "log_path": str(state.with_suffix(".log")),
        "state_path": str(state),
    }
    _write_json_atomic(state, key.sign(data))
    with open(data["log_path"], "ab") as log:
        child_env = {k: v for k, v in os.environ.items() if k not in (LEDGER_ENV, "CI_GUARD_STOP_KEY")}
        if prepared.ledger_url:
            child_env[LEDGER_ENV] = prepared.ledger_url
        proc = subprocess.Popen(
            [sys.executable, "-m", "ci_guard", "proxy", "--state", str(state), "--stop-key-stdin"]
            + (["--quiet"] if quiet else []),
            stdin=subprocess.PIPE, stdout=log, stderr=log, start_new_session=True, close_fds=True,
            env=child_env,
        )
    key = key.for_process(proc.pid, process_start_time(proc.pid))
    try:
        # The key goes through a pipe: argv and the environment are readable in /proc by the agent.
        assert proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write(key.encode().encode() + b"\n")
            proc.stdin.close()
        port = _wait_ready(state, proc, ready_timeout_s, key)
    except BaseException:
        proc.kill()
        lifecycle.abandon_run(prepared.ledger_url, prepared.run_id)
        raise
    url = f"http://127.0.0.1:{port}"
    live.info(f"run {prepared.run_id}: metering proxy at {url} (pid {proc.pid}); "
              f"{prepared.decision.model or 'any model'}, rule {prepared.decision.rule!r}")
    decision = prepared.decision
    try:
        # The agent runs in a later step: its generated configuration (the codex preset's CODEX_HOME)
        # lives next to the state file until `stop` removes it.
        extra = preset_environment(preset, dict(os.environ if environ is None else environ), proxy_url=url,
                                   token=token, model=decision.model, max_turns=decision.limits.max_turns,
                                   allowed_models=decision.enforcement.allowed_models,
                                   scratch=agent_dir(str(state)))
    except BaseException:
        stop(str(state), stop_key=key.encode())
        raise
    return Started(str(state), prepared.run_id, decision, url, token, preset_env=extra, stop_key=key.encode())


def _wait_ready(state: Path, proc: subprocess.Popen[bytes], timeout_s: float, key: StopKey) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ProviderError(f"the metering proxy exited during start-up (code {proc.returncode}); "
                                f"see {state.with_suffix('.log')}")
        with contextlib.suppress(OSError, json.JSONDecodeError):
            data = json.loads(state.read_text())
            port = data.get("port") if key.verify(data) else None  # the proxy signs what it adds
            if port:
                return int(port)
        time.sleep(0.05)
    proc.kill()
    raise ProviderError(f"the metering proxy did not start within {timeout_s:.0f}s; see {state.with_suffix('.log')}")


def serve(state_path: str, quiet: bool = False, key: StopKey | None = None) -> int:
    """Body of `ci-guard proxy`: serve until SIGTERM, then settle the run and write its summary.

    ``key`` (from `start`, through stdin): the state file must carry its MAC; what the proxy adds
    to the state, the summary and the outcome it reads are authenticated with it.
    """
    from ci_guard.meter import lifecycle, loop
    from ci_guard.meter.caps import CapGuard
    from ci_guard.meter.hardening import make_undumpable
    from ci_guard.meter.live_log import LiveLog
    from ci_guard.meter.pricer import CatalogPricer
    from ci_guard.meter.recorder import open_recorder
    from ci_guard.meter.session import MeterSession
    from ci_guard.meter.status import FinalStatus, final_status
    from ci_guard.meter.upstreams import upstreams_from_env
    from ci_guard.policy.decide import load_policy
    from ci_guard.policy.decision import Decision

    make_undumpable()
    state_file = Path(state_path)
    data = read_state(state_path)
    if key is not None:
        register(key.encode())
        if not key.verify(data) or data.get("run_id") != key.run_id:
            raise InvalidInputError(f"{state_path}: the state file was changed after `ci-guard start` wrote it "
                                    "(its MAC does not verify with the run's stop key)")
    register(data["token"])
    decision = Decision.model_validate(data["decision"])
    policy = load_policy(data["policy_path"])
    url = ledger_for_state(data, os.environ.get(LEDGER_ENV))
    recorder = open_recorder(url, lifecycle.spill_path(data["run_id"]))  # replayed by the next run
    session = MeterSession(
        run_id=data["run_id"], token=data["token"], decision=decision,
        guard=CapGuard(decision.limits, on_cost_cap=decision.enforcement.on_cost_cap),
        pricer=CatalogPricer.from_policy(policy, data["policy_path"], decision), recorder=recorder,
        live=LiveLog(quiet=quiet),
    )
    ups = upstreams_from_env(dict(os.environ), data["upstreams"]["anthropic"], data["upstreams"]["openai"])
    loop.run(_serve_async(session, ups, state_file, data, key))
    # The agent of start/stop mode is not our child: no exit code or signal to read. `stop` passes on
    # what the workflow knows (--agent-exit-code / --agent-outcome); without it, a run without a
    # metered call, or whose every call the provider refused (401/403), is still told apart.
    outcome = read_outcome(state_file, key)
    final = final_status(stopped=session.guard.stopped, exit_code=outcome.get("exit_code") or 0,
                         forwarded_signal=None, calls=session.calls)
    final = apply_outcome(final, outcome, stopped=session.guard.stopped)
    if session.guard.stop_reason == "ledger_error":  # infrastructure, not a cap
        final = FinalStatus("error", "ledger_error", session.guard.stop_detail)
    summary = session.summary(status=final.status, agent_exit_code=outcome.get("exit_code"))
    if final.status != "stopped":
        summary = summary.model_copy(update={"stop_reason": final.stop_reason, "stop_detail": final.detail})
    if final.status in ("failed", "no_calls"):
        session.live.warn(final.detail or final.status)
    prepared = lifecycle.PreparedRun(session.run_id, decision, url, recorder=recorder, policy=policy)
    lifecycle.finish_run(prepared, summary)
    lifecycle.write_summary(summary, data["summary_path"])
    if key is not None:  # `stop` takes the summary only with a MAC made with the run's key
        written = Path(data["summary_path"]).read_bytes()
        write_text_atomic(summary_mac_path(data["summary_path"]), key.mac(written) + "\n", mode=0o600)
    return 0


async def _serve_async(session: MeterSession, ups: Upstreams, state_file: Path, data: dict[str, Any],
                       key: StopKey | None) -> None:
    import asyncio

    from ci_guard.meter import owners
    from ci_guard.meter.proxy import MeterProxy

    session.watch_ledger(asyncio.get_running_loop())
    if data.get("ledger_url"):
        owners.claim(session.recorder, session.run_id)  # the proxy owns the run from now on
    proxy = MeterProxy(session, ups)
    await proxy.start()
    data.update(port=proxy.port, pid=os.getpid(), pid_start=process_start_time(os.getpid()))
    _write_json_atomic(state_file, key.sign(data) if key is not None else data)
    done = asyncio.Event()
    event_loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        event_loop.add_signal_handler(sig, done.set)
    await done.wait()
    await proxy.close()


def _public_url(url: str | None) -> str | None:
    from ci_guard.ledger.urls import redact_url

    if not url:
        return None
    if url.lower().startswith("sqlite:"):
        return url.split("?", 1)[0]  # a path, nothing secret (its query is ignored by the backend)
    return redact_url(url)


def ledger_for_state(data: dict[str, Any], full_url: str | None) -> str | None:
    """The ledger of a started run: ``full_url`` (from the caller's own environment) when it is the
    one the state file names without its password, else the state's URL (which then has none)."""
    public = data.get("ledger_url")
    if not public:
        return None
    if full_url and _public_url(full_url) == public:
        return full_url
    if "***" in public or "%2A%2A%2A" in public:
        raise InvalidInputError(f"the ledger of run {data.get('run_id')} needs its password: give this command "
                                f"the same --ledger / {LEDGER_ENV} as `ci-guard start` ({public})")
    return public


AGENT_OUTCOMES = ("success", "failure", "cancelled")


def outcome_path(state_file: Path) -> Path:
    return state_file.resolve().with_suffix(".outcome.json")


def read_outcome(state_file: Path, key: StopKey | None = None) -> dict[str, Any]:
    """What `stop` was told about the agent's step: ``{"exit_code": int|None, "outcome": str|None}``.

    With the run's key, only an outcome `stop` signed with it counts: the agent can write the file.
    """
    try:
        data = json.loads(outcome_path(state_file).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or (key is not None and not key.verify(data)):
        return {}
    code = data.get("exit_code")
    outcome = data.get("outcome")
    return {"exit_code": code if isinstance(code, int) and not isinstance(code, bool) and 0 <= code < 256 else None,
            "outcome": outcome if outcome in AGENT_OUTCOMES else None}


def apply_outcome(final: FinalStatus, outcome: dict[str, Any], *, stopped: bool) -> FinalStatus:
    """A cap's stop stays a stop; a cancelled or failed step says so when no exit code told already."""
    from ci_guard.meter.status import FinalStatus as Final  # at run time only: keeps `stop` light

    if stopped or final.status in ("failed", "error"):
        return final
    if outcome.get("outcome") == "cancelled":
        return Final("cancelled", "step_cancelled", "cancelled: the workflow cancelled the agent's step")
    if outcome.get("outcome") == "failure" and outcome.get("exit_code") is None:
        return Final("failed", "agent_exit", "failed: the agent's step failed (outcome failure, exit code "
                                             "not given)")
    return final


def stop(state_path: str, timeout_s: float = 30.0, ledger_url: str | None = None, *,
         agent_exit_code: int | None = None, agent_outcome: str | None = None, stop_key: str | None = None,
         problems: list[str] | None = None) -> RunSummary:
    """Stop the run's proxy, and return its summary.

    With ``stop_key`` nothing the agent could write is trusted: the proxy signalled is the process
    the key names (while its start time matches), and a state file or summary whose MAC does not
    verify is not used; each such finding is appended to ``problems`` (the command exits 2).
    Without it, the state file is checked against /proc and the ledger as well as can be.
    """
    from ci_guard.meter.live_log import LiveLog

    problems = [] if problems is None else problems
    key = StopKey.decode(stop_key) if stop_key else None
    full_url = ledger_url or os.environ.get(LEDGER_ENV)
    if key is None:
        data = read_state(state_path)
    else:
        register(key.encode())
        data = _verified_state(state_path, key, full_url, problems)
        if data.get("mac") and isinstance(data.get("state_path"), str):
            # Where start put this run's files, from a state the key verified, wherever the agent
            # copied it to (CI_GUARD_STATE is in the environment the agent's step can extend).
            state_path = data["state_path"]
    if data.get("refused") and isinstance(data.get("summary"), dict):
        return RunSummary.model_validate(data["summary"])
    # The preset's generated configuration. Its place comes from the state file's own path, never from
    # the file's contents (the agent can write those); rmtree refuses a symlink put in its place.
    shutil.rmtree(agent_dir(state_path), ignore_errors=True)
    if agent_exit_code is not None or agent_outcome is not None:
        # Read by the proxy after SIGTERM, before it classifies and settles the run; signed, as the
        # agent can write this file too (the proxy ignores an unsigned one when it has a key).
        outcome = {"exit_code": agent_exit_code, "outcome": agent_outcome}
        _write_json_atomic(outcome_path(Path(state_path)), key.sign(outcome) if key else outcome)
        if key is None:
            LiveLog().info("warning: --agent-exit-code / --agent-outcome count only with the stop key (the "
                           "proxy ignores an outcome it cannot authenticate): pass CI_GUARD_STOP_KEY")
    if key is not None:
        pids = _keyed_proxy(key)
    else:
        LiveLog().info("warning: no stop key (--stop-key / CI_GUARD_STOP_KEY): the state file and the run "
                       "summary cannot be authenticated; checking them against /proc and the ledger instead")
        pids = _proxies_to_stop(data.get("pid"), Path(state_path))
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    summary_path = summary_path_of(state_path)  # never a path an unverified state names
    data["summary_path"] = str(summary_path)
    if not summary_path.exists():
        return _recover(data, full_url)
    try:
        raw = summary_path.read_bytes()
        summary = RunSummary.model_validate_json(raw)
    except (OSError, ValueError):
        return _recover(data, full_url)
    if key is not None:
        if _summary_mac_ok(key, summary_path, raw) and summary.run_id == key.run_id:
            return summary
        problems.append(f"{summary_path}: the run summary was changed after the metering proxy wrote it (its MAC "
                        "does not verify with the stop key); reporting the ledger's account of the run")
        return _recover(data, full_url)  # the ledger's account (closing the run if still open)
    return _checked_against_ledger(summary, data, full_url)


def _verified_state(state_path: str, key: StopKey, full_url: str | None, problems: list[str]) -> dict[str, Any]:
    """The state file when its MAC verifies; else only what the key itself says (the run id)."""
    try:
        data = read_state(state_path)
    except InvalidInputError as exc:
        data, why = None, exc.render()
    else:
        why = f"{state_path}: the state file was changed after `ci-guard start` wrote it (its MAC does not verify " \
              "with the stop key); not using it"
    if isinstance(data, dict) and key.verify(data) and data.get("run_id") == key.run_id:
        return data
    problems.append(why)
    # What stop still needs: the run (from the key) and the ledger (its own --ledger / env, else the
    # default one, as start had it).
    from ci_guard.ledger import ledger_url

    return {"run_id": key.run_id, "ledger_url": _public_url(ledger_url(full_url)), "log_path": str(
        Path(state_path).resolve().with_suffix(".log"))}


def _summary_mac_ok(key: StopKey, summary_path: Path, raw: bytes) -> bool:
    try:
        mac = summary_mac_path(summary_path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return False
    return key.verify_bytes(raw, mac)


def _keyed_proxy(key: StopKey) -> list[int]:
    """The proxy the stop key names, if that process still runs: same pid, same start time."""
    from ci_guard.meter.live_log import LiveLog

    if key.pid is None:
        return []
    now = process_start_time(key.pid)
    if key.start_time is None or now is None:
        # No /proc (not Linux), or the process is gone: signal only a pid that still exists.
        return [key.pid] if key.start_time is None and _alive(key.pid) else []
    if now != key.start_time:
        LiveLog().info(f"warning: pid {key.pid} is no longer this run's metering proxy (it started at another "
                       "time: the pid was reused); not signalling it")
        return []
    return [key.pid]


def _proxy_pids(state_path: Path) -> list[int]:
    """Processes whose command line is `... ci_guard proxy --state <state_path>` (Linux /proc)."""
    target = str(state_path.resolve())
    found = []
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return found
    for entry in entries:
        try:
            args = Path(f"/proc/{entry}/cmdline").read_bytes().decode("utf-8", "replace").split("\0")
        except OSError:
            continue
        if "proxy" in args and "--state" in args and any(a == "ci_guard" or a.endswith("ci-guard") for a in args):
            i = args.index("--state")
            if i + 1 < len(args) and str(Path(args[i + 1]).resolve()) == target:
                found.append(int(entry))
    return found


def _proxies_to_stop(pid: Any, state_path: Path) -> list[int]:
    from ci_guard.meter.live_log import LiveLog

    if not os.path.isdir("/proc"):  # no way to check: trust the state file, as before
        return [int(pid)] if isinstance(pid, int) and pid > 1 else []
    real = _proxy_pids(state_path)
    if isinstance(pid, int) and pid in real:
        return [pid]
    if pid:
        LiveLog().info(f"warning: the state file names pid {pid}, which is not this run's metering proxy; "
                       "not signalling it (was the state file changed?)")
    return [p for p in real if p != os.getpid()]


def _checked_against_ledger(summary: RunSummary, data: dict[str, Any], full_url: str | None) -> RunSummary:
    """The ledger's account of the run when it differs from the summary file (which the agent can write)."""
    from ci_guard.ledger import open_ledger
    from ci_guard.meter import lifecycle
    from ci_guard.meter.live_log import LiveLog
    from ci_guard.policy.decision import Decision
    from ci_guard.report.history import run_summary

    try:
        url = ledger_for_state(data, full_url)
        if not url:
            return summary
        store = open_ledger(url)
        try:
            run = store.get_run(data["run_id"])
            calls = store.list_calls(data["run_id"], limit=1_000_000) if run is not None else []
        finally:
            store.close()
    except CiGuardError:
        return summary  # the ledger cannot say: the proxy's own summary it is
    if run is None or (summary.run_id == run.run_id and summary.cost_usd == run.cost_usd
                       and len(summary.calls) == len(calls)):
        return summary
    LiveLog().info(f"warning: the run summary file disagrees with the ledger for run {run.run_id}; "
                   "reporting the ledger's figures")
    rebuilt = run_summary(run, calls)
    rebuilt.decision = Decision.model_validate(data["decision"]).as_json()
    lifecycle.write_summary(rebuilt, str(Path(data["summary_path"])))
    return rebuilt


def _recover(data: dict[str, Any], full_url: str | None) -> RunSummary:
    """The proxy died without settling (OOM, SIGKILL): rebuild the run from the ledger and settle it.

    Every call it metered is already in the ledger, so nothing is lost; the run is marked as an
    error and its reservation released.
    """
    from ci_guard.ledger import open_ledger
    from ci_guard.meter import lifecycle
    from ci_guard.meter.inflight import charge_inflight
    from ci_guard.policy.decision import Decision
    from ci_guard.report.history import run_summary

    url = ledger_for_state(data, full_url)
    if not url:
        raise CiGuardError(f"the metering proxy of run {data['run_id']} died without a summary and the run "
                           f"was not recorded in a ledger; see {data.get('log_path')}")
    store = open_ledger(url)
    try:
        now = datetime.now(UTC)
        run = store.get_run(data["run_id"])
        ended_here = run is not None and run.status == "running"
        if ended_here:  # a run the proxy did finish keeps its status (its summary file may be gone)
            # the calls the proxy had in flight when it died: charged at their worst case (inflight.py)
            charge_inflight(store, lifecycle.journal_path(data["run_id"]), data["run_id"])
            store.finish_run(data["run_id"], "error", None, now)
        store.settle(data["run_id"])
        run = store.get_run(data["run_id"])
        calls = store.list_calls(data["run_id"], limit=1_000_000)
    finally:
        store.close()
    if run is None:
        raise CiGuardError(f"run {data['run_id']} is not in the ledger {url}")
    summary = run_summary(run, calls)
    if isinstance(data.get("decision"), dict):
        summary.decision = Decision.model_validate(data["decision"]).as_json()
    if ended_here:
        summary.stop_detail = f"the metering proxy ended unexpectedly; see {data.get('log_path')}"
    lifecycle.write_summary(summary, data["summary_path"])
    return summary
