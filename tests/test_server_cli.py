"""``statekit serve module:attr`` runs a SyncServer under uvicorn and stops on SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("uvicorn")
pytest.importorskip("httpx")

import httpx

from _uvicorn import free_port

APP = """
import statekit as sk
from statekit.server import SyncServer
counter = sk.Store({"n": 41}, name="counter", writable=["/n"])
server = SyncServer([counter], secret="cli test secret")
"""


def test_serve_runs_the_target_and_stops_with_an_open_stream(tmp_path: Path) -> None:
    (tmp_path / "cliapp.py").write_text(APP)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    cmd = [sys.executable, "-m", "statekit.cli", "serve", "cliapp:server", "--port", str(port)]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                body = httpx.get(url + "/stores/counter", timeout=2).json()
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        assert body["value"] == {"n": 41}
        with httpx.Client(base_url=url, timeout=10) as c, c.stream("GET", "/events?store=counter"):
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=15) == 0  # the open stream did not hold shutdown up
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stdout is not None
    assert "serving cliapp:server" in proc.stdout.read().decode()


def test_serve_refuses_a_bad_target() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "statekit.cli", "serve", "nocolon"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0 and "module:attribute" in out.stderr
