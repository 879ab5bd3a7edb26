"""Every type that crosses a process boundary, and the one converter that encodes them.

Framing: one JSON object per line (UTF-8, ``\\n``-terminated). Requests are tagged by ``cmd``
(snake_case); responses are one flat object::

    {"version": 1, "ok": true, "error": null, ...payload keys}

Unknown keys are tolerated in both directions, so an older client keeps working against a newer
daemon. Tags live in explicit tables (``REQUESTS``, ``EVENTS``): renaming a class never changes
the wire. ``encode_*`` / ``decode_*`` are the only entry points; a malformed line becomes a
``BadRequest`` whose text names the offending field, never a stray exception.

The same attrs classes describe the sqlite rows the broker hands out (``Message``,
``Delivery``, ``DeadLetter``), so a row and its JSON form cannot drift apart.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.preconf.json import make_converter

from hyperhive.errors import BadRequest, LineTooLong, RemoteError

if TYPE_CHECKING:
    import trio

__all__ = [
    "EVENTS",
    "MAX_LINE_BYTES",
    "PROTOCOL_VERSION",
    "REQUESTS",
    "AckTurn",
    "Acked",
    "ActorInfo",
    "AgentList",
    "AgentRegistered",
    "AgentUnregistered",
    "Agents",
    "DeadLetter",
    "DeadLetters",
    "Delivery",
    "DropDead",
    "Empty",
    "Event",
    "EventGap",
    "EventPayload",
    "History",
    "HistoryReply",
    "Inbox",
    "InboxReply",
    "LineReader",
    "ListAgents",
    "ListDeadLetters",
    "Message",
    "MessageDeadLettered",
    "MessageDelivered",
    "MessageSent",
    "Messages",
    "Recv",
    "RegisterAgent",
    "ReplayDead",
    "Request",
    "RequeueInflight",
    "Requeued",
    "Send",
    "Sent",
    "Status",
    "StatusReply",
    "Subscribe",
    "UnregisterAgent",
    "decode_event",
    "decode_request",
    "decode_response",
    "encode_error",
    "encode_event",
    "encode_request",
    "encode_response",
    "to_json",
]

PROTOCOL_VERSION: Final = 1
# One request line may carry a message body; 1 MiB is far above any sane chat message and far
# below what would let one client balloon the daemon's memory.
MAX_LINE_BYTES: Final = 1024 * 1024

# --------------------------------------------------------------------------------------------
# Stored rows
# --------------------------------------------------------------------------------------------


@attrs.frozen
class Message:
    """A message as stored: who sent it to whom, and when (wall-clock unix seconds)."""

    id: int
    sender: str
    recipient: str
    body: str
    sent_at: float


@attrs.frozen
class Delivery:
    """A message handed to its recipient; in flight until the recipient's turn is acked.

    ``attempt`` counts deliveries of this row (1 on the first); ``redelivered`` is true when an
    earlier delivery was never acked (the harness restarted mid-turn).
    """

    id: int
    sender: str
    recipient: str
    body: str
    sent_at: float
    attempt: int
    redelivered: bool


@attrs.frozen
class DeadLetter:
    """A message parked after too many unacked deliveries, waiting for the operator."""

    id: int
    sender: str
    recipient: str
    body: str
    sent_at: float
    attempts: int
    dead_at: float


# --------------------------------------------------------------------------------------------
# Requests (tag: "cmd")
# --------------------------------------------------------------------------------------------


@attrs.frozen
class Status:
    """Admin: the live actor tree with each actor's statistics."""


@attrs.frozen
class Send:
    """Send ``body`` to agent ``to`` (or to ``operator``)."""

    to: str
    body: str


@attrs.frozen
class Recv:
    """Long-poll for up to ``max`` messages, waiting at most ``wait_seconds`` for the first."""

    wait_seconds: float = 0.0
    max: int = 1


@attrs.frozen
class AckTurn:
    """Ack every message delivered to the caller and not yet acked (its turn ended well)."""


@attrs.frozen
class RequeueInflight:
    """Put every unacked delivery back in the caller's inbox (a harness starting up)."""


