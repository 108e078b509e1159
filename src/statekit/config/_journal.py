"""The durable store behind ``ConfigManager(path=...)``: an append-only journal.

One file, one record per line::

    <crc32 of the JSON, 8 hex digits> <JSON object>\\n

The first record (``"kind": "base"``) holds a whole configuration; each later
one (``"kind": "delta"``) the keys one version set and removed. A commit is
acknowledged only after its record is written with a single ``write`` and
``fdatasync``'d, so every acknowledged version survives a crash of the
process or the machine.

Recovery reads records until the end. A bad record (short, unterminated,
wrong checksum, unparsable, out of sequence) with nothing valid after it is
a write that was torn by a crash: it was never acknowledged, so it is cut
off and the journal goes on from the last good record. A bad record *followed*
by good ones is not a torn write but damage, and opening refuses to guess.

Compaction (:meth:`Journal.rewrite`) is the atomic snapshot: the new journal
is written to a temporary file, synced, and renamed over the old one, so a
crash leaves either the old journal or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import json
import os
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..exceptions import StatekitError

__all__ = ["FORMAT", "Journal", "encode", "read_records"]

FORMAT = "statekit.config-journal/1"

try:  # POSIX: one writer per journal, enforced by the kernel
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

_sync = getattr(os, "fdatasync", os.fsync)  # data only: the size is part of it on Linux


def encode(record: Mapping[str, Any]) -> bytes:
    """One record as a checksummed line (ASCII JSON: never a raw newline inside)."""
    body = json.dumps(record, separators=(",", ":"), sort_keys=True, allow_nan=False).encode()
    return b"%08x %s\n" % (zlib.crc32(body), body)


def _decode(line: bytes) -> dict[str, Any] | None:
    """The record in ``line`` (newline included), or ``None`` if it is bad."""
    if len(line) < 11 or line[8:9] != b" " or not line.endswith(b"\n"):
        return None
    body = line[9:-1]
    try:
        crc = int(line[:8], 16)
    except ValueError:
        return None
    if zlib.crc32(body) != crc:
        return None
    try:
        record = json.loads(body)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def read_records(data: bytes, where: str = "journal") -> tuple[list[dict[str, Any]], int]:
    """Parse a journal's bytes: the good records and the length they span.

    Raises :class:`~statekit.StatekitError` for damage before the last good record.
    """
    records: list[dict[str, Any]] = []
    good_end = 0
    offset = 0
    bad_at: int | None = None
    while offset < len(data):
        end = data.find(b"\n", offset)
        end = len(data) if end < 0 else end + 1
        record = _decode(data[offset:end])
        if record is not None and bad_at is None and _in_sequence(records, record):
            records.append(record)
            good_end = end
        elif record is not None and bad_at is not None:
            raise StatekitError(
                f"{where}: damaged record at byte {bad_at}, followed by valid records; "
                "not a torn write, refusing to guess (restore from a backup)"
            )
        elif bad_at is None:
            bad_at = offset
        offset = end
    return records, good_end


def _in_sequence(records: list[dict[str, Any]], record: dict[str, Any]) -> bool:
    if not records:
        return record.get("kind") == "base" and record.get("format") == FORMAT
    return record.get("kind") == "delta" and record.get("version") == records[-1]["version"] + 1


class Journal:
    """An open journal file: read it once, then append records durably."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self.size = 0

    def open(self) -> list[dict[str, Any]]:
        """Open (creating if needed), lock, recover; return the good records."""
        created = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise StatekitError(
                        f"{self.path}: journal is in use by another ConfigManager or process"
                    ) from None
            data = _read_all(fd)
            records, good_end = read_records(data, str(self.path))
            if good_end < len(data):
                # A torn last record: it was never acknowledged; cut it off so
                # the next append starts on a clean line.
                os.ftruncate(fd, good_end)
                _sync(fd)
            if created:
                _sync_dir(self.path.parent)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self.size = good_end
        return records

    def append(self, record: Mapping[str, Any]) -> None:
        """Write one record and wait until it is on disk."""
        self.append_encoded(encode(record))

    def append_encoded(self, line: bytes) -> None:
        """Write one encoded record and wait until it is on disk."""
        fd = self._require()
        try:
            written = os.write(fd, line)
            if written != len(line):  # a short write (disk full): treat as failed
                raise OSError(f"short write to {self.path}: {written} of {len(line)} bytes")
            _sync(fd)
        except BaseException:
            # Leave no partial record behind for the next append to follow.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, self.size)
            raise
        self.size += len(line)

    def rewrite(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Atomically replace the journal by ``records`` (compaction)."""
        fd = self._require()
        tmp = self.path.with_name(self.path.name + ".tmp")
        data = b"".join(encode(r) for r in records)
        tfd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(tfd, view) :]
            os.fsync(tfd)
        finally:
            os.close(tfd)
        new_fd = os.open(tmp, os.O_RDWR | os.O_APPEND)
        if fcntl is not None:
            fcntl.flock(new_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.replace(tmp, self.path)
        _sync_dir(self.path.parent)
        self._fd = new_fd
        self.size = len(data)
        os.close(fd)

    def close(self) -> None:
        """Close the file (and release the lock)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._fd is None

    def _require(self) -> int:
        if self._fd is None:
            raise StatekitError(f"{self.path}: the journal is closed")
        return self._fd


def _read_all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _sync_dir(directory: Path) -> None:
    # A new or renamed file is durable only once its directory entry is.
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(dfd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(dfd)
