"""The HTeaLeaf documentation's Store examples, with only the imports changed.

Run: ``uvicorn examples.htealeaf_seed:app`` and open /counter (in two windows: a
click in one shows in the other, live), or /login?name=ana
then /. (HTeaLeaf's ``WSGI()`` is an ASGI app here.) ``elementoCompra``,
``val`` and the ``/login`` route are the parts the documentation leaves to
the reader's app.
"""

from statekit.compat.htealeaf import (  # was: HTeaLeaf.Magic.Store, .Server.*, .Elements
    WSGI,
    AuthStore,
    JSCode,
    Session,
    Store,
    SuperStore,
    button,
    div,
    false,
    h3,
    rButton,
    redirect,
)

app = WSGI()
SuperStore(app)  # register the orchestrator

globalStore = Store({"counter": 0})
cstore = Store({"counter": 1})


def auth_session(session: Session):
    return session["userName"] if session.has("userName") else None


todoStore = AuthStore(auth_session, {"todo": []})


# ---- not in the documentation: the app's own parts its examples use
val = JSCode("document.querySelector('#new').value")


def elementoCompra(idx, t):
    return div(t["value"]).attr(data_idx=idx)


@app.route("/login")
def login(session: Session, request):
    session["userName"] = request.query_params.get("name")
    return redirect("/")


# ---- the documentation's examples


@app.route("/counter")
def counter():
    return div(
        rButton("-").attr(onclick=cstore.do.update("counter", -1)),
        h3(cstore.react("counter")),
        rButton("+").attr(onclick=cstore.do.update("counter", 1)),
    )


@app.route("/")
def home(session):
    if not session.has("userName"):
        return redirect("/login")
    return div(
        [elementoCompra(idx, t) for idx, t in enumerate(todoStore.auth(session).read("todo"))],
        button("Add Task").attr(
            onclick=JSCode(todoStore.do.set("todo", {"done": false, "value": val}))
        ),
    )
