"""statekit.flet bind / bind_two_way / unbind against real offline Flet sessions."""

from __future__ import annotations

import asyncio
import threading
import weakref

import pytest

ft = pytest.importorskip("flet")

import statekit as sk  # noqa: E402
import statekit.flet as skf  # noqa: E402
from flet_harness import collect, open_session, settle  # noqa: E402


@pytest.fixture
def errors() -> list[tuple[BaseException, str]]:
    seen: list[tuple[BaseException, str]] = []
    old = sk.set_error_hook(lambda exc, where: seen.append((exc, where)))
    yield seen
    sk.set_error_hook(old)


# ---------------------------------------------------------------- one-way


async def test_one_way_binding_sends_patch_control() -> None:
    count = sk.atom(0, name="count", scope="session")
    label = ft.Text()
    button = ft.Button("+1", on_click=lambda: count.update(lambda n: n + 1))

    @skf.app
    def main(page: ft.Page) -> None:
        page.add(label, button)
        skf.bind(count, label)

    s = await open_session(main)
    assert label.value == "0"  # set now; a Text shows text
    assert s.sent(label) == ["0"]
    await s.click(button)
    assert s.sent(label) == ["0", "1"]
    await s.click(button)
    assert label.value == "2" and s.sent(label) == ["0", "1", "2"]
    # each change is one PATCH_CONTROL addressed to the label itself
    patch = s.patches()[-1]
    assert patch["id"] == label._i and patch["patch"][1] == [0, 0, "value", "2"]


async def test_every_kind_of_source() -> None:
    n = sk.atom(2, name="n")
    double = sk.computed(lambda: n.value * 2, name="double")
    todos = sk.Store({"todo": ["milk"], "user": {"name": "Ann"}}, name="todos")
    name = todos.atom("user/name")

    class Form:
        def __init__(self) -> None:
            self.title = "draft"

    form = Form()
    texts = [ft.Text() for _ in range(6)]

    def main(page: ft.Page) -> None:
        skf.session(page)
        page.add(*texts)
        skf.bind(n, texts[0])
        skf.bind(double, texts[1])
        skf.bind((todos, "todo"), texts[2], format=", ".join)
        skf.bind(name, texts[3])
        skf.bind((form, "title"), texts[4])
        skf.bind(lambda: f"{len(todos.get('todo'))} to do", texts[5])

    s = await open_session(main)
    assert [t.value for t in texts] == ["2", "4", "milk", "Ann", "draft", "1 to do"]
    s.run(lambda: (n.set(3), todos.add("todo/-", "eggs"), name.set("Bob")))
    await settle()
    assert [t.value for t in texts] == ["3", "6", "milk, eggs", "Bob", "draft", "2 to do"]
    assert s.last(texts[1]) == "6" and s.last(texts[5]) == "2 to do"


async def test_non_text_properties_keep_their_type() -> None:
    shown = sk.atom(False)
    ratio = sk.atom(0.25)
    box, slider = ft.Text("x"), ft.Slider()

    def main(page: ft.Page) -> None:
        page.add(box, slider)
        skf.bind(shown, box, "visible")
        skf.bind(ratio, slider)

    s = await open_session(main)
    assert box.visible is False and slider.value == 0.25
    s.run(lambda: (shown.set(True), ratio.set(0.5)))
    await settle()
    assert s.last(box, "visible") is True and s.last(slider) == 0.5


# ---------------------------------------------------------------- before mount


async def test_binding_before_mount_sends_latest_value_when_added() -> None:
    count = sk.atom(1)
    label = ft.Text()
    binding = skf.bind(count, label)  # no page anywhere yet
    assert label.value == "1"
    count.value = 5  # not mounted: property set, nothing to update
    assert label.value == "5"

    s = await open_session(lambda page: page.add(label))
    assert s.sent(label) == ["5"]  # the add carried the latest value
    s.run(lambda: count.set(6))
    await settle()
    assert s.sent(label) == ["5", "6"]
    binding.unbind()


async def test_binding_to_a_ref_waits_for_the_ref() -> None:
    count = sk.atom(1, scope="session")
    ref: ft.Ref[ft.Text] = ft.Ref()
    button = ft.Button("+1", on_click=lambda: count.update(lambda n: n + 1))

    @skf.app
    def main(page: ft.Page) -> None:
        skf.bind(count, ref)  # nothing to show it in yet
        page.add(button)

    s = await open_session(main)
    label = ft.Text(ref=ref)
    s.run(lambda: s.page.add(label))
    await s.click(button)  # after the event, the pending binding finds the Ref set
    assert label.value == "2"
    assert s.last(label) == "2"


