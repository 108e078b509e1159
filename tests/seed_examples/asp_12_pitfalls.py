import statekit.compat.flet_asp as fa

global_state = fa.StateManager()


def main(page):
    global_state.atom("count", 0)


global_state = fa.StateManager()


def main(page):
    global_state.page = page
    global_state.atom("count", 0)
