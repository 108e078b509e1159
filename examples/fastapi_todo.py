"""A todo service in the shape of the FastAPI "app state" ADR, on statekit.

The ADR (seeds/004) moved a service from module-level singletons to objects
made in the lifespan and reached through dependencies. Here:

* ``TodoRepository`` keeps todos in SQLite, with async ``initialize()`` and
  ``close()``; the lifespan opens it at startup and closes it at shutdown
  (``repository``), and ``TodoService`` is built over it (``service``);
* routes get both through ``Depends`` — nothing lives at module level but
  definitions (a resource, a store, a class hold no value of their own);
* each browser session has its own todo list: the session's copy of the
  ``todos`` store, loaded from SQLite on first use and kept in step with it;
* the sync server is mounted at ``/sk`` (``mount_sync``): the page at ``/``
  binds the list with ``data-sk-list`` and updates live when a route changes it.

Run it::

    STATEKIT_SECRET=$(python -c 'import secrets; print(secrets.token_hex())') \\
        uvicorn --factory examples.fastapi_todo:create_app

Tests create the app with ``create_app(db_path)`` inside ``with TestClient(...)``:
a fresh app scope and a fresh repository each time, no globals to reset.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

import statekit as sk
from statekit.fastapi import StatekitLifespan, current, mount_sync, resource, store

#: One todo list per browser session (its copy of this store).
todos = sk.Store({"todo": [], "loaded": False}, name="todos", scope="session")


class TodoRepository:
    """Todos in SQLite, one list per owner (a session id)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._db: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()  # one connection: one statement at a time

    async def initialize(self) -> None:
        def connect() -> sqlite3.Connection:
            db = sqlite3.connect(self.path, check_same_thread=False)
            db.execute(
                "CREATE TABLE IF NOT EXISTS todo (id INTEGER PRIMARY KEY, owner TEXT NOT NULL,"
                " title TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0)"
            )
            db.commit()
            return db

        self._db = await asyncio.to_thread(connect)

    async def close(self) -> None:
        if self._db is not None:
            await asyncio.to_thread(self._db.close)
            self._db = None

    async def _run(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        db = self._db
        if db is None:
            raise RuntimeError("TodoRepository is not initialized (or already closed)")

        def run() -> list[tuple[Any, ...]]:
            with db:  # a transaction
                cursor = db.execute(sql, args)
                return [(cursor.lastrowid,)] if sql.startswith("INSERT") else cursor.fetchall()

        async with self._lock:
            return await asyncio.to_thread(run)

    async def list(self, owner: str) -> list[dict[str, Any]]:
        rows = await self._run(
            "SELECT id, title, done FROM todo WHERE owner = ? ORDER BY id", owner
        )
        return [{"id": i, "title": t, "done": bool(d)} for i, t, d in rows]

    async def add(self, owner: str, title: str) -> dict[str, Any]:
        [(new_id,)] = await self._run("INSERT INTO todo (owner, title) VALUES (?, ?)", owner, title)
        return {"id": new_id, "title": title, "done": False}

    async def set_done(self, owner: str, todo_id: int, done: bool) -> None:
        await self._run(
            "UPDATE todo SET done = ? WHERE owner = ? AND id = ?", int(done), owner, todo_id
        )

    async def delete_done(self, owner: str) -> None:
        await self._run("DELETE FROM todo WHERE owner = ? AND done = 1", owner)


class TodoService:
    """The use cases: SQLite is the record, the session's store what pages show."""

    def __init__(self, repository: TodoRepository) -> None:
        self.repository = repository

    async def load(self, owner: str) -> list[Any]:
        """This session's todos, read from SQLite once per session."""
        if not todos.get("loaded"):
            rows = await self.repository.list(owner)
            with todos.transaction():
                todos.set("todo", rows)
                todos.set("loaded", True)
        return list(todos.get("todo"))

    async def add(self, owner: str, title: str) -> dict[str, Any]:
        await self.load(owner)
        row = await self.repository.add(owner, title)
        todos.add("todo/-", row)
        return row

    async def toggle(self, owner: str, todo_id: int) -> dict[str, Any]:
        items = await self.load(owner)
        for index, item in enumerate(items):
            if item["id"] == todo_id:
                done = not item["done"]
                await self.repository.set_done(owner, todo_id, done)
                todos.set(f"todo/{index}/done", done)
                return {**item, "done": done}
        raise HTTPException(404, f"no todo {todo_id} in this session")

    async def clear_done(self, owner: str) -> int:
        items = await self.load(owner)
        await self.repository.delete_done(owner)
        todos.set("todo", [item for item in items if not item["done"]])
        return sum(item["done"] for item in items)


@resource
async def repository(app: FastAPI) -> AsyncIterator[TodoRepository]:
    """The repository of this app run: initialized at startup, closed at shutdown."""
    repo = TodoRepository(app.state.db_path)
    await repo.initialize()
    try:
        yield repo
    finally:
        await repo.close()


@resource
def service(repo: Annotated[TodoRepository, Depends(repository)]) -> TodoService:
    """The service over this run's repository (opened after it)."""
    return TodoService(repo)


# What routes ask for (type aliases: nothing is stored in them).
Service = Annotated[TodoService, Depends(service)]
Session = Annotated[sk.Scope, Depends(current("session"))]
Todos = Annotated[sk.Store, Depends(store(todos))]


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>statekit todos</title>
<script type="module" src="/sk/client.js" data-sk-auto></script></head>
<body><h1>Todos</h1>
<form id="add"><input name="title" required maxlength="200"> <button>Add</button></form>
<ul data-sk-list="todos:/todo"><template>
  <li><span data-sk-text="/title"></span> <span data-sk-text="/done"></span></li>
</template></ul>
<p>Live: <span data-sk-status></span></p>
<script>
document.getElementById("add").addEventListener("submit", async (event) => {
  event.preventDefault();
  const title = event.target.title.value;
  await fetch("/api/todos", {method: "POST", headers: {"Content-Type": "application/json"},
                             body: JSON.stringify({title})});
  event.target.reset();   // the list updates from the sync server's event stream
});
</script></body></html>
"""


class NewTodo(BaseModel):
    title: str = Field(min_length=1, max_length=200)


def create_app(db_path: str | Path = "todos.db", *, secret: str | None = None) -> FastAPI:
    """The app; ``secret`` signs session cookies (default: ``STATEKIT_SECRET``)."""
    app = FastAPI(
        title="statekit todos", lifespan=StatekitLifespan(resources=[service], secret=secret)
    )
    app.state.db_path = str(db_path)
    # The page's client.js reads the session's todos here, live (same cookie, same scopes).
    mount_sync(app, [todos], path="/sk")

    @app.get("/", response_class=HTMLResponse)
    async def page(svc: Service, session: Session) -> str:
        await svc.load(session.id)  # the session's list is in its store before the page connects
        return PAGE

    @app.get("/api/todos")
    async def list_todos(svc: Service, session: Session, _: Todos) -> list[Any]:
        return await svc.load(session.id)

    @app.post("/api/todos", status_code=201)
    async def add_todo(body: NewTodo, svc: Service, session: Session) -> dict[str, Any]:
        return await svc.add(session.id, body.title)

    @app.post("/api/todos/{todo_id}/toggle")
    async def toggle_todo(todo_id: int, svc: Service, session: Session) -> dict[str, Any]:
        return await svc.toggle(session.id, todo_id)

    @app.post("/api/todos/clear-done")
    async def clear_done(svc: Service, session: Session) -> dict[str, int]:
        return {"removed": await svc.clear_done(session.id)}

    return app