@attrs.frozen
class RegisterAgent:
    """Admin: make ``name`` a known agent with its own socket."""

    name: str


@attrs.frozen
class UnregisterAgent:
    """Admin: forget ``name`` and close its socket (its messages stay on disk)."""

    name: str


@attrs.frozen
class ListAgents:
    """Admin: the registered agents."""


@attrs.frozen
class Inbox:
    """Admin: the newest messages agents sent to the operator."""

    limit: int = 50


@attrs.frozen
class ListDeadLetters:
    """Admin: dead-lettered messages, optionally for one recipient."""

    recipient: str | None = None


@attrs.frozen
class ReplayDead:
    """Admin: put a dead letter back in its recipient's inbox with a fresh attempt count."""

    id: int


@attrs.frozen
class DropDead:
    """Admin: delete a dead letter for good."""

    id: int


@attrs.frozen
class History:
    """Dashboard events still in the hub's history, with the seq they are current to."""

    limit: int = 200


@attrs.frozen
class Subscribe:
    """Turn this connection into a live feed of dashboard events, one per line."""


Request = (
    Status
    | Send
    | Recv
    | AckTurn
    | RequeueInflight
    | RegisterAgent
    | UnregisterAgent
    | ListAgents
    | Inbox
    | ListDeadLetters
    | ReplayDead
    | DropDead
    | History
    | Subscribe
)

REQUESTS: Final[dict[str, type[Any]]] = {
    "status": Status,
    "send": Send,
    "recv": Recv,
    "ack_turn": AckTurn,
    "requeue_inflight": RequeueInflight,
    "register_agent": RegisterAgent,
    "unregister_agent": UnregisterAgent,
    "list_agents": ListAgents,
    "inbox": Inbox,
    "dead_letters": ListDeadLetters,
    "replay_dead": ReplayDead,
    "drop_dead": DropDead,
    "history": History,
    "subscribe": Subscribe,
}
_CMD_OF: Final = {cls: cmd for cmd, cls in REQUESTS.items()}

# --------------------------------------------------------------------------------------------
# Response payloads (flattened into the envelope)
# --------------------------------------------------------------------------------------------


@attrs.frozen
class Empty:
    """A success with nothing to say."""


@attrs.frozen
class ActorInfo:
    """One node of the actor tree as ``status`` reports it."""

    id: str
    kind: str  # "supervisor" | "actor"
    state: str
    restarts: int
    last_error: str | None = None
    queue_depth: int | None = None
    queue_capacity: int | None = None
    strategy: str | None = None
    children: tuple[ActorInfo, ...] = ()


@attrs.frozen
class StatusReply:
    pid: int
    state_dir: str
    uptime_seconds: float
    tree: ActorInfo


@attrs.frozen
class Sent:
    id: int


@attrs.frozen
class Messages:
    messages: tuple[Delivery, ...]


@attrs.frozen
class Acked:
    count: int


@attrs.frozen
class Requeued:
    count: int


@attrs.frozen
class Agents:
    agents: tuple[str, ...]


AgentList = Agents


@attrs.frozen
class InboxReply:
    messages: tuple[Message, ...]


@attrs.frozen
class DeadLetters:
    letters: tuple[DeadLetter, ...]


@attrs.frozen
class HistoryReply:
    seq: int
    events: tuple[Event, ...]


# --------------------------------------------------------------------------------------------
# Dashboard events (tag: "kind"), each framed in an Event with its seq
# --------------------------------------------------------------------------------------------


@attrs.frozen
class MessageSent:
    message: Message


@attrs.frozen
class MessageDelivered:
    id: int
    recipient: str
    attempt: int


@attrs.frozen
class MessageDeadLettered:
    id: int
    recipient: str
    attempts: int


@attrs.frozen
class AgentRegistered:
    name: str


@attrs.frozen
class AgentUnregistered:
    name: str


@attrs.frozen
class EventGap:
    """A subscriber fell behind and missed the events ``first_seq..last_seq`` (inclusive)."""

    first_seq: int
    last_seq: int


EventPayload = (
    MessageSent
    | MessageDelivered
    | MessageDeadLettered
    | AgentRegistered
    | AgentUnregistered
    | EventGap
)

