"""Whatever goes wrong before the fork, a run starts cold with a note; whatever a client sends, the
launcher keeps serving the next one."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

from ci_guard.warm.client import identity, process_settings, read_message, send_message
from tests.warm.conftest import CLI, KEY, POLICY, RUN, TIMEOUT, Warm, base_env, ledger_runs


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "policy.yml").write_text(POLICY)
    return tmp_path


def run_ok(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*CLI, *RUN, "--quiet", "--", "sh", "-c", "echo ran"], env=env, cwd=cwd,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ran\n"
    return done


def still_serving(warm: Warm, cwd: Path) -> None:
    """The launcher is the same process and takes the next run warm."""
    assert warm.alive()
    done = run_ok(warm.env(CI_GUARD_LEDGER=f"sqlite:///{cwd / 'ledger.db'}"), cwd)
    assert "note:" not in done.stderr


def raw(warm: Warm) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(20)
    sock.connect(warm.socket)
    return sock


def answer(sock: socket.socket) -> dict[str, object] | None:
    """The launcher's reply, or None when it only closed the connection."""
    try:
        return read_message(sock)
    except ConnectionResetError:
        return None  # it closed with our unread bytes in its buffer
    finally:
        sock.close()


def request(**changes: object) -> dict[str, object]:
    return {**identity(), "argv": ["run", "--", "true"], "cwd": "/", "env": {}, **process_settings(), **changes}


def test_a_missing_socket_starts_cold_with_a_note(workdir: Path):
    ledger = f"sqlite:///{workdir / 'ledger.db'}"
    done = run_ok(base_env(ANTHROPIC_API_KEY=KEY, CI_GUARD_LEDGER=ledger, CI_GUARD_WARM=str(workdir / "no-such")),
                  workdir)
    assert "ci-guard: note: the warm launcher at" in done.stderr and "starting cold" in done.stderr
    assert list(ledger_runs(ledger).values()) == ["no_calls"]  # the run did happen, cold


def test_a_socket_that_is_not_a_launcher_starts_cold(workdir: Path):
    # something listens there, takes the request and closes without a word
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(workdir / "other.sock"))
    listener.listen(1)
    try:
        ledger = f"sqlite:///{workdir / 'ledger.db'}"
        proc = subprocess.Popen([*CLI, *RUN, "--quiet", "--", "sh", "-c", "echo ran"], cwd=workdir,
                                env=base_env(ANTHROPIC_API_KEY=KEY, CI_GUARD_LEDGER=ledger,
                                             CI_GUARD_WARM=str(workdir / "other.sock")),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        listener.settimeout(TIMEOUT)
        conn, _ = listener.accept()
        conn.close()
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        listener.close()
    assert proc.returncode == 0 and out == "ran\n", err
    (note,) = [line for line in err.splitlines() if line.startswith("ci-guard: note: the warm launcher")]
    assert note.endswith("starting cold")  # closed before or after reading the request: either note


def test_a_request_from_another_ci_guard_is_refused_and_the_launcher_serves_on(module_warm: Warm, workdir: Path):
    for field, value in (("version", "0.0.0-elsewhere"), ("package", "/elsewhere/ci_guard"),
                         ("prefix", "/elsewhere/venv"), ("python", "/usr/bin/python2"), ("protocol", 0)):
        sock = raw(module_warm)
        r, w = os.pipe()
        try:
            send_message(sock, request(**{field: value}), [r, w, w])
        finally:
            os.close(r)
            os.close(w)
        reply = answer(sock)
        assert reply is not None and set(reply) == {"refused"}, (field, reply)
        assert "another ci-guard or Python" in str(reply["refused"]) and str(value) in str(reply["refused"])
    still_serving(module_warm, workdir)


def test_a_request_without_descriptors_or_well_typed_fields_is_refused(module_warm: Warm, workdir: Path):
    sock = raw(module_warm)
    send_message(sock, request())  # no fds
    assert answer(sock) == {"refused": "the request did not carry stdin, stdout and stderr"}
    for bad in ({"argv": "run -- true"}, {"argv": ["run", 1]}, {"cwd": None}, {"env": {"A": 1}}, {"env": []},
                {"umask": None}, {"umask": "022"}, {"umask": -1}, {"umask": 0o1000}, {"umask": True}):
        sock = raw(module_warm)
        send_message(sock, request(**bad), [0, 1, 2])
        assert answer(sock) == {"refused": "the request is malformed"}, bad
    still_serving(module_warm, workdir)


@pytest.mark.parametrize("data", [
    b"garbage bytes, not a frame at all\n",
    struct.pack("!I", 0xFFFFFFFF) + b"{}",  # a length far over MAX_REQUEST
    struct.pack("!I", 5) + b"{nope",  # not JSON
    struct.pack("!I", 2) + b"[]",  # JSON, not an object
    struct.pack("!I", 4) + b"\xff\xfe\x00\x01",  # not UTF-8
    b"",  # connects and leaves
], ids=["garbage", "huge-length", "not-json", "not-an-object", "not-utf8", "nothing"])
def test_bytes_that_are_no_request_leave_it_serving(module_warm: Warm, workdir: Path, data: bytes):
    sock = raw(module_warm)
    if data:
        sock.sendall(data)
    sock.shutdown(socket.SHUT_WR)
    assert answer(sock) is None  # closed, no reply, no run
    still_serving(module_warm, workdir)


def test_a_client_gone_inside_its_request_leaves_it_serving(module_warm: Warm, workdir: Path):
    sock = raw(module_warm)
    sock.sendall(struct.pack("!I", 1000) + b'{"protocol": 2')  # then nothing: killed mid-write
    sock.close()
    still_serving(module_warm, workdir)


@pytest.mark.parametrize("partial", [b"", struct.pack("!I", 1000), struct.pack("!I", 1000) + b'{"argv": ['])
def test_a_client_that_stalls_mid_request_holds_up_nobody(module_warm: Warm, workdir: Path, partial: bytes):
    # connected (and maybe half-way through its request), then silent: the next run is taken at once
    stalled = raw(module_warm)
    try:
        if partial:
            stalled.sendall(partial)
        started = time.monotonic()
        still_serving(module_warm, workdir)
        assert time.monotonic() - started < 3.0  # a cold start or a wait on the stalled client is slower
    finally:
        stalled.close()
