"""Implementation of ``statekit.fastapi`` (see that module)."""
