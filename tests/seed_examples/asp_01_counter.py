import flet_seed_shim as ft
import statekit.compat.flet_asp as fa


def main(page: ft.Page):
    fa.get_state_manager(page)
    page.state.atom("count", 0)
    count_text = ft.Ref[ft.Text]()

    def increment(e):
        current = page.state.get("count")
        page.state.set("count", current + 1)

    page.add(
        ft.Column([
            ft.Text("Counter", size=30),
            ft.Text(ref=count_text, size=50),
            ft.ElevatedButton("Increment", on_click=increment)
        ])
    )
    page.state.bind("count", count_text)


ft.app(target=main)
