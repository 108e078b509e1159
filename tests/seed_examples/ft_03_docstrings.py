import flet_seed_shim as ft
from statekit.compat.ftstate import FtState


class AppState(FtState):  # the use_state / get_state docstrings' class (no @ft.observable)
    count: int = 0
    name: str = ""


@ft.component
def MyComponent():
    # Subscribes this component to updates
    state = AppState.use_state()
    return ft.Text(f"Count: {state.count}")


class UserController:
    def update_name(self, new_name):
        # Access state without subscribing
        state = AppState.get_state()
        state.name = new_name
