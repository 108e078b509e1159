import asyncio
import flet_seed_shim as ft
import statekit.compat.flet_asp as fa


def main(page: ft.Page):
    fa.get_state_manager(page)
    page.state.atom("user", None)
    page.state.atom("loading", False)

    async def login_action(get, set_value, params):
        set_value("loading", True)
        await asyncio.sleep(2)
        email = params.get("email")
        password = params.get("password")
        if email == "test@test.com" and password == "123":
            set_value("user", {"email": email, "name": "Test User"})
        else:
            set_value("user", None)
        set_value("loading", False)

    login = fa.Action(login_action)
    email_field = ft.Ref[ft.TextField]()
    password_field = ft.Ref[ft.TextField]()
    status_text = ft.Ref[ft.Text]()

    async def handle_login(e):
        await login.run_async(
            page.state,
            {
                "email": email_field.current.value,
                "password": password_field.current.value
            }
        )
        user = page.state.get("user")
        if user:
            status_text.current.value = f"Welcome, {user['name']}!"
        else:
            status_text.current.value = "Login failed"
        page.update()

    def on_loading_change(is_loading):
        status_text.current.value = "Logging in..." if is_loading else ""
        page.update()

    page.state.listen("loading", on_loading_change)
    page.add(
        ft.Column([
            ft.Text("Async Login", size=24),
            ft.TextField(ref=email_field, label="Email"),
            ft.TextField(ref=password_field, label="Password", password=True),
            ft.ElevatedButton("Login", on_click=handle_login),
            ft.Text(ref=status_text)
        ])
    )


ft.app(target=main)
