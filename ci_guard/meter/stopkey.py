"""The stop key of `ci-guard start` / `stop`: what lets `stop` trust nothing the agent can write.

The agent of start/stop mode runs as the same user as ci-guard, between the two steps, and can
rewrite every file ci-guard leaves on disk (the state file, the run summary, the outcome file).
So `start` makes a random key and hands it to:

* the detached proxy, through a pipe (its stdin): never argv or the environment, which
  ``/proc/<pid>/cmdline`` and ``environ`` would show;
* the CI step only: a masked step output on GitHub (``::add-mask::``), a shell variable that is
  not exported with ``--format shell``. Never ``$GITHUB_ENV``, the state file or a log line.

The stop key also names the proxy it belongs to: the run id, the proxy's pid and that process's
start time (field 22 of ``/proc/<pid>/stat``), so `stop` signals that process only while it is
the same one (a pid recycled after the proxy died is never signalled), whatever the state file
says. Files are authenticated with HMAC-SHA256 under the key: the state (by ``start`` and the
proxy), the run summary (by the proxy), the agent's outcome (by ``stop``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any

from ci_guard.errors import InvalidInputError

PREFIX = "cig_stop_"  # shaped like the run token, so ci_guard.secrets redacts it even unregistered
ENV = "CI_GUARD_STOP_KEY"
MAC_FIELD = "mac"


@dataclass(frozen=True)
class StopKey:
    run_id: str
    pid: int | None  # the detached proxy; None until it has started
    start_time: str | None  # its start time in clock ticks since boot (Linux), None when unknown
    key: bytes

    @classmethod
    def new(cls, run_id: str) -> StopKey:
        return cls(run_id, None, None, secrets.token_bytes(32))

    def for_process(self, pid: int, start_time: str | None) -> StopKey:
        return StopKey(self.run_id, pid, start_time, self.key)

    def encode(self) -> str:
        payload = json.dumps({"r": self.run_id, "p": self.pid, "s": self.start_time, "k": self.key.hex()},
                             separators=(",", ":")).encode()
        return PREFIX + base64.urlsafe_b64encode(payload).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> StopKey:
        bad = InvalidInputError(f"the stop key is not one `ci-guard start` gave (expected {PREFIX}...; pass "
                                f"the start step's stop-key output unchanged)")
        text = text.strip()
        if not text.startswith(PREFIX):
            raise bad
        body = text[len(PREFIX):]
        try:
            data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            key = bytes.fromhex(data["k"])
            pid, start = data["p"], data["s"]
            if (not isinstance(data["r"], str) or len(key) < 16 or not (pid is None or type(pid) is int)
                    or not (start is None or isinstance(start, str))):
                raise ValueError("wrong types")
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise bad from exc
        return cls(data["r"], pid, start, key)

    # -- authenticating files --------------------------------------------------------------------
    def mac(self, payload: bytes) -> str:
        return hmac.new(self.key, payload, hashlib.sha256).hexdigest()

    def sign(self, data: dict[str, Any]) -> dict[str, Any]:
        """``data`` with its MAC (over its canonical JSON without the MAC field)."""
        unsigned = {k: v for k, v in data.items() if k != MAC_FIELD}
        return {**unsigned, MAC_FIELD: self.mac(_canonical(unsigned))}

    def verify(self, data: Any) -> bool:
        if not isinstance(data, dict) or not isinstance(data.get(MAC_FIELD), str):
            return False
        unsigned = {k: v for k, v in data.items() if k != MAC_FIELD}
        return hmac.compare_digest(data[MAC_FIELD], self.mac(_canonical(unsigned)))

    def verify_bytes(self, payload: bytes, mac: str) -> bool:
        return hmac.compare_digest(mac.strip(), self.mac(payload))


def _canonical(data: dict[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str).encode()


__all__ = ["ENV", "PREFIX", "StopKey"]
