"""Real Flet sessions with no Flutter client: what the Flet tests run against.

A :class:`OfflineConnection` is a real ``flet.messaging.connection.Connection``
whose ``send_message`` msgpack-encodes each message exactly as Flet's socket
server does (encoding is what refreshes Flet's diff snapshots; without it a
later ``page.add()`` sends nothing) and records what the client would receive.
:class:`OfflineSession` drives a real ``flet.Session`` the way the client
does: the handshake (``get_page_patch``), ``main`` run by Flet's own session
start-up code in its own task, events dispatched in fresh tasks, typing as a
property patch followed by a ``change`` event, and ``close``.

Every ``PATCH_CONTROL`` message is decoded into :class:`PropSet` records
(which control, which property, which value), so tests assert what the client
was told: ``session.sent(label)`` is the list of values sent for
``label.value``.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import importlib.util
import itertools
import pathlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import flet as ft
import flet.app as flet_app_module
import msgpack
from flet.controls.base_control import BaseControl
from flet.controls.context import _context_page
from flet.messaging.connection import Connection
from flet.messaging.protocol import MessageAction, configure_encode_object_for_msgpack
from flet.messaging.session import Session
from flet.pubsub.pubsub_hub import PubSubHub

import statekit.flet as skf

__all__ = [
    "OfflineConnection",
    "OfflineSession",
    "PropSet",
    "collect",
    "load_file",
    "open_session",
    "settle",
]

_encode = configure_encode_object_for_msgpack(BaseControl)
# Flet's own "run main for a new session" function (what its servers call).
_on_session_created = getattr(flet_app_module, "__get_on_session_created")


@dataclass(frozen=True)
class PropSet:
    """One property value the client was told: control id, property, value."""

    control_id: int
    prop: str
    value: Any


class OfflineConnection(Connection):
    """A Flet connection that encodes like the real one and records what it sends."""

    def __init__(self, loop: asyncio.AbstractEventLoop, hub: PubSubHub | None = None) -> None:
        super().__init__()
        self.loop = loop
        self.pubsubhub = hub if hub is not None else PubSubHub(loop=loop)
        self.page_name = "offline"
        self.messages: list[list[Any]] = []  # decoded [action, body]
        self.props: list[PropSet] = []
        self.session: Session | None = None

    def send_message(self, message: Any) -> None:
        data = msgpack.packb([message.action, message.body], default=_encode)
        action, body = msgpack.unpackb(data, strict_map_key=False)
        self.messages.append([action, body])
        if action == MessageAction.PATCH_CONTROL.value and self.session is not None:
            self.props.extend(_decode_patch(self.session, body))

    def dispose(self) -> None:
        pass


def _decode_patch(session: Session, body: dict[str, Any]) -> list[PropSet]:
    """Turn a PATCH_CONTROL body into PropSets by walking the live control tree."""
    root = session.index.get(body["id"])
    patch = body["patch"]
    paths: dict[int, list[Any]] = {}

    def walk(node: list[Any], path: list[Any]) -> None:
        paths[node[0]] = path
        if len(node) > 1:
            for key, child in node[1].items():
                walk(child, [*path, key])

    walk(patch[0], [])
    found: list[PropSet] = []
    for op in patch[1:]:
        kind, node, key = op[0], op[1], op[2]
        if kind not in (0, 1):  # replace, add (remove and move carry no values)
            continue
        value = op[3]
        target: Any = root
        for part in paths.get(node, []):
            target = target[part] if isinstance(part, int) else getattr(target, part, None)
            if target is None:
                break
        if isinstance(target, BaseControl) and isinstance(key, str):
            found.append(PropSet(target._i, key, value))
        _collect_added(value, found)
    return found


def _collect_added(value: Any, found: list[PropSet]) -> None:
    """Controls sent whole (added to the page) carry their properties inline."""
    if isinstance(value, dict):
        if "_i" in value:
            for key, item in value.items():
                if not key.startswith("_"):
                    found.append(PropSet(value["_i"], key, item))
        for item in value.values():
            _collect_added(item, found)
    elif isinstance(value, list):
        for item in value:
            _collect_added(item, found)


async def settle(rounds: int = 10) -> None:
    """Let queued callbacks, tasks and Flet's update scheduler run."""
    for _ in range(rounds):
        await asyncio.sleep(0)


