"""The operator's dashboard and its shared front-end assets (docs/web-ui.md).

`create_app` (app.py) builds the quart-trio app over `DashboardOps` (ops.py, every call into the
hive); `Dashboard` (serve.py) runs it as a supervised child through hypercorn; `security.py`
holds the request checks; `sse.py` the event stream; `assets/` the page (the original's
hive-fr0nt: one palette, one terminal component, vendored third-party code in
`assets/vendor/`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hyperhive.web.app import WebSettings, create_app
from hyperhive.web.ops import ApprovalDesk, ApprovalView, DashboardOps, HiveApprovals
from hyperhive.web.security import Bind, check_bind, parse_bind
from hyperhive.web.serve import Dashboard, bind_dashboard

if TYPE_CHECKING:
    from collections.abc import Callable

    from actors import ChildSpec
    from hyperhive.core.handles import Handles

__all__ = [
    "DEFAULT_BIND",
    "ApprovalDesk",
    "ApprovalView",
    "Bind",
    "Dashboard",
    "DashboardOps",
    "HiveApprovals",
    "WebSettings",
    "bind_dashboard",
    "check_bind",
    "create_app",
    "dashboard_child",
    "parse_bind",
]

DEFAULT_BIND = "127.0.0.1:7000"


def dashboard_child(
    bind: Bind, *, token: str | None = None, on_bound: Callable[[Dashboard], None] | None = None
) -> Callable[[Handles], ChildSpec]:
    """A daemon child factory: binds `bind` (when the daemon is built) and serves the app.

    Raises (from the factory):
        ConfigError: a non-loopback bind without a token, or the port cannot be bound.
    """
    check_bind(bind, token)

    def make(handles: Handles) -> ChildSpec:
        sock = bind_dashboard(bind)
        bound = Bind(bind.host, sock.getsockname()[1])  # port 0: the one the kernel picked
        dashboard = Dashboard(DashboardOps(handles), WebSettings(bound, token), sock)
        handles.urls.serve_home(dashboard.url)
        if on_bound is not None:
            on_bound(dashboard)
        return dashboard.child()

    return make
