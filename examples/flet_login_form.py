"""A login form: two-way bindings and an async action (``python examples/flet_login_form.py``).

The fields are bound two-way to a session store; the button is enabled only
when both are filled (a computed bound to ``disabled``); logging in is an
async handler that shows "Signing in..." while it waits, then the result.
Another tab has its own form.
"""

from __future__ import annotations

import asyncio

import flet as ft

import statekit as sk
import statekit.flet as skf

form = sk.Store(
    {"email": "", "password": "", "status": "", "busy": False, "user": None},
    name="login",
    scope="session",
)
ready = sk.computed(
    lambda: bool(form.get("email")) and bool(form.get("password")) and not form.get("busy"),
    name="ready",
)
USERS = {"ada@example.com": ("123", "Ada Lovelace")}
DELAY = 0.3  # the "server" round trip


async def login() -> None:
    """The async action: check the credentials "remotely"."""
    email, password = form.get("email"), form.get("password")
    with sk.batch():
        form.set("busy", True)
        form.set("status", "Signing in...")
    await asyncio.sleep(DELAY)
    known = USERS.get(email)
    with sk.batch():
        form.set("busy", False)
        if known is not None and known[0] == password:
            form.set("user", {"email": email, "name": known[1]})
            form.set("status", f"Welcome, {known[1]}!")
        else:
            form.set("user", None)
            form.set("status", "Invalid credentials")


def main(page: ft.Page) -> None:
    page.title = "statekit login"
    email = ft.TextField(label="Email")
    password = ft.TextField(label="Password", password=True)
    submit = ft.Button("Sign in", on_click=login)
    status = ft.Text()
    skf.bind_two_way((form, "email"), email)
    skf.bind_two_way((form, "password"), password)
    skf.bind(lambda: not ready.value, submit, "disabled")
    skf.bind((form, "status"), status)
    page.add(ft.Text("Sign in", size=24), email, password, submit, status)


if __name__ == "__main__":
    skf.run(main)
