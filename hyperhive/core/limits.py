"""Resource limits: what one agent may consume, and what the operator sees when it hits one.

Every bound an agent can run into is a field of `Limits` (docs/limits.md lists them with their
defaults and errors); `hyperhive serve --limit NAME=VALUE` overrides any of them. The actors
that enforce them (the broker, questions, reminders, the listeners) report each refusal to one
`LimitLog`, which

- publishes a `wire.LimitHit` event (at most one per agent and limit every `QUIET_SECONDS`,
  so an agent hammering a limit cannot flood the event stream), and
- keeps a note per agent and limit for `NOTE_SECONDS`, shown in that agent's `list` row.

The operator and the hive itself (`wire.HELPER_SENDER`) are not rate- or inbox-limited: the
limits are about what an agent can do to the rest of the hive.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import attrs
import trio

from hyperhive import wire
from hyperhive.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = [
    "NOTE_SECONDS",
    "QUIET_SECONDS",
    "UNLIMITED_SENDERS",
    "LimitLog",
    "Limits",
    "TokenBucket",
]

QUIET_SECONDS: Final = 60.0
NOTE_SECONDS: Final = 600.0
UNLIMITED_SENDERS: Final = frozenset({"operator", wire.HELPER_SENDER})


def _positive(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not value > 0:
        raise ConfigError(f"limit {attribute.name} must be more than 0, got {value}")


@attrs.frozen
class Limits:
    """The configurable bounds (defaults in docs/limits.md)."""

    max_body_bytes: int = attrs.field(default=256 * 1024, validator=_positive)
    send_rate: float = attrs.field(default=1000.0, validator=_positive)  # messages/s, sustained
    send_burst: int = attrs.field(default=5000, validator=_positive)  # sent at once, then the rate
    inbox_messages: int = attrs.field(default=10_000, validator=_positive)  # unacked, per recipient
    pending_reminders: int = attrs.field(default=500, validator=_positive)  # per agent
    open_questions: int = attrs.field(default=100, validator=_positive)  # asked by one agent
    connections: int = attrs.field(default=64, validator=_positive)  # per agent (and manager)
    parked_recvs: int = attrs.field(default=8, validator=_positive)  # waiting recvs per agent
    history_events: int = attrs.field(default=1000, validator=_positive)  # the hub remembers
    history_reply_bytes: int = attrs.field(default=1024 * 1024, validator=_positive)
    preview_chars: int = attrs.field(default=500, validator=_positive)  # text kept per event

    @classmethod
    def parse(cls, settings: Iterable[str]) -> Limits:
        """Limits from ``NAME=VALUE`` strings (``--limit``, ``HYPERHIVE_LIMITS``).

        Raises:
            ConfigError: an unknown name, a value that is not a positive number.
        """
        fields = {field.name: field for field in attrs.fields(cls)}
        values: dict[str, float] = {}
        for setting in settings:
            name, sep, text = setting.partition("=")
            name = name.strip().replace("-", "_")
            if not sep or name not in fields:
                known = ", ".join(fields)
                raise ConfigError(f"unknown limit {setting!r}; use NAME=VALUE with one of: {known}")
            kind = int if fields[name].type in (int, "int") else float
            try:
                values[name] = kind(text.strip())
            except ValueError:
                raise ConfigError(f"limit {name} needs a number, got {text!r}") from None
        return cls(**values)  # type: ignore[arg-type]


class TokenBucket:
    """`rate` tokens a second up to `burst`; `take` spends one if there is one."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._at = now

    def take(self, now: float) -> bool:
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


class LimitLog:
    """Who hit which limit lately: events for the operator, notes for `list` (module doc)."""

    def __init__(
        self,
        publish: Callable[[wire.EventPayload], None],
        *,
        now: Callable[[], float] = trio.current_time,
    ) -> None:
        self._publish = publish
        self._now = now
        self._notes: dict[str, dict[str, tuple[str, float]]] = {}
        self._announced: dict[tuple[str, str], float] = {}

    def hit(self, agent: str, limit: str, detail: str) -> None:
        """Record that `agent` ran into `limit`; `detail` says how, in a few words."""
        now = self._now()
        self._notes.setdefault(agent, {})[limit] = (detail, now)
        last = self._announced.get((agent, limit))
        if last is None or now - last >= QUIET_SECONDS:
            self._announced[(agent, limit)] = now
            self._publish(wire.LimitHit(agent, limit, detail))

    def notes(self, agent: str) -> tuple[str, ...]:
        """The limits `agent` hit within the last `NOTE_SECONDS`, for its `list` row."""
        now = self._now()
        notes = self._notes.get(agent, {})
        for limit, (_, at) in list(notes.items()):
            if now - at > NOTE_SECONDS:
                del notes[limit]
        return tuple(f"hit limit {limit}: {detail}" for limit, (detail, _) in sorted(notes.items()))
