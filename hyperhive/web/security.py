"""The dashboard's request checks, as pure functions (docs/web-ui.md, "Security model").

- **Bind**: loopback by default. Any other address needs an operator token (`check_bind`),
  which every request must then carry (the `hh_session` cookie set by `/login`, or an
  ``Authorization: Bearer`` header).
- **Host** (DNS rebinding): a page on an attacker's domain that resolves to 127.0.0.1 still
  sends its own name in ``Host``; only the names of the bind are accepted (`host_allowed`).
- **Same origin**: a state-changing request is refused unless the browser says it came from
  this origin (``Sec-Fetch-Site: same-origin``, or an ``Origin`` equal to this one); a request
  that says neither is refused too (`same_origin_refusal`).
- **Content-Security-Policy** and friends on every response (`SECURITY_HEADERS`): scripts,
  styles and connections from this origin only, no inline script, no eval, no frames.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import TYPE_CHECKING, Final

import attrs

from hyperhive.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "COOKIE",
    "CSP",
    "SAFE_METHODS",
    "SECURITY_HEADERS",
    "Bind",
    "check_bind",
    "host_allowed",
    "is_loopback",
    "parse_bind",
    "same_origin_refusal",
    "token_matches",
]

COOKIE: Final = "hh_session"
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS: Final[dict[str, str]] = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
_LOOPBACK_NAMES: Final = ("localhost", "127.0.0.1", "[::1]")


@attrs.frozen
class Bind:
    """Where the dashboard listens (`--dashboard HOST:PORT`)."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_bind(text: str) -> Bind:
    """`HOST:PORT` (IPv6 in brackets) into a `Bind`.

    Raises:
        ConfigError: not HOST:PORT, or a port outside 0-65535.
    """
    host, sep, port_text = text.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ConfigError(f"--dashboard takes HOST:PORT (like 127.0.0.1:7000), not {text!r}")
    return Bind(host, int(port_text))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(bind: Bind, token: str | None) -> None:
    """Refuse a bind beyond loopback without an operator token.

    Raises:
        ConfigError: a non-loopback bind and no token (or one too short to resist guessing).
    """
    if token is not None and len(token) < 16:
        raise ConfigError("the dashboard token must be at least 16 characters")
    if not is_loopback(bind.host) and token is None:
        raise ConfigError(
            f"the dashboard on {bind} would be reachable from other machines; set an operator "
            "token (HYPERHIVE_DASHBOARD_TOKEN or --dashboard-token-file) or bind 127.0.0.1"
        )


def _names(bind: Bind) -> list[str]:
    if is_loopback(bind.host):
        return list(_LOOPBACK_NAMES)
    return [f"[{bind.host}]" if ":" in bind.host else bind.host]


def host_allowed(host_header: str | None, bind: Bind, extra_names: tuple[str, ...] = ()) -> bool:
    """Whether ``Host`` names this dashboard (a DNS-rebinding page sends its own name).

    A wildcard bind (0.0.0.0, ::) accepts any IP literal plus `extra_names`; it always has a
    token, which a rebinding page cannot send.
    """
    if not host_header:
        return False
    host = host_header.strip().lower()
    name, _, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
    if not name:
        name, port = host, ""
    if port and port != str(bind.port):
        return False
    if name in (n.lower() for n in (*_names(bind), *extra_names)):
        return True
    if bind.host in ("0.0.0.0", "::"):
        try:
            ipaddress.ip_address(name.removeprefix("[").removesuffix("]"))
        except ValueError:
            return False
        return True
    return False


def same_origin_refusal(method: str, headers: Mapping[str, str], host: str) -> str | None:
    """Why a request must be refused as cross-origin, or None.

    Safe methods pass. Otherwise ``Sec-Fetch-Site`` (sent by every current browser) must be
    ``same-origin``; without it, ``Origin`` must be this origin.
    """
    if method.upper() in SAFE_METHODS:
        return None
    site = headers.get("sec-fetch-site")
    if site is not None:
        return None if site == "same-origin" else f"cross-site request refused ({site})"
    origin = headers.get("origin")
    if origin is None:
        return "request refused: it says neither Sec-Fetch-Site nor Origin"
    if origin.lower() not in (f"http://{host.lower()}", f"https://{host.lower()}"):
        return "cross-origin request refused"
    return None


def token_matches(token: str | None, offered: str | None) -> bool:
    """Constant-time comparison; no token configured means every request passes."""
    if token is None:
        return True
    return offered is not None and hmac.compare_digest(token.encode(), offered.encode())
