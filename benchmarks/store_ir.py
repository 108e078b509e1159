"""The Store/State cases of ``store.py`` as plain loops, for instruction counts.

``python benchmarks/store_ir.py CASE N [SRC]`` runs 200 warm-up operations and
then ``N`` more of ``CASE`` (``session``, ``set``, ``set_listener``,
``set_selector``, ``deep_set``, ``patch10``, ``assign``), importing statekit from ``SRC`` if given (a
``git archive`` of another commit, say). Under valgrind, the cost of one
operation is ``(Ir(2N) - Ir(N)) / N``, which cancels start-up and import::

    for n in 1000 2000; do
      PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=cg.$n \\
        .venv/bin/python benchmarks/store_ir.py session $n
    done   # then: grep ^summary: cg.1000 cg.2000

Sessions are kept alive, as ``store.py`` keeps them (the collector's passes
over them are part of the cost). ``NOGC=1`` disables the collector.
"""

from __future__ import annotations

import gc
import os
import sys
from typing import Any

WARM = 200


def main() -> None:
    case, n = sys.argv[1], int(sys.argv[2])
    if len(sys.argv) > 3:
        sys.path.insert(0, sys.argv[3])
    import statekit as sk

    if os.environ.get("NOGC"):
        gc.disable()
    sk.new_app_scope("bench").__enter__()
    kept: list[Any] = []
    seen: list[Any] = []

    def listener(value: Any) -> None:
        seen.append(value) if len(seen) < 100 else seen.clear()

    if case == "session":

        class Form(sk.State, scope="session"):  # type: ignore[misc,call-arg]
            f0: int = 0
            f1: int = 1
            f2: int = 2
            f3: int = 3
            f4: int = 4
            f5: int = 5
            f6: int = 6
            f7: int = 7
            f8: int = 8
            f9: int = 9

        def run(i: int) -> None:
            with sk.session(f"s{i}") as scope:
                form = Form.get()
            kept.append((scope, form))

    elif case in ("set", "set_listener", "set_selector"):
        store = sk.Store({"n": 0})
        if case == "set_listener":
            store.listen("n", listener)
        elif case == "set_selector":

            @store.selector("double")
            def double(get: Any) -> Any:
                return get("n") * 2

            store.listen("double", listener)

        def run(i: int) -> None:
            store.set("n", i + 1)

    elif case == "deep_set":  # store.py's: a 10-level path, with a listener on it
        doc: dict[str, Any] = {"leaf": 0}
        for level in reversed(range(10)):
            doc = {f"l{level}": doc, "sibling": level}
        path = "/".join(f"l{level}" for level in range(10)) + "/leaf"
        store = sk.Store(doc)
        store.listen(path, listener)

        def run(i: int) -> None:
            store.set(path, i + 1)

    elif case == "patch10":  # store.py's: 10 replace ops in one patch
        store = sk.Store({f"k{i}": 0 for i in range(10)})

        def run(i: int) -> None:
            store.patch([{"op": "replace", "path": f"/k{k}", "value": i + 1} for k in range(10)])

    elif case == "assign":

        class Counter(sk.State):  # type: ignore[misc]
            count: int = 0

        counter = Counter.get()

        def run(i: int) -> None:
            counter.count = i + 1

    else:
        raise SystemExit(f"unknown case {case!r}")
    for i in range(WARM + n):
        run(i)


if __name__ == "__main__":
    main()