EVENTS: Final[dict[str, type[Any]]] = {
    "sent": MessageSent,
    "delivered": MessageDelivered,
    "dead_lettered": MessageDeadLettered,
    "agent_registered": AgentRegistered,
    "agent_unregistered": AgentUnregistered,
    "gap": EventGap,
}
_KIND_OF: Final = {cls: kind for kind, cls in EVENTS.items()}


@attrs.frozen
class Event:
    """One frame of the dashboard stream: a per-process monotonic ``seq``, a wall-clock stamp."""

    seq: int
    at: float
    payload: EventPayload


# --------------------------------------------------------------------------------------------
# The converter
# --------------------------------------------------------------------------------------------

_T = TypeVar("_T")
_converter = make_converter()


def _strict(kind: type[Any], *, reject: tuple[type[Any], ...] = ()) -> None:
    """Refuse silent coercions: cattrs would turn 5 into "5" and "5" into 5."""

    def structure(value: Any, _: Any) -> Any:
        if not isinstance(value, kind) or isinstance(value, reject):
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
        return value

    _converter.register_structure_hook(kind, structure)


_strict(str)
_strict(bool)
_strict(int, reject=(bool,))


def _structure_float(value: Any, _: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(f"expected number, got {type(value).__name__}")
    return float(value)


_converter.register_structure_hook(float, _structure_float)


def _structure_payload(value: Any, _: Any) -> Any:
    if not isinstance(value, Mapping):
        raise TypeError(f"expected object, got {type(value).__name__}")
    cls = EVENTS.get(value.get("kind"))  # type: ignore[arg-type]
    if cls is None:
        raise ValueError(f"unknown event kind {value.get('kind')!r}")
    return _converter.structure(value, cls)


def _unstructure_payload(value: Any) -> dict[str, Any]:
    fields: dict[str, Any] = _converter.unstructure(value)
    return {"kind": _KIND_OF[type(value)], **fields}


_converter.register_structure_hook(EventPayload, _structure_payload)


def _event_unstructure(event: Event) -> dict[str, Any]:
    return {"seq": event.seq, "at": event.at, **_unstructure_payload(event.payload)}


def _event_structure(value: Any, _: Any) -> Event:
    if not isinstance(value, Mapping):
        raise TypeError(f"expected object, got {type(value).__name__}")
    return Event(
        seq=_converter.structure(value.get("seq"), int),
        at=_converter.structure(value.get("at"), float),
        payload=_structure_payload(value, None),
    )


_converter.register_unstructure_hook(Event, _event_unstructure)
_converter.register_structure_hook(Event, _event_structure)
# Field names on the wire match the attribute names, except where Python keywords get in the way.
_FROM, _TO = override(rename="from"), override(rename="to")
for _row in (Message, Delivery, DeadLetter):
    _converter.register_unstructure_hook(
        _row, make_dict_unstructure_fn(_row, _converter, sender=_FROM, recipient=_TO)
    )
    _converter.register_structure_hook(
        _row, make_dict_structure_fn(_row, _converter, sender=_FROM, recipient=_TO)
    )


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode() + b"\n"


def _loads(line: bytes | str) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise BadRequest(f"expected a JSON object, got {type(obj).__name__}")
    return obj


def _structure(obj: Any, cls: type[_T]) -> _T:
    try:
        return _converter.structure(obj, cls)
    except cattrs.BaseValidationError as exc:
        problems = "; ".join(cattrs.transform_error(exc, path=""))
        raise BadRequest(f"bad {_name(cls)}: {problems}") from None
    except (TypeError, ValueError, KeyError) as exc:
        raise BadRequest(f"bad {_name(cls)}: {exc}") from None


def _name(cls: type[Any]) -> str:
    return _CMD_OF.get(cls) or _KIND_OF.get(cls) or cls.__name__


def to_json(value: Any) -> Any:
    """The plain-JSON form of any wire value (for HTTP bodies and tests)."""
    return _converter.unstructure(value)


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


def encode_request(request: Request) -> bytes:
    """One request line: ``{"cmd": ..., **fields}\\n``."""
    return _dumps({"cmd": _CMD_OF[type(request)], **_converter.unstructure(request)})


def decode_request(line: bytes | str) -> Request:
    """Parse one request line.

    Raises:
        BadRequest: invalid JSON, no or unknown ``cmd``, or fields of the wrong type; the text
            says which.
    """
    obj = _loads(line)
    cmd = obj.pop("cmd", None)
    if not isinstance(cmd, str):
        raise BadRequest('missing "cmd": every request is a JSON object with a "cmd" string')
    cls = REQUESTS.get(cmd)
    if cls is None:
        known = ", ".join(sorted(REQUESTS))
        raise BadRequest(f"unknown cmd {cmd!r}; known commands: {known}")
    request: Request = _structure(obj, cls)
    return request


def encode_response(payload: object | None = None) -> bytes:
    """A success: the envelope with ``payload``'s fields flattened beside it."""
    fields = {} if payload is None else _converter.unstructure(payload)
    return _dumps({"version": PROTOCOL_VERSION, "ok": True, "error": None, **fields})


def encode_error(message: str) -> bytes:
    """A failure the client can show as is."""
    return _dumps({"version": PROTOCOL_VERSION, "ok": False, "error": message})


def decode_response(line: bytes | str, cls: type[_T]) -> _T:
    """Parse a response line into ``cls``.

    Raises:
        RemoteError: the daemon answered ``ok: false``.
        BadRequest: the line is not a response of that shape.
    """
    obj = _loads(line)
    if not obj.get("ok", False):
        raise RemoteError(str(obj.get("error") or "request failed"))
    for key in ("version", "ok", "error"):
        obj.pop(key, None)
    return _structure(obj, cls)


def encode_event(event: Event) -> bytes:
    """One feed line for a subscriber."""
    return _dumps(_converter.unstructure(event))


def decode_event(line: bytes | str) -> Event:
    """Parse one feed line."""
    return _structure(_loads(line), Event)


# --------------------------------------------------------------------------------------------
# Framing
# --------------------------------------------------------------------------------------------

_RECEIVE_SIZE: Final = 64 * 1024


class LineReader:
    """Reads ``\n``-terminated lines from a trio stream, each at most ``max_bytes`` long.

    A line past the cap is not buffered: its bytes are discarded up to the next newline and
    `read_line` raises `LineTooLong`, after which the reader is positioned at the next line, so
    the connection stays usable.
    """

    def __init__(self, stream: trio.abc.ReceiveStream, max_bytes: int = MAX_LINE_BYTES) -> None:
        self._stream = stream
        self._max = max_bytes
        self._buffer = bytearray()
        self._scanned = 0  # bytes of _buffer already known to hold no newline
        self._eof = False

    async def read_line(self) -> bytes | None:
        """The next line without its newline, or None at a clean end of stream.

        A final line without a newline is returned as a line.

        Raises:
            LineTooLong: the line exceeded the cap (already skipped).

        Cancellation: a checkpoint; buffered bytes are kept, so a cancelled read loses nothing.
        """
        while True:
            end = self._buffer.find(b"\n", self._scanned)
            if end >= 0:
                return self._take(end)
            self._scanned = len(self._buffer)
            if self._scanned > self._max:
                await self._skip_line()
                raise LineTooLong(f"line longer than {self._max} bytes was discarded")
            if self._eof:
                return self._take_rest()
            await self._fill()

    def _take(self, end: int) -> bytes:
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        self._scanned = 0
        if len(line) > self._max:
            raise LineTooLong(f"line longer than {self._max} bytes was discarded")
        return line

    def _take_rest(self) -> bytes | None:
        if not self._buffer:
            return None
        line = bytes(self._buffer)
        self._buffer.clear()
        self._scanned = 0
        return line

    async def _fill(self) -> None:
        data = await self._stream.receive_some(_RECEIVE_SIZE)
        if not data:
            self._eof = True
        self._buffer += data

    async def _skip_line(self) -> None:
        while (end := self._buffer.find(b"\n")) < 0 and not self._eof:
            self._buffer.clear()
            await self._fill()
        del self._buffer[: end + 1 if end >= 0 else len(self._buffer)]
        self._scanned = 0
