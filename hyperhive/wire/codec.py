"""The one converter: encoding and decoding every wire type, and nothing else.

``encode_*`` / ``decode_*`` are the only way in or out; nobody calls cattrs directly. A
malformed line becomes a ``BadRequest`` whose text names the offending field, never a stray
exception. Decoding is strict: no silent coercions (``5`` where a string belongs is refused),
no NaN or infinity, and every request field is checked against its declared bound
(`hyperhive.wire._bounds`).
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import typing
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, TypeVar

import attrs
import cattrs
import cattrs.v
import orjson
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.preconf.json import make_converter

from hyperhive.errors import BadRequest, RemoteError
from hyperhive.wire._bounds import (
    MAX_LINE_BYTES,
    MAX_NESTING,
    PROTOCOL_VERSION,
    STRICT,
    Bound,
    field_bounds,
)
from hyperhive.wire._table import COMMANDS, VARIANTS, Request, command_of, reply_type
from hyperhive.wire.harness import (
    LIVE_EVENTS,
    MAX_REPORT_BYTES,
    TURN_STATES,
    AgentReport,
    LiveEventPayload,
    StreamLine,
)
from hyperhive.wire.mail import Delivery, Message

if TYPE_CHECKING:
    from hyperhive.wire.events import Event
    from hyperhive.wire.helper_events import HelperEvent
    from hyperhive.wire.page import PageEvent, PageRequest

__all__ = [
    "decode_event",
    "decode_helper_event",
    "decode_page_event",
    "decode_page_reply",
    "decode_page_request",
    "decode_reply",
    "decode_report",
    "decode_request",
    "decode_response",
    "encode_error",
    "encode_event",
    "encode_helper_event",
    "encode_live_event",
    "encode_page_error",
    "encode_page_reply",
    "encode_page_request",
    "encode_report",
    "encode_request",
    "encode_response",
    "encode_sent",
    "from_json",
    "request_from_fields",
    "to_json",
]

R = TypeVar("R")
_T = TypeVar("_T")
_converter = make_converter()
# The codec loads only the wire modules the harness needs at start (mail, harness); the others
# (commands, rows, events, helper events, page) are loaded by whoever uses their types, and their
# hooks below name them by module (`_defined_in`) or are built on first use (docs/performance.md).
_EVENTS: Final = "hyperhive.wire.events"


def _defined_in(module: str, name: str) -> Callable[[Any], bool]:
    """A hook predicate for the type `module.name`, without importing `module`: a value of that
    type exists only once its module is loaded."""

    def matches(kind: Any) -> bool:
        loaded = sys.modules.get(module)
        return loaded is not None and kind == getattr(loaded, name)

    return matches


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
    if not math.isfinite(value):
        # Python's json reads NaN and Infinity, which no timeout or stamp can mean.
        raise ValueError(f"expected a finite number, got {value}")
    return float(value)


_converter.register_structure_hook(float, _structure_float)
_default_strings = _converter.get_structure_hook(tuple[str, ...])


def _structure_strings(value: Any, cls: Any) -> tuple[str, ...]:
    # cattrs would iterate a string into its characters: "ab" must not become ("a", "b").
    if not isinstance(value, list | tuple):
        raise TypeError(f"expected array, got {type(value).__name__}")
    result: tuple[str, ...] = _default_strings(value, cls)
    return result


_converter.register_structure_hook_func(lambda t: t == tuple[str, ...], _structure_strings)


def _structure_payload(value: Any, _: Any) -> Any:
    from hyperhive.wire.events import EVENTS

    if not isinstance(value, Mapping):
        raise TypeError(f"expected object, got {type(value).__name__}")
    kind = value.get("kind")
    cls = EVENTS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"unknown event kind {value.get('kind')!r}")
    return _converter.structure(value, cls)


def _unstructure_payload(value: Any) -> dict[str, Any]:
    from hyperhive.wire.events import EVENTS

    fields: dict[str, Any] = _converter.unstructure(value)
    return {"kind": EVENTS.tag_of(type(value)), **fields}


def _event_unstructure(event: Event) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "at": event.at,
        "boot": event.boot,
        **_unstructure_payload(event.payload),
    }


def _event_structure(value: Any, _: Any) -> Event:
    from hyperhive.wire.events import Event

    if not isinstance(value, Mapping):
        raise TypeError(f"expected object, got {type(value).__name__}")
    return Event(
        seq=_converter.structure(value.get("seq"), int),
        at=_converter.structure(value.get("at"), float),
        payload=_structure_payload(value, None),
        boot=_converter.structure(value.get("boot", ""), str),  # older daemons sent none
    )


_converter.register_structure_hook_func(_defined_in(_EVENTS, "EventPayload"), _structure_payload)
_converter.register_unstructure_hook_func(_defined_in(_EVENTS, "Event"), _event_unstructure)
_converter.register_structure_hook_func(_defined_in(_EVENTS, "Event"), _event_structure)
# Field names on the wire match the attribute names, except where Python keywords get in the way.
_FROM, _TO = override(rename="from"), override(rename="to")
_is_dead_letter = _defined_in("hyperhive.wire.rows", "DeadLetter")


def _renamed(kind: Any) -> bool:
    return kind in (Message, Delivery) or _is_dead_letter(kind)


_converter.register_unstructure_hook_factory(
    _renamed,
    lambda row: make_dict_unstructure_fn(row, _converter, sender=_FROM, recipient=_TO),
)
_converter.register_structure_hook_factory(
    _renamed,
    lambda row: make_dict_structure_fn(row, _converter, sender=_FROM, recipient=_TO),
)


def _out_of_bounds(value: Any, bound: Bound) -> str | None:
    """What is wrong with a decoded field value, or None if it is inside its bound."""
    if bound.low is not None and bound.high is not None:
        if bound.low <= value <= bound.high:
            return None
        low, high = (_number_text(x) for x in (bound.low, bound.high))
        return f"must be from {low} to {high}"
    if isinstance(value, str):
        return _text_problem(value, bound.chars)
    if bound.items is not None and len(value) > bound.items:
        return f"has more than {bound.items} items"
    for item in value:
        if problem := _text_problem(item, bound.chars):
            return f"item {problem}"
    return None


def _number_text(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _text_problem(text: str, chars: int | None) -> str | None:
    if chars is not None and len(text) > chars:
        return f"is longer than {chars} characters"
    if not text.isascii():  # O(1) for ASCII, the common case
        try:
            text.encode()
        except UnicodeEncodeError:
            return "is not valid unicode text (it holds a lone surrogate)"
    return None


class _OutOfBounds(ValueError):
    """A decoded field outside its declared bound; its text names the field."""


def _format_problem(exc: BaseException, kind: type | None) -> str:
    # A bound inside a nested object (a lifecycle scope) keeps its own words.
    if isinstance(exc, _OutOfBounds):
        return str(exc)
    return cattrs.v.format_exception(exc, kind)


def _is_strict(kind: Any) -> bool:
    return isinstance(kind, type) and kind in STRICT


def _bounded(cls: type[Any]) -> Callable[[Any, Any], Any]:
    """The structure hook of a `STRICT` class: its declared field bounds are checked whenever
    it is decoded (not when code builds one). Built on the class's first decode."""
    for inner in _nested(cls):  # the values a command holds carry bounds too
        STRICT.add(inner)
    base = _converter.gen_structure_attrs_fromdict(cls)
    checks = [(name, _checker(bound)) for name, bound in field_bounds(cls).items()]
    if not checks:
        return base

    def structure(value: Any, _: Any) -> Any:
        obj = base(value, cls)
        for name, check in checks:
            field = getattr(obj, name)
            if field is not None and (problem := check(field)):
                raise _OutOfBounds(f"{name} {problem}")
        return obj

    return structure


