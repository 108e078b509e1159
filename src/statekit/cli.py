"""The ``statekit`` command line: ``statekit demo``.

Only this module imports click, so ``import statekit`` stays dependency-free.
"""

from __future__ import annotations

import click

from . import __version__

__all__ = ["main"]


@click.group()
@click.version_option(__version__, prog_name="statekit")
def main() -> None:
    """statekit: application state for Python."""


@main.command()
def demo() -> None:
    """Show atoms, computed values, effects and session scopes at work."""
    from ._demo import run_console_demo

    run_console_demo(click.echo)


if __name__ == "__main__":  # pragma: no cover
    main()
