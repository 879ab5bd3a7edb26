"""Every type that crosses a process boundary, and the one converter that encodes them.

Framing: one JSON object per line (UTF-8, ``\\n``-terminated). Requests are tagged by ``cmd``
(snake_case); responses are one flat object::

    {"version": 1, "ok": true, "error": null, ...payload keys}

Unknown keys are tolerated in both directions, so an older client keeps working against a newer
daemon. The package, by what it holds:

- `commands`: the command table, the protocol's single source (each command and its reply);
- `replies`: response payloads; `rows`: stored rows (messages, questions, reminders, views);
- `events`: dashboard events; `helper_events`: what the hive tells an agent in its inbox;
- `harness`: the host <-> harness contract (environment, sentinel files);
- `page`: the agent's page socket (what the daemon asks a harness, what it may answer);
- `codec`: the one private converter behind ``encode_*`` / ``decode_*``; `framing`: lines.

Everything public is re-exported here (``from hyperhive import wire; wire.Send(...)``).
"""

from __future__ import annotations

from hyperhive.wire import _bounds, _table, codec, framing
from hyperhive.wire import events as _events
from hyperhive.wire import harness as _harness
from hyperhive.wire import helper_events as _helper_events
from hyperhive.wire import page as _page
from hyperhive.wire import replies as _replies
from hyperhive.wire import rows as _rows
from hyperhive.wire._bounds import *  # noqa: F403
from hyperhive.wire._table import *  # noqa: F403
from hyperhive.wire.codec import *  # noqa: F403
from hyperhive.wire.commands import *  # noqa: F403
from hyperhive.wire.events import *  # noqa: F403
from hyperhive.wire.framing import *  # noqa: F403
from hyperhive.wire.harness import *  # noqa: F403
from hyperhive.wire.helper_events import *  # noqa: F403
from hyperhive.wire.page import *  # noqa: F403
from hyperhive.wire.replies import *  # noqa: F403
from hyperhive.wire.rows import *  # noqa: F403

# Derived, not listed: whatever each module exports (commands: one name per declared command).
__all__ = sorted(
    {
        *_bounds.__all__,
        *codec.__all__,
        *_table.__all__,
        "REQUESTS",
        *(command.request.__name__ for command in _table.COMMANDS.values()),
        *_events.__all__,
        *framing.__all__,
        *_harness.__all__,
        *_helper_events.__all__,
        *_page.__all__,
        *_replies.__all__,
        *_rows.__all__,
    }
)
