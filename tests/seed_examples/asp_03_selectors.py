import flet_seed_shim as ft
import statekit.compat.flet_asp as fa


def main(page: ft.Page):
    fa.get_state_manager(page)
    page.state.atom("first_name", "John")
    page.state.atom("last_name", "Doe")

    @page.state.selector("full_name")
    def compute_full_name(get):
        return f"{get('first_name')} {get('last_name')}"

    first_field = ft.Ref[ft.TextField]()
    last_field = ft.Ref[ft.TextField]()
    full_name_text = ft.Ref[ft.Text]()
    page.add(
        ft.Column([
            ft.Text("Name Builder", size=24),
            ft.TextField(ref=first_field, label="First Name"),
            ft.TextField(ref=last_field, label="Last Name"),
            ft.Divider(),
            ft.Text("Full Name:", weight=ft.FontWeight.BOLD),
            ft.Text(ref=full_name_text, size=20, color=ft.Colors.BLUE)
        ])
    )
    page.state.bind_two_way("first_name", first_field)
    page.state.bind_two_way("last_name", last_field)
    page.state.bind("full_name", full_name_text)


ft.app(target=main)