def _checker(bound: Bound) -> Callable[[Any], str | None]:
    """A fast check for one bound: the common, valid case costs a comparison or two."""
    if bound.low is not None and bound.high is not None:
        low, high = bound.low, bound.high
        return lambda value: None if low <= value <= high else _out_of_bounds(value, bound)
    if bound.items is None:
        chars = bound.chars if bound.chars is not None else MAX_LINE_BYTES
        return lambda text: (
            None if len(text) <= chars and text.isascii() else _out_of_bounds(text, bound)
        )
    return lambda value: _out_of_bounds(value, bound)


def _nested(cls: type[Any]) -> set[type[Any]]:
    """The attrs classes a request's fields hold (a lifecycle scope), which carry bounds too."""
    found: set[type[Any]] = set()
    for hint in typing.get_type_hints(cls).values():
        for arg in (hint, *typing.get_args(hint)):
            if isinstance(arg, type) and attrs.has(arg):
                found.add(arg)
    return found


_converter.register_structure_hook_factory(_is_strict, _bounded)


def _nested_within(obj: Any, limit: int) -> bool:
    """Whether no list or object inside `obj` sits more than `limit` levels deep."""
    stack = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return False
        for child in value.values() if isinstance(value, dict) else value:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return True


def _json(obj: Any) -> bytes:
    """Compact JSON as UTF-8 bytes.

    orjson is several times faster than the stdlib encoder, which matters on the broker's hot
    path (every recv answer). It refuses what JSON cannot carry faithfully (lone surrogates,
    integers past 64 bits); the stdlib then encodes it with escapes, so nothing is refused that
    the stdlib would take. Non-finite floats, which no wire type may carry (decoders refuse
    them), come out as null rather than as JSON's invalid NaN.
    """
    try:
        return orjson.dumps(obj)
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def _dumps(obj: Any) -> bytes:
    return _json(obj) + b"\n"