class OfflineSession:
    """A real ``flet.Session`` driven like a client would (see the module docstring)."""

    def __init__(self, conn: OfflineConnection) -> None:
        self.conn = conn
        self.session = Session(conn)
        conn.session = self.session
        self.main_task: asyncio.Task[Any] | None = None
        # The handshake, in a context of its own (the test's stays clean).
        contextvars.copy_context().run(self._handshake)

    def _handshake(self) -> None:
        _context_page.set(self.session.page)
        msgpack.packb(self.session.get_page_patch(), default=_encode)

    @property
    def page(self) -> ft.Page:
        return self.session.page

    @property
    def id(self) -> str:
        return self.session.id

    async def start(self, main: Callable[[ft.Page], Any]) -> OfflineSession:
        """Run ``main`` as Flet runs it for a new session (its own task)."""
        self.main_task = asyncio.create_task(_on_session_created(main)(self.session))
        await self.main_task
        await settle()
        return self

    # ------------------------------------------------------------ reading

    def sent(self, control: Any, prop: str = "value") -> list[Any]:
        """Every value sent to the client for ``control.<prop>``, in order."""
        cid = control._i
        return [p.value for p in self.conn.props if p.control_id == cid and p.prop == prop]

    def last(self, control: Any, prop: str = "value") -> Any:
        values = self.sent(control, prop)
        assert values, f"nothing was sent for {type(control).__name__}({control._i}).{prop}"
        return values[-1]

    def patches(self) -> list[dict[str, Any]]:
        """The bodies of every PATCH_CONTROL message so far."""
        return [b for a, b in self.conn.messages if a == MessageAction.PATCH_CONTROL.value]

    def clear(self) -> None:
        self.conn.messages.clear()
        self.conn.props.clear()

    def errors(self) -> list[str]:
        """SESSION_CRASHED messages (an unhandled error in main, a handler or an effect)."""
        crashed = MessageAction.SESSION_CRASHED.value
        return [str(body) for action, body in self.conn.messages if action == crashed]

    # ------------------------------------------------------------ acting

    def run(self, fn: Callable[[], Any]) -> Any:
        """Call ``fn`` as code of this session (its page and statekit scope current)."""
        attached = skf.lookup(self.session.page)
        if attached is not None:
            return attached.run(fn)
        ctx = contextvars.copy_context()

        def inside() -> Any:
            _context_page.set(self.session.page)
            return fn()

        return ctx.run(inside)

    async def event(self, control: Any, name: str, data: Any = None) -> None:
        """Dispatch an event the way the connection does: in a fresh task."""
        await asyncio.create_task(self.session.dispatch_event(control._i, name, data))
        await settle()

    async def click(self, control: Any) -> None:
        await self.event(control, "click")

    async def type(self, field: Any, text: str) -> None:
        """The user typed: the client patches ``value``, then sends ``change``."""
        self.session.apply_patch(field._i, {"value": text})
        await self.event(field, "change", text)

    async def close(self) -> None:
        """Close the session as Flet does when it expires (``page.on_close`` runs)."""
        self.session.close()
        await settle()


async def open_session(
    main: Callable[[ft.Page], Any] | None = None, *, hub: PubSubHub | None = None
) -> OfflineSession:
    """A new offline session; ``main`` (if given) has run when this returns."""
    conn = OfflineConnection(asyncio.get_running_loop(), hub)
    session = OfflineSession(conn)
    if main is not None:
        await session.start(main)
    return session


def load_file(path: pathlib.Path) -> ModuleType:
    """Import a Python file afresh under a unique name (its module code runs again)."""
    spec = importlib.util.spec_from_file_location(f"loaded_{path.stem}_{next(_loads)}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as an import does (pydantic resolves annotations there)
    spec.loader.exec_module(module)
    return module


_loads = itertools.count()


def collect() -> None:
    """Full garbage collection (for leak checks)."""
    for _ in range(3):
        gc.collect()