async def test_binding_a_ref_that_is_never_set_is_harmless() -> None:
    count = sk.atom(0, scope="session")

    @skf.app
    def main(page: ft.Page) -> None:
        skf.bind(count, ft.Ref[ft.Text]())  # the seed's navigation example does this

    s = await open_session(main)
    s.run(lambda: count.set(1))
    await settle()
    assert s.errors() == []


# ---------------------------------------------------------------- unbind


async def test_unbind_really_unbinds() -> None:
    count = sk.atom(0)
    a, b = ft.Text(), ft.Text()

    def main(page: ft.Page) -> None:
        page.add(a, b)

    s = await open_session(main)
    first = s.run(lambda: skf.bind(count, a))
    s.run(lambda: skf.bind(count, b))
    s.run(lambda: skf.bind(lambda: count.value > 0, b, "italic"))
    assert len(skf.bindings(b)) == 2

    assert skf.unbind(first) == 1 and skf.unbind(first) == 0
    assert skf.unbind(b, "italic") == 1
    assert skf.unbind(b) == 1 and skf.bindings(b) == []
    before = len(s.conn.props)
    s.run(lambda: count.set(9))
    await settle()
    assert a.value == "0" and b.value == "0" and b.italic is False
    assert len(s.conn.props) == before  # nothing sent
    # the scope no longer holds the binding (its effect stopped)
    ref = weakref.ref(first)
    del first
    collect()
    assert ref() is None


async def test_control_is_held_weakly_and_its_binding_goes_away() -> None:
    count = sk.atom(0)
    label = ft.Text()
    binding = skf.bind(count, label)
    control_ref, binding_ref = weakref.ref(label), weakref.ref(binding)
    del label, binding
    collect()
    assert control_ref() is None  # the binding did not keep the control alive
    count.value = 1  # the next change (or the next bind) drops the binding
    skf.bind(count, ft.Text())
    collect()
    assert binding_ref() is None


# ---------------------------------------------------------------- two-way


async def test_two_way_writes_source_without_echo_and_chains_on_change() -> None:
    email = sk.atom("", name="email", scope="session")
    seen: list[str] = []
    field = ft.TextField(on_change=lambda e: seen.append(email.value))
    mirror = ft.Text()

    @skf.app
    def main(page: ft.Page) -> None:
        page.add(field, mirror)
        skf.bind_two_way(email, field)
        skf.bind(email, mirror)

    s = await open_session(main)
    s.clear()
    await s.type(field, "a@b.c")
    assert s.run(lambda: email.value) == "a@b.c"
    assert seen == ["a@b.c"]  # the old handler ran, after the write, seeing the new state
    assert s.last(mirror) == "a@b.c"
    assert s.sent(field) == []  # the field was not told its own value back
    s.run(lambda: email.set("z@z.z"))  # a change from code still reaches the field
    await settle()
    assert field.value == "z@z.z" and s.last(field) == "z@z.z"


async def test_two_way_chains_async_handlers_and_unbind_restores_them() -> None:
    name = sk.atom("")
    seen: list[str] = []

    async def on_change(e: ft.ControlEvent) -> None:
        await asyncio.sleep(0)
        seen.append(e.control.value)

    field = ft.TextField(on_change=on_change)
    s = await open_session(lambda page: page.add(field))
    binding = s.run(lambda: skf.bind_two_way(name, field))
    assert field.on_change is not on_change
    await s.type(field, "Ann")
    assert name.value == "Ann" and seen == ["Ann"]
    binding.unbind()
    assert field.on_change is on_change
    await s.type(field, "Bob")
    assert name.value == "Ann" and seen == ["Ann", "Bob"]


async def test_two_way_parse_and_bad_values(errors: list[tuple[BaseException, str]]) -> None:
    age = sk.atom(30)
    field = ft.TextField()
    s = await open_session(lambda page: page.add(field))
    s.run(lambda: skf.bind_two_way(age, field, parse=int))
    assert field.value == "30"
    await s.type(field, "41")
    assert age.value == 41
    await s.type(field, "forty")  # refused: the state stays as it was
    assert age.value == 41
    assert errors and isinstance(errors[0][0], ValueError) and "TextField.value" in errors[0][1]