def _loads(line: bytes | str) -> dict[str, Any]:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        # orjson is strict where the stdlib is lenient (lone surrogates, NaN); the stdlib's
        # verdict and wording decide, so orjson only ever makes good input faster.
        try:
            obj = json.loads(line)
        except RecursionError:
            raise BadRequest(f"not valid JSON: nested more than {MAX_NESTING} levels") from None
        except ValueError as exc:
            # JSONDecodeError, invalid UTF-8, and integers past Python's 4300-digit limit.
            if "integer string conversion" in str(exc):
                raise BadRequest("not valid JSON: an integer with more than 4300 digits") from None
            raise BadRequest(f"not valid JSON: {_clip(str(exc))}") from None
    if not isinstance(obj, dict):
        raise BadRequest(f"expected a JSON object, got {type(obj).__name__}")
    return obj


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _structure(obj: Any, cls: type[_T]) -> _T:
    try:
        return _converter.structure(obj, cls)
    except cattrs.BaseValidationError as exc:
        problems = "; ".join(cattrs.transform_error(exc, path="", format_exception=_format_problem))
        raise BadRequest(f"bad {_name(cls)}: {problems}") from None
    except (TypeError, ValueError, KeyError) as exc:
        raise BadRequest(f"bad {_name(cls)}: {exc}") from None


def _name(cls: type[Any]) -> str:
    with contextlib.suppress(KeyError):
        return command_of(cls).cmd
    for module, table in ((_EVENTS, "EVENTS"), ("hyperhive.wire.helper_events", "HELPER_EVENTS")):
        loaded = sys.modules.get(module)
        if loaded is not None and (tag := getattr(loaded, table).get_tag(cls)):
            return str(tag)
    return cls.__name__


def to_json(value: Any) -> Any:
    """The plain-JSON form of any wire value (for HTTP bodies and tests)."""
    return _converter.unstructure(value)


def from_json(value: Any, cls: type[_T]) -> _T:
    """A wire value of `cls` from its plain-JSON form (the inverse of `to_json`).

    Raises:
        BadRequest: `value` is not of that shape; the text says where.
    """
    return _structure(value, cls)


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


def encode_request(request: Request[Any]) -> bytes:
    """One request line: ``{"cmd": ..., **fields}\\n``."""
    return _dumps({"cmd": command_of(request).cmd, **_converter.unstructure(request)})


