"""Every type that crosses a process boundary, and the one converter that encodes them.

Framing: one JSON object per line (UTF-8, ``\\n``-terminated). Requests are tagged by ``cmd``
(snake_case); responses are one flat object::

    {"version": 1, "ok": true, "error": null, ...payload keys}

Unknown keys are tolerated in both directions, so an older client keeps working against a newer
daemon. The package, by what it holds:

- `commands`: the command table, the protocol's single source (each command and its reply);
  `turn`: the three commands a harness sends on its own (recv, ack_turn, requeue_inflight);
- `replies`: response payloads; `rows`: stored rows (questions, reminders, views); `mail`: a
  message and its delivery;
- `events`: dashboard events; `helper_events`: what the hive tells an agent in its inbox;
- `harness`: the host <-> harness contract (environment, sentinel files);
- `page`: the agent's page socket (what the daemon asks a harness, what it may answer);
- `codec`: the one private converter behind ``encode_*`` / ``decode_*``; `framing`: lines.

Everything public is re-exported here (``from hyperhive import wire; wire.Send(...)``); the
first such attribute loads every module. Importing the package itself loads none of them, so a
process that needs a few (an agent's harness at start, docs/performance.md) imports those
submodules by name (``from hyperhive.wire.mail import Message``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from hyperhive.wire import _bounds as _bounds
    from hyperhive.wire import _table as _table
    from hyperhive.wire import codec as codec
    from hyperhive.wire import framing as framing
    from hyperhive.wire._bounds import *  # noqa: F403
    from hyperhive.wire._table import *  # noqa: F403
    from hyperhive.wire.codec import *  # noqa: F403
    from hyperhive.wire.commands import *  # noqa: F403
    from hyperhive.wire.events import *  # noqa: F403
    from hyperhive.wire.framing import *  # noqa: F403
    from hyperhive.wire.harness import *  # noqa: F403
    from hyperhive.wire.helper_events import *  # noqa: F403
    from hyperhive.wire.mail import *  # noqa: F403
    from hyperhive.wire.page import *  # noqa: F403
    from hyperhive.wire.replies import *  # noqa: F403
    from hyperhive.wire.rows import *  # noqa: F403
    from hyperhive.wire.turn import *  # noqa: F403

    __all__: list[str]

_MODULES: Final = (
    "_bounds",
    "_table",
    "codec",
    "commands",
    "events",
    "framing",
    "harness",
    "helper_events",
    "mail",
    "page",
    "replies",
    "rows",
    "turn",
)


def _load() -> None:
    """Import every module and re-export what each exports (commands: one name per command)."""
    exported: set[str] = set()
    for name in _MODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        names = getattr(module, "__all__", ())
        if name == "commands":
            names = ("REQUESTS", *(entry.request.__name__ for entry in module.COMMANDS.values()))
        globals().update({attr: getattr(module, attr) for attr in names})
        exported.update(names)
    globals()["__all__"] = sorted(exported)


if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        if name in _MODULES:  # `from hyperhive.wire import page` loads that module alone
            return importlib.import_module(f"{__name__}.{name}")
        if "__all__" not in globals():
            _load()
            if name in globals():
                return globals()[name]
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
