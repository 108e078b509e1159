"""Memory: nothing stays behind after unsubscribing, stopping or disposing.

Proved three ways: ``weakref`` to the objects handed out (effects, scopes,
callbacks), a census of live statekit objects in ``gc.get_objects()`` (engine
nodes and links included, found by their module, not by private names), and
``tracemalloc`` growth below 1 MB over the whole loop.
"""

from __future__ import annotations

import gc
import tracemalloc
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import statekit as sk

MB = 1024 * 1024


def statekit_objects() -> int:
    """How many objects of statekit-defined classes are alive."""
    gc.collect()
    return sum(
        1
        for o in gc.get_objects()
        # str(): some C extension metatypes expose __module__ as a descriptor
        if str(getattr(type(o), "__module__", "")).startswith("statekit")
    )


@contextmanager
def measure() -> Iterator[dict[str, int]]:
    """Traced memory growth and statekit object growth over a block."""
    out: dict[str, int] = {}
    gc.collect()
    objects_before = statekit_objects()
    tracemalloc.start()
    try:
        gc.collect()
        start, _ = tracemalloc.get_traced_memory()
        yield out
        gc.collect()
        end, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    out["bytes"] = end - start
    out["objects"] = statekit_objects() - objects_before


class Callback:
    """A weak-referenceable listener."""

    def __init__(self, sink: list[Any]) -> None:
        self.sink = sink

    def __call__(self, value: Any) -> None:
        self.sink.append(value)


# --------------------------------------------------------------------------
# listeners


@pytest.mark.slow
def test_100k_subscribe_unsubscribe_cycles_leave_nothing() -> None:
    a = sk.atom(0, name="a")
    double = sk.computed(lambda: a.value * 2, name="double")
    sink: list[Any] = []
    for _ in range(1_000):  # warm up caches and free lists
        a.subscribe(Callback(sink))()
        double.subscribe(Callback(sink))()
    refs: list[weakref.ref[Callback]] = []
    with measure() as grown:
        for i in range(100_000):
            cb = Callback(sink)
            target = a if i % 2 else double
            off = target.subscribe(cb)
            if i % 1_000 == 0:
                refs.append(weakref.ref(cb))
                a.value = i + 1  # deliver once now and then
            off()
            del cb, off
    assert grown["objects"] <= 2, f"{grown['objects']} statekit objects left behind"
    assert grown["bytes"] < MB, f"memory grew by {grown['bytes']} bytes"
    gc.collect()
    assert all(r() is None for r in refs), "an unsubscribed listener is still referenced"
    # unsubscribed listeners were never called after off()
    sink.clear()
    a.value = -1
    assert sink == []


def test_unsubscribed_listener_is_not_retained() -> None:
    a = sk.atom(0, name="a")
    sink: list[Any] = []
    cb = Callback(sink)
    ref = weakref.ref(cb)
    off = a.subscribe(cb)
    a.value = 1
    assert sink == [1]
    off()
    del cb
    gc.collect()
    assert ref() is None
    a.value = 2
    assert sink == [1]


def test_listener_dropped_without_off_stays_active() -> None:
    """Forgetting ``off`` must not silently stop delivery (no weak listeners)."""
    a = sk.atom(0, name="a")
    sink: list[Any] = []
    a.subscribe(Callback(sink))
    gc.collect()
    a.value = 1
    assert sink == [1]


# --------------------------------------------------------------------------
# effects


def test_disposed_effect_is_not_retained_by_its_atom() -> None:
    a = sk.atom(0, name="a")
    seen: list[int] = []

    class Body:
        def __call__(self) -> None:
            seen.append(a.value)

    body = Body()
    body_ref = weakref.ref(body)
    e = sk.effect(body)
    e_ref = weakref.ref(e)
    a.value = 1
    assert seen == [0, 1]
    e.stop()
    del e, body
    gc.collect()
    assert e_ref() is None, "a stopped effect is still referenced"
    assert body_ref() is None, "a stopped effect's function is still referenced"
    a.value = 2
    assert seen == [0, 1]


def test_effect_cleanup_closure_released_after_stop() -> None:
    a = sk.atom(0, name="a")

    class Resource:
        pass

    refs: list[weakref.ref[Resource]] = []

    def body() -> Callable[[], None]:
        res = Resource()
        refs.append(weakref.ref(res))
        a.value
        return lambda: res

    stop = sk.effect(body)
    a.value = 1
    a.value = 2
    stop()
    del stop
    gc.collect()
    assert len(refs) == 3
    assert all(r() is None for r in refs)


