"""Private modules behind :mod:`statekit.flet` (the only ones that import Flet)."""
