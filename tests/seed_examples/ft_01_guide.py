import flet_seed_shim as ft
from statekit.compat.ftstate import FtState


@ft.observable  # Required for reactivity
class AppState(FtState):
    count: int = 0
    user_name: str = "Guest"

    def increment(self):
        self.count += 1


def main(page: ft.Page):
    # Initialize ONCE at app start
    FtState.initialize()

    page.add(Counter(), Profile())


@ft.component
def Counter():
    # Subscribes to state changes - component re-renders on updates
    state = AppState.use_state()

    return ft.Column([
        ft.Text(f"Count: {state.count}"),
        ft.ElevatedButton("Increment", on_click=lambda _: state.increment())
    ])


class UserController:
    def update_profile(self, new_name: str):
        # Get state without subscribing
        state = AppState.get_state()
        state.user_name = new_name