@pytest.mark.slow
def test_100k_effects_created_and_stopped_leave_nothing() -> None:
    a = sk.atom(0, name="a")
    b = sk.computed(lambda: a.value + 1, name="b")
    for _ in range(1_000):
        sk.effect(lambda: b.value).stop()
    refs = []
    with measure() as grown:
        for i in range(100_000):
            e = sk.effect(lambda: (a.value, b.value))
            if i % 1_000 == 0:
                refs.append(weakref.ref(e))
                a.value = i  # propagate through the live effect
            e.stop()
            del e
    assert grown["objects"] <= 2, f"{grown['objects']} statekit objects left behind"
    assert grown["bytes"] < MB, f"memory grew by {grown['bytes']} bytes"
    assert all(r() is None for r in refs)


def test_effects_dropped_by_a_disposed_scope_are_released() -> None:
    tick = sk.atom(0, name="tick")
    runs = [0]

    class Body:
        def __call__(self) -> None:
            runs[0] += 1
            tick.value

    with sk.session("s") as s:
        body = Body()
        body_ref = weakref.ref(body)
        e = sk.effect(body)
        e_ref = weakref.ref(e)
        del body
    s.dispose()
    del e
    gc.collect()
    assert e_ref() is None
    assert body_ref() is None
    tick.value = 1
    assert runs == [1]


# --------------------------------------------------------------------------
# scopes


@pytest.mark.slow
def test_10k_sessions_created_and_disposed_leave_nothing() -> None:
    app = sk.app_scope()
    cart = sk.atom(0, name="cart", scope="session")
    size = sk.computed(lambda: cart.value * 2, name="size")
    greeting = sk.computed(lambda: f"size {size.value}", name="greeting", scope="session")
    tick = sk.atom(0, name="tick")
    seen: list[Any] = []

    def session_cycle(i: int) -> weakref.ref[sk.Scope]:
        with sk.session(f"s{i}") as s:
            cart.value = i
            assert size.value == 2 * i
            assert greeting.value == f"size {2 * i}"
            sk.effect(lambda: seen.append((tick.value, cart.value)))
            off = size.subscribe(seen.append)
            cart.update(lambda n: n + 1)
            off()
            s.on_dispose(lambda: None)
            with sk.request():
                cart.value
        ref = weakref.ref(s)
        s.dispose()
        return ref

    for i in range(200):  # warm up
        session_cycle(-1 - i)
    seen.clear()
    refs = []
    with measure() as grown:
        for i in range(10_000):
            ref = session_cycle(i)
            if i % 100 == 0:
                refs.append(ref)
            else:
                del ref
        seen.clear()
    assert app.count() == 0
    assert grown["objects"] <= 2, f"{grown['objects']} statekit objects left behind"
    assert grown["bytes"] < MB, f"memory grew by {grown['bytes']} bytes"
    gc.collect()
    assert all(r() is None for r in refs), "a disposed session is still referenced"
    tick.value = 1  # no effect of a disposed session runs
    assert seen == []


@pytest.mark.slow
def test_10k_request_scopes_leave_nothing() -> None:
    req = sk.atom(0, name="req", scope="request")
    total = sk.atom(0, name="total")
    for _ in range(200):
        with sk.request():
            req.value = 1
    refs = []
    with measure() as grown:
        for i in range(10_000):
            with sk.session("s"), sk.request() as r:
                req.value = i
                total.update(lambda n: n + 1)
            if i % 100 == 0:
                refs.append(weakref.ref(r))
            del r
    assert total.value == 10_000
    assert sk.app_scope().count("request") == 0
    assert grown["objects"] <= 2, f"{grown['objects']} statekit objects left behind"
    assert grown["bytes"] < MB, f"memory grew by {grown['bytes']} bytes"
    gc.collect()
    assert all(ref() is None for ref in refs)


def test_expired_sessions_are_released() -> None:
    import time

    app = sk.app_scope()
    v = sk.atom(0, name="v", scope="session")
    refs = []
    for i in range(100):
        with sk.session(f"x{i}", ttl=1.0) as s:
            v.value = i
        refs.append(weakref.ref(s))
    del s
    assert app.expire_idle(now=time.monotonic() + 5) == 100
    gc.collect()
    assert all(r() is None for r in refs)
    assert app.count() == 0


def test_disposed_app_scope_releases_values() -> None:
    class Payload:
        pass

    box = sk.atom(None, name="box")
    app = sk.new_app_scope(name="temp")
    with app:
        payload = Payload()
        box.value = payload
        ref = weakref.ref(payload)
        del payload
    app.dispose()
    del app
    gc.collect()
    assert ref() is None