def decode_request(line: bytes | str) -> Request[Any]:
    """Parse one request line.

    Raises:
        BadRequest: invalid JSON, no or unknown ``cmd``, or fields of the wrong type; the text
            says which.
    """
    import hyperhive.wire.commands  # noqa: F401  (the whole table: a daemon decodes any command)

    obj = _loads(line)
    raw = line if isinstance(line, bytes) else line.encode(errors="surrogatepass")
    # Fewer brackets than the bound cannot nest past it: the walk is skipped for nearly
    # every request (a C count, not a Python walk, on the hot path).
    brackets = raw.count(b"[") + raw.count(b"{")
    if brackets > MAX_NESTING and not _nested_within(obj, MAX_NESTING):
        raise BadRequest(f"request nested more than {MAX_NESTING} levels; nothing was done")
    cmd = obj.pop("cmd", None)
    if not isinstance(cmd, str):
        raise BadRequest('missing "cmd": every request is a JSON object with a "cmd" string')
    entry = COMMANDS.get(cmd) if "." not in cmd else None
    if entry is None:
        known = ", ".join(sorted({c.cmd for c in COMMANDS.values()}))
        raise BadRequest(f"unknown cmd {_clip(repr(cmd), 80)}; known commands: {known}")
    for key, variant in VARIANTS.get(cmd, ()):
        if key in obj:
            entry = variant
            break
    request: Request[Any] = _structure(obj, entry.request)
    return request


def request_from_fields(cls: type[Request[R]], fields: Mapping[str, Any]) -> Request[R]:
    """A request of `cls` from plain JSON values (an MCP tool's arguments), checked as strictly
    as a decoded line: types, bounds and nesting.

    Raises:
        BadRequest: a field of the wrong type or outside its bound; the text says which.
    """
    obj = dict(fields)
    if not _nested_within(obj, MAX_NESTING):
        raise BadRequest(f"request nested more than {MAX_NESTING} levels; nothing was done")
    request: Request[R] = _structure(obj, cls)
    return request


_OK_PREFIX: Final = f'{{"version":{PROTOCOL_VERSION},"ok":true,"error":null'.encode()


def encode_response(payload: object | None = None) -> bytes:
    """A success: the envelope with ``payload``'s fields flattened beside it."""
    fields = {} if payload is None else _converter.unstructure(payload)
    if not fields:
        return _OK_PREFIX + b"}\n"
    # The envelope is constant, so only the payload is serialised; its "{" becomes the ",".
    return b"%s,%s\n" % (_OK_PREFIX, _json(fields)[1:])


def encode_sent(message_id: int) -> bytes:
    """The answer to a `send`: byte for byte `encode_response(Sent(message_id))`, faster.

    Every message costs one of these, so it skips the converter and the JSON encoder.
    """
    return b'%s,"id":%d}\n' % (_OK_PREFIX, message_id)


def encode_error(message: str) -> bytes:
    """A failure the client can show as is."""
    return _dumps({"version": PROTOCOL_VERSION, "ok": False, "error": message})


def decode_reply(line: bytes | str, request: Request[R]) -> R:
    """Parse the response line answering `request`, as its command's reply type.

    Raises:
        RemoteError: the daemon answered ``ok: false``.
        BadRequest: the line is not a response of that shape.
    """
    return decode_response(line, reply_type(request))


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


def decode_report(data: bytes) -> AgentReport:
    """A harness's report (`wire.REPORT_FILE`), read from a file its agent can write.

    Raises:
        BadRequest: too big, not JSON, a field of the wrong type or outside its bound, or an
            unknown state; the text says which.
    """
    if len(data) > MAX_REPORT_BYTES:
        raise BadRequest(f"the report is larger than {MAX_REPORT_BYTES} bytes")
    if data.count(b"{") + data.count(b"[") > MAX_NESTING:
        raise BadRequest("the report is nested too deeply")
    report = _structure(_loads(data), AgentReport)
    if report.state not in TURN_STATES:
        raise BadRequest(f"the report names an unknown state {_clip(repr(report.state), 40)}")
    return report


def encode_report(report: AgentReport) -> bytes:
    """The report file's bytes (the harness writes them)."""
    return _dumps(_converter.unstructure(report))


def encode_event(event: Event) -> bytes:
    """One feed line for a subscriber."""
    return _dumps(_converter.unstructure(event))


def decode_event(line: bytes | str) -> Event:
    """Parse one feed line."""
    from hyperhive.wire.events import Event

    return _structure(_loads(line), Event)


