"""``statekit demo`` in a subprocess: started, its URL read from its output, stopped by SIGINT."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_URL = re.compile(r"statekit demo: open (http://\S+) \(Ctrl-C to stop\)")


class Demo:
    """A running ``statekit demo``: ``url`` (ends with ``/``), ``lines`` printed so far."""

    def __init__(self, args: list[str], env: dict[str, str] | None, cwd: Path | None) -> None:
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        for name, value in list(full_env.items()):
            if value == "":  # "" unsets: a test may need STATEKIT_SECRET absent
                del full_env[name]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "statekit.cli", "demo", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=full_env,
            cwd=cwd,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.url = ""

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern: re.Pattern[str], timeout: float = 20.0) -> re.Match[str] | None:
        """The first new line matching ``pattern`` (``None`` when the process ended first)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no line matching {pattern.pattern!r}; saw {self.lines}")
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                return None
            self.lines.append(line)
            found = pattern.search(line)
            if found:
                return found

    def started(self) -> Demo:
        found = self.wait_for(_URL)
        if found is None:
            raise RuntimeError(f"statekit demo exited with {self.proc.wait(5)}: {self.lines}")
        self.url = found.group(1)
        return self

    def output(self, timeout: float = 10.0) -> str:
        """Everything printed, once the process has ended."""
        self.proc.wait(timeout)
        while True:
            try:
                line = self._queue.get(timeout=timeout)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
        return "\n".join(self.lines)

    def interrupt(self, timeout: float = 10.0) -> float:
        """Send SIGINT (Ctrl-C); the seconds it took to exit (raises if it did not)."""
        start = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout)
        return time.monotonic() - start

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@contextmanager
def demo(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Iterator[Demo]:
    """Run ``statekit demo ARGS`` until the block ends (SIGINT, then kill if need be)."""
    running = Demo(list(args), env, cwd)
    try:
        yield running.started()
    finally:
        if running.proc.poll() is None:
            try:
                running.interrupt()
            except subprocess.TimeoutExpired:
                running.kill()
