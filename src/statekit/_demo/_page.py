"""The demo's one page: markup bound with ``data-sk-*`` attributes, and its stylesheet.

Everything is inline (no CDN, no web font, no image): the page works offline.
Only the todo card depends on who is asking: a login form for visitors, the
list for a logged-in user (a user-scoped store does not exist for a visitor,
so the page must not name it then).

Example:
    >>> html = render(None, "<output>0</output>")
    >>> "Log in" in html and "data-sk-list" not in html
    True
    >>> "data-sk-list=\\"todos:/todo\\"" in render("ada", "<output>0</output>")
    True
"""

from __future__ import annotations

from html import escape

__all__ = ["render"]

STYLE = """
:root { color-scheme: light dark; --bg: #f5f6f8; --card: #fff; --text: #1d2330; --muted: #687085;
  --line: #dde1e8; --accent: #3b6cf6; --accent-text: #fff; --ok: #1f9d55; --bad: #d64545; }
@media (prefers-color-scheme: dark) { :root { --bg: #14171d; --card: #1d2129; --text: #e6e9ef;
  --muted: #98a0b3; --line: #2e3440; --accent: #6b8cff; } }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text);
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header, main, footer { max-width: 64rem; margin: 0 auto; padding: 0 1.25rem; }
header { display: flex; align-items: baseline; gap: 1rem; flex-wrap: wrap; padding-top: 2rem; }
h1 { font-size: 1.6rem; margin: 0; }
h1 span { color: var(--accent); }
header p { margin: 0; color: var(--muted); flex: 1; }
.status { font-size: .85rem; color: var(--muted); }
.status::before { content: ""; display: inline-block; width: .55rem; height: .55rem;
  border-radius: 50%; background: var(--muted); margin-right: .4rem; }
.status[data-sk-state="live"]::before { background: var(--ok); }
.status[data-sk-state="reconnecting"]::before { background: var(--bad); }
main { display: grid; grid-template-columns: repeat(auto-fit, minmax(18rem, 1fr)); gap: 1.25rem;
  padding-top: 1.5rem; padding-bottom: 1.5rem; }
section { background: var(--card); border: 1px solid var(--line); border-radius: .9rem;
  padding: 1.25rem 1.4rem; box-shadow: 0 1px 2px rgb(0 0 0 / 5%); }
h2 { font-size: 1.1rem; margin: 0; }
.scope { display: inline-block; font-size: .75rem; font-weight: 600; letter-spacing: .03em;
  text-transform: uppercase; color: var(--accent); margin-bottom: .2rem; }
.hint { color: var(--muted); font-size: .9rem; margin: .25rem 0 1rem; }
output { display: block; font-size: 4rem; font-weight: 700; text-align: center;
  font-variant-numeric: tabular-nums; margin: .5rem 0 1rem; }
.row { display: flex; gap: .5rem; align-items: center; }
.row.center { justify-content: center; }
button { white-space: nowrap; font: inherit; border: 1px solid var(--accent);
  background: var(--accent); color: var(--accent-text); border-radius: .55rem;
  padding: .4rem .9rem; cursor: pointer; }
button:hover { filter: brightness(1.08); }
button.ghost { background: transparent; color: var(--accent); }
button.big { font-size: 1.4rem; min-width: 3.2rem; }
button.link { border: none; background: none; color: var(--accent); padding: 0; }
button[aria-busy="true"] { opacity: .6; }
input[type="text"], textarea { font: inherit; color: inherit; background: var(--bg);
  border: 1px solid var(--line); border-radius: .55rem; padding: .45rem .7rem; width: 100%; }
input:focus, textarea:focus { outline: 2px solid var(--accent); outline-offset: -1px; }
textarea { min-height: 9rem; resize: vertical; }
form.inline { display: inline; }
ul.todos { list-style: none; margin: 1rem 0 0; padding: 0; }
ul.todos li { display: flex; align-items: center; gap: .6rem; padding: .45rem 0;
  border-bottom: 1px solid var(--line); }
ul.todos li label { flex: 1; display: flex; gap: .6rem; align-items: center; cursor: pointer; }
ul.todos li:has(input:checked) span { text-decoration: line-through; color: var(--muted); }
ul.todos input[type="checkbox"] { width: 1.1rem; height: 1.1rem; accent-color: var(--accent); }
ul.todos button { border: none; background: none; color: var(--muted); font-size: 1.2rem;
  padding: 0 .3rem; }
ul.todos button:hover { color: var(--bad); }
.empty { display: none; color: var(--muted); font-size: .9rem; margin: .75rem 0 0; }
ul.todos[data-sk-count="0"] + .empty { display: block; }
.who { margin: 0 0 .75rem; font-size: .95rem; }
.error { position: fixed; bottom: 1rem; left: 50%; transform: translateX(-50%); margin: 0;
  background: var(--bad); color: #fff; padding: .6rem 1rem; border-radius: .55rem; }
.warn { color: var(--bad); font-size: .9rem; }
footer { color: var(--muted); font-size: .85rem; padding-bottom: 2rem; }
code { font-size: .9em; }
"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>statekit demo</title>
<link rel="icon" href="data:,">
<style>{style}</style>
<script type="module" src="/sk/client.js" data-sk-auto></script>
</head><body>
<header>
  <h1><span>statekit</span> demo</h1>
  <p>State that lives on the server, shown live in every browser.</p>
  <span class="status" data-sk-status>connecting</span>
</header>
<main>
  <section id="counter">
    <span class="scope">app scope</span><h2>Shared counter</h2>
    <p class="hint">One number for everyone: open this page in another window and click.</p>
    {counter}
    <div class="row center">
      <button class="big" data-sk-action="counter:decrement" aria-label="decrement">&minus;</button>
      <button class="big" data-sk-action="counter:increment" aria-label="increment">+</button>
      <button class="ghost" data-sk-action="counter:reset">Reset</button>
    </div>
  </section>
  <section id="todos">
    <span class="scope">user scope</span><h2>Your todo list</h2>
    {todos}
  </section>
  <section id="draft">
    <span class="scope">session scope, per tab</span><h2>This tab&rsquo;s draft</h2>
    <p class="hint">Each tab has its own draft; it survives a reload of the tab.</p>
    <textarea data-sk-value="draft:/text" maxlength="2000" aria-label="this tab's draft"
      placeholder="Type something, then open a second tab&hellip;"></textarea>
  </section>
</main>
<p class="error" data-sk-error hidden></p>
<footer>Every change is a JSON Patch on one Server-Sent Events stream, which resumes
after a reconnect. Source: <code>statekit/_demo/</code>.</footer>
</body></html>
"""