async def test_two_way_into_store_paths_and_fields() -> None:
    form = sk.Store({"user": {"email": ""}}, name="form")
    field = ft.TextField()
    s = await open_session(lambda page: page.add(field))
    s.run(lambda: skf.bind_two_way((form, "user/email"), field))
    await s.type(field, "x@y.z")
    assert form.get("user/email") == "x@y.z"


def test_two_way_refuses_read_only_sources() -> None:
    double = sk.computed(lambda: 2)
    with pytest.raises(sk.InvalidDefinition, match="read-only"):
        skf.bind_two_way(double, ft.TextField())


# ---------------------------------------------------------------- other threads


async def test_updates_from_another_thread_land_on_the_session_loop() -> None:
    count = sk.atom(0)
    label = ft.Text()
    s = await open_session(lambda page: page.add(label))
    s.run(lambda: skf.bind(count, label))
    loop_thread = threading.get_ident()
    updated_in: list[int] = []  # the threads that sent to the client
    original = s.conn.send_message

    def spy(message: object) -> None:
        updated_in.append(threading.get_ident())
        original(message)

    s.conn.send_message = spy  # type: ignore[method-assign]

    def writer() -> None:
        for _ in range(1000):
            count.update(lambda n: n + 1)

    app = sk.app_scope()  # threads do not inherit the current scope
    thread = threading.Thread(target=app.run, args=(writer,))
    thread.start()
    thread.join()
    for _ in range(20):
        await settle()
    assert label.value == "1000" and s.last(label) == "1000"
    assert updated_in and set(updated_in) == {loop_thread}  # never from the writer's thread
    assert len(updated_in) < 1000  # rapid changes are coalesced


# ---------------------------------------------------------------- async sources


async def test_async_selector_updates_a_control_and_latest_wins() -> None:
    uid = sk.atom(1, name="uid")
    delays = {1: 0.03, 2: 0.06, 3: 0.0}

    @sk.computed
    async def user() -> str:
        current = uid.value
        await asyncio.sleep(delays[current])
        return f"user {current}"

    label = ft.Text()
    s = await open_session(lambda page: page.add(label))
    s.run(lambda: skf.bind(user, label, format=lambda v: v or "Loading..."))
    assert label.value == "Loading..."
    await user.wait()
    await settle()
    assert s.last(label) == "user 1"
    s.run(lambda: uid.set(2))
    s.run(lambda: uid.set(3))  # 2 is slower than 3: its result must never show
    await asyncio.sleep(0.1)
    await settle()
    assert s.last(label) == "user 3"
    assert "user 2" not in s.sent(label)


# ---------------------------------------------------------------- errors


async def test_a_failing_source_does_not_stop_other_bindings(
    errors: list[tuple[BaseException, str]],
) -> None:
    n = sk.atom(1)
    broken = sk.computed(lambda: 1 / (n.value - 2), name="broken")
    good, bad = ft.Text(), ft.Text()
    s = await open_session(lambda page: page.add(good, bad))
    s.run(lambda: skf.bind(broken, bad))
    s.run(lambda: skf.bind(n, good))
    s.run(lambda: n.set(2))
    await settle()
    assert good.value == "2" and s.last(good) == "2"
    assert any(isinstance(e, ZeroDivisionError) for e, _ in errors)


def test_bad_inputs_are_refused_clearly() -> None:
    n = sk.atom(0, name="n")
    store = sk.Store({"a": 1}, name="prefs")
    with pytest.raises(sk.InvalidDefinition, match="not a Flet control"):
        skf.bind(n, "label")  # type: ignore[arg-type]
    with pytest.raises(sk.InvalidDefinition, match="has no property 'valu'"):
        skf.bind(n, ft.Text(), "valu")
    with pytest.raises(sk.InvalidDefinition, match="cannot bind 42"):
        skf.bind(42, ft.Text())
    with pytest.raises(sk.PathError, match="/b"):
        skf.bind((store, "b"), ft.Text())
    with pytest.raises(sk.InvalidDefinition, match="no field 'nope'"):
        skf.bind((object(), "nope"), ft.Text())
    session_only = sk.atom(0, name="cart", scope="session")
    label = ft.Text("unchanged")
    with pytest.raises(sk.ScopeError, match="cart"):
        skf.bind(session_only, label)
    assert label.value == "unchanged" and skf.bindings(label) == []
