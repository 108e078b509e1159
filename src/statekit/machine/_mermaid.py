"""Drawing a machine as a Mermaid ``stateDiagram-v2`` (no graphviz needed)."""

from __future__ import annotations

import re
from typing import Any

from ._definition import Definition

__all__ = ["render"]

_SAFE = re.compile(r"[^A-Za-z0-9_]")


def render(definition: Definition, current: Any) -> str:
    """Return Mermaid source for ``definition`` with ``current`` highlighted."""
    lines = ["stateDiagram-v2"]
    node: dict[Any, str] = {}
    used: set[str] = set()
    for state in definition.states:
        label = definition.ids[state]
        safe = _SAFE.sub("_", label) or "state"
        if safe[0].isdigit():
            safe = "s_" + safe
        base, n = safe, 1
        while safe in used:  # two labels that sanitize alike get distinct ids
            n += 1
            safe = f"{base}_{n}"
        used.add(safe)
        node[state] = safe
        if safe != label:
            lines.append(f'    state "{_escape(label)}" as {safe}')
    lines.append(f"    [*] --> {node[definition.initial]}")
    for edge in definition.edges:
        arrow = f"    {node[edge.source]} --> {node[edge.target]}"
        label = edge.event or ""
        if edge.guard_names:
            label += f" [{' and '.join(edge.guard_names)}]"
        lines.append(f"{arrow} : {_escape(label.strip())}" if label else arrow)
    for state in definition.states:
        if state in definition.finals:
            lines.append(f"    {node[state]} --> [*]")
    lines.append("    classDef current fill:#ffd54f,stroke:#e65100,stroke-width:3px")
    lines.append(f"    class {node[current]} current")
    return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    # Quotes and newlines would end a label; angle brackets read as HTML.
    return text.replace('"', "'").replace("\n", " ").replace("<", "\u2039").replace(">", "\u203a")
