"""The ``statekit`` command line: ``statekit demo`` (the web demo), ``statekit serve module:attr``.

Only this module imports click, so ``import statekit`` stays dependency-free.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from . import __version__

__all__ = ["main"]


@click.group()
@click.version_option(__version__, prog_name="statekit")
def main() -> None:
    """statekit: application state for Python."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0: a free one, printed).",
)
@click.option(
    "--backend",
    default="memory://",
    show_default=True,
    help="Where the state lives: memory://, sqlite:///path.db or redis://host:port/db.",
)
def demo(host: str, port: int, backend: str) -> None:
    """Serve the web demo: a shared counter, per-user todos and a per-tab draft, live."""
    try:
        from ._demo import create_app
        from ._demo._run import bind, open_backend, pick_secret, serve, url_of
    except ImportError as exc:  # pragma: no cover - the server extra is not installed
        raise click.ClickException(
            f"statekit demo needs the server extra ({exc.name} is missing): "
            "pip install 'statekit[server]'"
        ) from None
    try:
        store = open_backend(backend)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--backend'") from None
    try:
        sock = bind(host, port)
    except OSError as exc:
        store.close()
        raise click.BadParameter(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}", param_hint="'--port'"
        ) from None
    secret, said = pick_secret()
    app = create_app(secret=secret, backend=store)
    click.echo(f"statekit demo: secret {said}")
    click.echo(f"statekit demo: state in {store!r}")
    click.echo(f"statekit demo: open {url_of(sock)} (Ctrl-C to stop)")
    try:
        serve(app, sock)
    finally:
        sock.close()
    click.echo("statekit demo: stopped")


def load_app(target: str) -> Any:
    """The object named by ``module:attr`` (``attr`` may be dotted), imported from the cwd too."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise click.BadParameter(f"{target!r}: expected module:attribute, e.g. app:server")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like uvicorn: run from the project's folder
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise click.BadParameter(f"cannot import module {module_name!r}: {exc}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise click.BadParameter(f"module {module_name!r} has no attribute {attr!r}") from None
    if not callable(obj):
        raise click.BadParameter(f"{target!r} is a {type(obj).__name__}, not an ASGI app")
    return obj


@main.command()
@click.argument("target")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
def serve(target: str, host: str, port: int, log_level: str) -> None:
    """Run TARGET (module:attr, a SyncServer or any ASGI app) under uvicorn."""
    app = load_app(target)
    try:
        import uvicorn
    except ImportError:  # pragma: no cover - the server extra is not installed
        raise click.ClickException(
            "statekit serve needs uvicorn: pip install 'statekit[server]'"
        ) from None
    click.echo(f"statekit: serving {target} on http://{host}:{port}/ (Ctrl+C stops)")
    # Event streams end by themselves when the server shuts down; the grace
    # period only bounds a request that would not.
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)


if __name__ == "__main__":  # pragma: no cover
    main()
