from statekit.compat.flet_asp import Atom

Atom.MAX_PARALLEL_BINDS = 8
Atom.ENABLE_FREE_THREADING = False