LOGGED_IN = """<div class="who">Logged in as <b>{name}</b> &middot;
      <form class="inline" method="post" action="/logout">
        <button class="link">log out</button></form></div>
    <form class="row" data-sk-action="todos:add">
      <input type="text" name="title" required maxlength="120" autocomplete="off"
        placeholder="What needs doing?" aria-label="new todo"><button>Add</button>
    </form>
    <ul class="todos" data-sk-list="todos:/todo"><template>
      <li><label><input type="checkbox" data-sk-value="/done" data-sk-action="todos:toggle"
          data-sk-args='{{"index": $index}}'><span data-sk-text="/title"></span></label>
        <button data-sk-action="todos:remove" data-sk-args='{{"index": $index}}'
          aria-label="remove" title="Remove">&times;</button></li>
    </template></ul>
    <p class="empty">Nothing to do. Only you see this list: log in elsewhere as
      someone else and theirs is empty.</p>"""

LOGGED_OUT = """<p class="hint">Private to each user. Log in with any name (no password:
      this is a demo) to get your own list.</p>
    {warning}<form class="row" method="post" action="/login">
      <input type="text" name="name" required maxlength="40" autocomplete="username"
        placeholder="Your name" aria-label="your name"><button>Log in</button>
    </form>"""


def render(user: str | None, counter: str, *, bad_login: bool = False) -> str:
    """The page for ``user`` (``None``: a visitor); ``counter`` is the counter's markup."""
    if user is None:
        warning = (
            '<p class="warn">A name is 1 to 40 printable characters.</p>\n    ' if bad_login else ""
        )
        todos = LOGGED_OUT.format(warning=warning)
    else:
        todos = LOGGED_IN.format(name=escape(user))
    return PAGE.format(style=STYLE, counter=counter, todos=todos)