def encode_helper_event(event: HelperEvent) -> str:
    """The message body for a helper event: ``{"event": tag, **fields}`` (one line of JSON)."""
    from hyperhive.wire.helper_events import HELPER_EVENTS

    fields = _converter.unstructure(event)
    return json.dumps(
        {"event": HELPER_EVENTS.tag_of(type(event)), **fields},
        separators=(",", ":"),
        ensure_ascii=False,
    )


def decode_helper_event(body: str) -> HelperEvent:
    """Parse a message body from `HELPER_SENDER`.

    Raises:
        BadRequest: not JSON, or no known ``event`` tag; the text says which.
    """
    from hyperhive.wire.helper_events import HELPER_EVENTS

    obj = _loads(body)
    tag = obj.pop("event", None)
    cls = HELPER_EVENTS.get(tag) if isinstance(tag, str) else None
    if cls is None:
        known = ", ".join(sorted(HELPER_EVENTS))
        raise BadRequest(f"unknown helper event {tag!r}; known events: {known}")
    event: HelperEvent = _structure(obj, cls)
    return event


def encode_live_event(payload: LiveEventPayload) -> tuple[str, dict[str, Any]]:
    """A harness live event as the events bus keeps it: its ``kind`` tag and its data.

    A `StreamLine` is claude's own object, kept as it printed it.
    """
    kind = LIVE_EVENTS.tag_of(type(payload))
    if isinstance(payload, StreamLine):
        return kind, payload.data
    data: dict[str, Any] = _converter.unstructure(payload)
    return kind, data


# -- the agent's page socket (`hyperhive.wire.page`) ------------------------------------------


def encode_page_request(request: PageRequest) -> bytes:
    """One request line for an agent's page socket."""
    from hyperhive.wire.page import PAGE_COMMANDS

    fields: dict[str, Any] = _converter.unstructure(request)
    return _dumps({"cmd": PAGE_COMMANDS.tag_of(type(request)), **fields})


def decode_page_request(line: bytes | str) -> PageRequest:
    """The harness's side: a request line from the daemon.

    Raises:
        BadRequest: not JSON, an unknown ``cmd``, or a field out of its bounds.
    """
    from hyperhive.wire.page import PAGE_COMMANDS

    obj = _loads(line)
    tag = obj.pop("cmd", None)
    cls = PAGE_COMMANDS.get(tag) if isinstance(tag, str) else None
    if cls is None:
        raise BadRequest(f"unknown page command {tag!r}; known: {', '.join(sorted(PAGE_COMMANDS))}")
    request: PageRequest = _structure(obj, cls)
    return request


def encode_page_reply(payload: object | None = None) -> bytes:
    """An ok answer line on the page socket, with `payload`'s fields beside ``ok``."""
    fields: dict[str, Any] = {} if payload is None else _converter.unstructure(payload)
    return _dumps({"ok": True, **fields})


def encode_page_error(message: str) -> bytes:
    return _dumps({"ok": False, "error": message})


def decode_page_reply(line: bytes | str, cls: type[_T]) -> _T:
    """The daemon's side: an answer line from an agent's harness, as `cls`.

    Hostile input: nested past `MAX_NESTING`, not an object, ``ok: false`` or a field out of
    its bounds is a `RemoteError` or `BadRequest` with a sentence, never anything else.
    """
    obj = _loads(line)
    if not _nested_within(obj, MAX_NESTING):
        raise BadRequest(f"the answer is nested more than {MAX_NESTING} levels")
    if obj.get("ok") is not True:
        error = obj.get("error")
        raise RemoteError(_clip(error if isinstance(error, str) else "the harness refused"))
    obj.pop("ok", None)
    return _structure(obj, cls)


def decode_page_event(line: bytes | str) -> PageEvent:
    """One line of a page subscription (capped at `MAX_EVENT_BYTES` by the reader)."""
    from hyperhive.wire.page import MAX_EVENT_BYTES, PageEvent

    obj = _loads(line)
    if len(line) > MAX_EVENT_BYTES or not _nested_within(obj, MAX_NESTING):
        raise BadRequest("the event is too big or nested too deep")
    return _structure(obj, PageEvent)
