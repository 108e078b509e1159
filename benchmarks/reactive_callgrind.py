"""One case of ``reactive.py``, N iterations, for instruction counts under callgrind.

Wall clock on a shared 2-core VM is noise; instruction counts are not::

    valgrind --tool=callgrind --callgrind-out-file=F1 .venv/bin/python \\
        benchmarks/reactive_callgrind.py statekit mux 20
    valgrind --tool=callgrind --callgrind-out-file=F2 .venv/bin/python \\
        benchmarks/reactive_callgrind.py statekit mux 40

Instructions per iteration = (summary of F2 - summary of F1) / 20: building the
graph, the warm-up iteration and the interpreter's start cancel out. ``LIB`` is
``statekit`` or ``floor`` (the hand-written floor of ``reactive.py``); cases
built per iteration (``creation``) or per sample (``cellx``) count their build.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reactive  # the benchmark module next to this file

LIBS = {"floor": reactive.FloorLib, "statekit": reactive.StatekitLib}


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] not in LIBS:
        print(__doc__)
        return 2
    lib = LIBS[argv[0]]()
    case = next(c for c in reactive.CASES if c.name == argv[1])
    n = int(argv[2])
    sys.setrecursionlimit(reactive.CASE_RECURSION_LIMIT)
    iteration, _ = reactive._make(case, lib, reactive.plain)
    iteration([])  # warm-up: first evaluations and links are not what is counted
    gc.disable()
    for _ in range(n):
        iteration([])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
