from typing import Optional

import flet_seed_shim as ft
from statekit.compat.ftstate import FtState


@ft.observable
class AuthState(FtState):
    is_authenticated: bool = False
    user_id: Optional[str] = None


@ft.observable
class CartState(FtState):
    items: list[str] = []
    total: float = 0.0


# Both are initialized automatically
FtState.initialize()


# Access from different components
@ft.component
def Header():
    auth = AuthState.use_state()
    cart = CartState.use_state()
    return ft.Text(f"User: {auth.user_id}, Cart: {len(cart.items)}")
