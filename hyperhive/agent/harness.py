"""The harness main loop (`hyperhive agent serve`): wait for work, run a turn, ack if it went well.

    start ── requeue_inflight ──▶ wait (recv long-poll) ──▶ turn ──▶ ok ──▶ ack_turn ──▶ wait
                                       ▲                      │
                                       └── backoff / rate-limit wait / login ◀── not ok

Delivery is a lease: messages popped for a turn stay in flight until ``ack_turn``, which the
harness sends only after a turn ended well. Until then they are *held*: a failed turn is
retried with the same messages (plus any new ones) after a backoff, a rate-limited turn after
the reset time the stream reported, an interrupted turn when new work arrives. A harness that
dies mid-turn loses nothing: on the next start ``requeue_inflight`` puts its in-flight
messages back, and they arrive flagged as redelivered.

The web page (or a test) drives the harness through `cancel`, `request_compact`,
`request_new_session` and `set_model`; everything it does is published on the events bus, and
what it is doing and why (its state, the tool its turn runs, an API retry in progress, its
last turn) is kept in its report (`hyperhive.agent.report`), which the daemon and the page
read. While the operator has paused the agent the daemon hands it no mail (a recv says so),
and it runs no turn, not even for messages it holds.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

import trio

from hyperhive.agent.login import LoginState
from hyperhive.agent.outcome import Outcome
from hyperhive.agent.report import Reporter, clip
from hyperhive.agent.runtime import TurnControl, TurnReport, TurnRequest, TurnRunner
from hyperhive.agent.turn_stats import TurnStatsRow, TurnStatsStore
from hyperhive.client import Client, open_client
from hyperhive.errors import HyperhiveError, StoreError
from hyperhive.offload import Offload, to_thread
from hyperhive.value import value
from hyperhive.wire.harness import (
    BackingOff,
    HarnessStarted,
    LastTurn,
    LiveEventPayload,
    LoggedIn,
    ModelChosen,
    NeedsLogin,
    RateLimitCleared,
    RateLimited,
    StateChanged,
    StreamLine,
    TurnAcked,
    TurnEnded,
    TurnStarted,
    UsageChanged,
)
from hyperhive.wire.turn import AckTurn, Recv, RequeueInflight

if TYPE_CHECKING:
    from hyperhive.agent.events import EventBus
    from hyperhive.agent.settings import AgentSettings
    from hyperhive.clock import WallClock
    from hyperhive.wire.mail import Delivery

__all__ = ["Harness", "HarnessOptions", "TurnState"]

_log = logging.getLogger(__name__)
LoginCheck = Callable[[], Awaitable[LoginState]]
# Waits up to the given seconds for a change where credentials are stored; True if one came.
LoginWatch = Callable[[float], Awaitable[bool]]
_RECONNECT_MAX: Final = 30.0


class TurnState(enum.Enum):
    STARTING = "starting"
    IDLE = "idle"
    RUNNING = "running"
    COMPACTING = "compacting"
    RATE_LIMITED = "rate_limited"
    BACKING_OFF = "backing_off"
    NEEDS_LOGIN = "needs_login"
    PAUSED = "paused"
    DISCONNECTED = "disconnected"


@value
class HarnessOptions:
    recv_wait: float = 30.0  # one long-poll; also how soon an idle compact request runs
    recv_max: int = 32
    rate_limit_backoff: float = 300.0  # when the stream gives no reset time
    max_rate_limit_wait: float = 6 * 3600.0
    failure_backoff: float = 10.0  # doubled per consecutive failure
    max_failure_backoff: float = 600.0
    compact_at: float = 0.8  # compact before the next turn past this share of the window
    login_poll: float = 30.0  # first re-probe while logged out; doubled each time
    max_login_poll: float = 1800.0  # a credential file changing re-probes at once anyway


async def _always_logged_in() -> LoginState:
    return LoginState(True, "n/a")


class Harness:
    """One agent's turn loop. See the module docstring."""

    def __init__(
        self,
        settings: AgentSettings,
        runner: TurnRunner,
        bus: EventBus,
        *,
        clock: WallClock,
        stats: TurnStatsStore | None = None,
        options: HarnessOptions = HarnessOptions(),
        login_check: LoginCheck | None = None,
        login_watch: LoginWatch | None = None,
        offload: Offload = to_thread,
    ) -> None:
        self.settings = settings
        self._offload = offload
        self.paths = settings.paths
        self.runner = runner
        self.bus = bus
        self.clock = clock
        self.stats = stats
        self.options = options
        self._login_check = login_check or _always_logged_in
        self._login_watch = login_watch
        self.state = TurnState.STARTING
        self.reporter = Reporter(self.paths.report, clock)
        self.model: str | None = None
        self._held: list[Delivery] = []
        self._shown: set[int] = set()  # held ids an unfinished turn already showed
        self._more_waiting = False
        self._parked = False  # after an interrupt: wait for new work before retrying
        self._paused = False  # the operator paused the agent (the last recv said so)
        self._requeued = False
        self._ack_owed = False
        self._failures = 0
        self._retry_at: float | None = None  # trio time
        self._logged_in: bool | None = None
        self._compact_requested = False
        self._compact_due = False
        self._new_session = False
        self._control: TurnControl | None = None
        self._login_changed = trio.Event()
        self.turns = 0

    # -- control (the agent's page) ---------------------------------------------------------

    def cancel(self) -> bool:
        """Interrupt the running turn; False when no turn runs."""
        if self._control is None:
            return False
        self.bus.note("cancel requested: interrupting the turn")
        self._control.interrupt.set()
        return True

    def request_compact(self) -> None:
        """Compact the conversation before the next turn (or at the next idle poll)."""
        self._compact_requested = True
        self.bus.note("compaction requested")

    def request_new_session(self) -> None:
        """Run the next turn in a fresh session (no --resume)."""
        self._new_session = True
        self.bus.note("next turn starts a new session")

    def set_model(self, model: str | None) -> None:
        """Use `model` from the next turn on (None: the runtime's default); persisted."""
        self.model = model or None
        try:
            if self.model:
                self.paths.model.write_text(self.model + "\n")
            else:
                self.paths.model.unlink(missing_ok=True)
        except OSError as exc:
            self.bus.note(f"cannot persist the model choice: {exc}")
        self.bus.publish(ModelChosen(self.model))

    @property
    def logged_in(self) -> bool | None:
        """Whether the last login probe found credentials (None: not probed since a change)."""
        return self._logged_in

    def login_changed(self) -> None:
        """Credentials were entered: probe again now instead of at the next poll."""
        self._logged_in = None
        self._login_changed.set()

    # -- main loop ------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve forever: connect, requeue what a previous run left in flight, loop over turns.

        Reconnects (with backoff) when the daemon goes away; `task_status.started()` is called
        once the first connection has requeued.

        Cancellation: cancelling stops at once; a running turn's processes are killed and its
        messages stay in flight for the next start.
        """
        self._restore()
        async with trio.open_nursery() as nursery:
            await nursery.start(self.runner.run)  # a warm runtime's processes live in there
            await self._connect_forever(task_status)

    async def _connect_forever(self, task_status: trio.TaskStatus[None]) -> None:
        delay = 1.0
        started = False
        while True:
            try:
                async with open_client(self.settings.socket) as client:
                    await self._on_connect(client)
                    if not started:
                        task_status.started()
                        started = True
                    delay = 1.0
                    await self._serve(client)
            except (HyperhiveError, OSError, trio.BrokenResourceError) as exc:
                # The daemon restarted or the socket went away: held messages stay held, an
                # owed ack is sent on reconnect, nothing is requeued twice.
                self._set_state(TurnState.DISCONNECTED, clip(str(exc)))
                self.bus.note(f"lost the hive ({exc}); reconnecting in {delay:.0f}s")
                await trio.sleep(delay)
                delay = min(delay * 2, _RECONNECT_MAX)

    async def _on_connect(self, client: Client) -> None:
        if not self._requeued:
            requeued = await client.call(RequeueInflight())
            self._requeued = True
            self.bus.publish(HarnessStarted(requeued.count, self.settings.name))
            if requeued.count:
                self.bus.note(f"{requeued.count} message(s) from before the restart are back")
        if self._ack_owed:
            await self._ack(client)

    async def _serve(self, client: Client) -> None:
        while True:
            await self._ensure_logged_in()
            await self._wait_for_retry()
            await self._collect(client)
            if self._paused:
                continue  # no turn, no compaction: the next recv waits until it is resumed
            if self._held and not self._parked:
                await self._turn(client)
            elif self._compact_requested:
                await self._compact_only()

    async def _collect(self, client: Client) -> None:
        """Pop new messages: a long-poll when idle, a quick look when retrying held ones."""
        room = self.options.recv_max - len(self._held)
        if room <= 0 and not self._paused:
            return
        room = max(1, room)  # paused: one recv still asks whether it was resumed
        idle = not self._held or self._parked or self._paused
        if idle and not self._paused:
            self._set_state(TurnState.IDLE)
        wait = self.options.recv_wait if idle else 0.0
        got = await client.call(Recv(wait_seconds=wait, max=room))
        was_paused, self._paused = self._paused, got.paused
        if self._paused:
            held = f"; {len(self._held)} message(s) held for the next turn" if self._held else ""
            self._set_state(TurnState.PAUSED, f"paused by the operator{held}")
            if not was_paused:
                self.bus.note("paused by the operator: no turns until resumed")
        elif was_paused:
            self.bus.note("resumed by the operator")
        if got.messages:
            self._held.extend(got.messages)
            self._parked = False
        self._more_waiting = len(got.messages) >= room

    # -- one turn -------------------------------------------------------------------------------

    async def _turn(self, client: Client) -> None:
        from hyperhive.agent.wake import build_wake_prompt, wake_reason  # not needed at start

        deliveries = tuple(self._held)
        retried = bool(self._shown)
        prompt = build_wake_prompt(
            deliveries,
            retried_ids=frozenset(self._shown),
            more_waiting=self._more_waiting,
            recv_max=self.options.recv_max,
        )
        request = TurnRequest(
            prompt,
            model=self.model,
            fresh_session=self._new_session,
            compact_first=self._compact_requested or self._compact_due,
        )
        wake_from = wake_reason(deliveries, retried=retried)
        report = await self._run(request, wake_from, len(deliveries))
        self._shown.update(d.id for d in deliveries)
        await self._after_turn(client, report, request)

    async def _run(self, request: TurnRequest, wake_from: str, messages: int) -> TurnReport:
        control = TurnControl()
        self._control = control
        self.turns += 1
        started_at, started = self.clock.now(), trio.current_time()
        self._set_state(TurnState.RUNNING if request.prompt else TurnState.COMPACTING)
        self.bus.publish(
            TurnStarted(
                wake_from, messages, request.model, request.fresh_session, request.compact_first
            )
        )
        try:
            report = await self.runner.run_turn(request, control, self._observe)
        finally:
            self._control = None
        ended_at = started_at + (trio.current_time() - started)
        await self._record(report, wake_from, messages, started_at, ended_at)
        return report

    def _observe(self, payload: LiveEventPayload) -> None:
        """A turn's live event: published, and what it says the turn does reported."""
        self.bus.publish(payload)
        if isinstance(payload, StreamLine):
            self.reporter.stream(payload.data)

    async def _after_turn(self, client: Client, report: TurnReport, request: TurnRequest) -> None:
        outcome = report.outcome
        if outcome is Outcome.OK:
            # Only what this turn did is done: a request made while it ran still stands.
            if request.compact_first:
                self._compact_requested = False
            if request.fresh_session:
                self._new_session = False
            self._failures = 0
            self._ack_owed = True
            await self._ack(client)
            self._clear_sentinel()
            tracker = report.tracker
            window, ctx = tracker.context_window, tracker.ctx_tokens
            self._compact_due = bool(window and ctx and ctx >= self.options.compact_at * window)
            if self._compact_due:
                self.bus.note(f"context at {ctx} of {window} tokens: compacting before next turn")
            return
        if outcome is Outcome.INTERRUPTED:
            self._parked = True
            self.bus.note("turn interrupted; its messages wait for the next turn")
        elif outcome is Outcome.RATE_LIMITED:
            self._rate_limited(report)
        elif outcome is Outcome.NEEDS_LOGIN:
            # Probe again before the next turn; back off too, so credentials the probe
            # accepts but the API refuses do not spin.
            self._logged_in = False
            self._back_off(report)
        else:
            self._back_off(report)

    async def _ack(self, client: Client) -> None:
        acked = await client.call(AckTurn())
        self._ack_owed = False
        self._held.clear()
        self._shown.clear()
        self.bus.publish(TurnAcked(acked.count))

    async def _compact_only(self) -> None:
        report = await self._run(TurnRequest(None, model=self.model), "compact", 0)
        self._compact_requested = False
        if report.outcome is Outcome.OK:
            self._compact_due = False
        else:
            self.bus.note(f"compaction failed: {report.detail or report.outcome.value}")

    # -- failure handling -----------------------------------------------------------------------

    def _rate_limited(self, report: TurnReport) -> None:
        now = self.clock.now()
        resets_at = report.tracker.resets_at
        if resets_at is not None and resets_at > now:
            wait = min(resets_at - now + 5.0, self.options.max_rate_limit_wait)
        else:
            wait = min(
                self.options.rate_limit_backoff * 2 ** min(self._failures, 6),
                self.options.max_rate_limit_wait,
            )
        self._failures += 1
        self._retry_at = trio.current_time() + wait
        self._write_sentinel(now, resets_at, now + wait, report.detail)
        self._set_state(TurnState.RATE_LIMITED, report.detail, until=now + wait)
        self.bus.publish(RateLimited(resets_at, wait, report.detail))

    def _back_off(self, report: TurnReport) -> None:
        wait = min(
            self.options.failure_backoff * 2 ** min(self._failures, 10),
            self.options.max_failure_backoff,
        )
        self._failures += 1
        self._retry_at = trio.current_time() + wait
        detail = f"{report.outcome.value}: {report.detail or 'no detail'}"
        self._set_state(TurnState.BACKING_OFF, detail, until=self.clock.now() + wait)
        self.bus.publish(BackingOff(report.outcome.value, report.detail, wait))
        self.bus.note(
            f"turn {report.outcome.value}: {report.detail or 'no detail'}; "
            f"retrying its messages in {wait:.0f}s"
        )

    async def _wait_for_retry(self) -> None:
        if self._retry_at is None:
            return
        await trio.sleep_until(self._retry_at)
        self._retry_at = None

    def _write_sentinel(
        self, now: float, resets_at: float | None, retry_at: float, detail: str
    ) -> None:
        body = {"since": now, "resets_at": resets_at, "retry_at": retry_at, "detail": detail}
        sentinel = self.paths.rate_limited
        scratch = sentinel.with_name(sentinel.name + ".tmp")
        try:
            # Whole or not at all: the daemon and the page read it while it may be written.
            scratch.write_text(json.dumps(body) + "\n")
            scratch.replace(sentinel)
        except OSError as exc:
            self.bus.note(f"cannot write the rate-limit sentinel: {exc}")

    def _clear_sentinel(self) -> None:
        if self.paths.rate_limited.exists():
            with contextlib.suppress(OSError):
                self.paths.rate_limited.unlink()
            self.bus.publish(RateLimitCleared())

    # -- login ----------------------------------------------------------------------------------

    async def _ensure_logged_in(self) -> None:
        delay = self.options.login_poll
        while not self._logged_in:
            state = await self._login_check()
            self._logged_in = state.logged_in
            if state.logged_in:
                if self.paths.needs_login.exists():
                    self.paths.needs_login.unlink(missing_ok=True)
                    self.bus.publish(LoggedIn(state.method))
                return
            if self.state is not TurnState.NEEDS_LOGIN:
                self._set_state(TurnState.NEEDS_LOGIN, state.detail)
                self.bus.publish(NeedsLogin(state.detail))
                try:
                    self.paths.needs_login.write_text(state.detail + "\n")
                except OSError as exc:
                    self.bus.note(f"cannot write the needs-login sentinel: {exc}")
            self._login_changed = trio.Event()
            await self._wait_for_login_change(delay)
            delay = min(delay * 2, self.options.max_login_poll)

    async def _wait_for_login_change(self, seconds: float) -> None:
        """Until `login_changed`, a change to a credential file, or `seconds` pass."""
        with trio.move_on_after(seconds):
            async with trio.open_nursery() as nursery:

                async def watch() -> None:
                    assert self._login_watch is not None
                    if await self._login_watch(seconds):
                        nursery.cancel_scope.cancel()

                if self._login_watch is not None:
                    nursery.start_soon(watch)
                await self._login_changed.wait()
                nursery.cancel_scope.cancel()

    # -- bookkeeping ----------------------------------------------------------------------------

    def _restore(self) -> None:
        """Pick up the model choice and a rate-limit wait from a previous run."""
        try:
            self.model = self.paths.model.read_text().strip() or None
        except OSError:
            self.model = None
        try:
            sentinel = json.loads(self.paths.rate_limited.read_text())
            retry_at = float(sentinel["retry_at"])
        except (OSError, ValueError, KeyError, TypeError):
            return
        remaining = retry_at - self.clock.now()
        if remaining > 0:
            self._retry_at = trio.current_time() + min(remaining, self.options.max_rate_limit_wait)
            detail = sentinel.get("detail") if isinstance(sentinel.get("detail"), str) else ""
            self._set_state(TurnState.RATE_LIMITED, detail, until=retry_at)

    def _set_state(self, state: TurnState, detail: str = "", *, until: float | None = None) -> None:
        """Enter `state` (published when it changes) and report it with its reason."""
        if state is not self.state:
            self.state = state
            self.bus.publish(StateChanged(state.value))
        self.reporter.state(state.value, detail=detail, until=until)

    async def _record(
        self, report: TurnReport, wake_from: str, messages: int, started_at: float, ended_at: float
    ) -> None:
        tracker = report.tracker
        usage = tracker.usage
        loose_ends = await self._count_loose_ends()
        row = TurnStatsRow(
            runtime=self.runner.name,
            model=tracker.model or self.model,
            wake_from=wake_from,
            result_kind=report.outcome.value,
            detail=report.detail or None,
            started_at=started_at,
            ended_at=ended_at,
            messages=messages,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_creation_tokens=usage.cache_creation_tokens,
            cost_usd=tracker.cost_usd,
            tool_calls=dict(tracker.tool_calls),
            ctx_tokens=tracker.ctx_tokens,
            context_window=tracker.context_window,
            compactions=tracker.compactions,
            session_id=tracker.session_id,
            loose_ends=loose_ends,
        )
        self.bus.publish(
            TurnEnded(
                outcome=report.outcome.value,
                detail=report.detail,
                duration_ms=row.duration_ms,
                ctx=tracker.ctx_tokens,
                cost_usd=tracker.cost_usd,
                tool_calls=dict(row.tool_calls),
                model=row.model,
                warm=report.warm,
            )
        )
        self.bus.publish(UsageChanged(tracker.ctx_tokens, tracker.cost_usd, tracker.context_window))
        failures = self._failures + (report.outcome not in (Outcome.OK, Outcome.INTERRUPTED))
        self.reporter.turn_ended(
            LastTurn(
                ended_at=ended_at,
                duration_ms=max(0, row.duration_ms),
                result=report.outcome.value,
                detail=clip(report.detail or ""),
                ctx_tokens=tracker.ctx_tokens,
                cost_usd=tracker.cost_usd,
            ),
            turns=self.turns,
            failures=0 if report.outcome is Outcome.OK else min(failures, 1000),
        )
        if self.stats is not None:
            try:
                await self._offload(self.stats.record, row)
            except StoreError as exc:
                _log.warning("%s", exc)

    async def _count_loose_ends(self) -> int | None:
        from hyperhive.wire.commands import GetLooseEnds  # after a turn: the whole table

        try:
            with trio.move_on_after(10):
                async with open_client(self.settings.socket) as side:
                    ends = await side.call(GetLooseEnds())
                    return len(ends.questions) + len(ends.reminders) + len(ends.approvals)
        except HyperhiveError as exc:
            _log.info("loose ends unavailable: %s", exc)
        return None
