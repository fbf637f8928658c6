"""``export --format otlp --follow``: keep a receiver up to date as agents work.

A span is sent once its row has finished (an agent or prompt completed, failed or was
cancelled; a session when none of its agents runs any more), because a receiver keeps
one version of a span id, and the first one Phoenix receives is the one it keeps. A
finished span is sent again only when it changes (a log or cost added later): each
span is sent once per change, with the same ids.

What was sent is kept in a cursor file, rewritten (atomically) after every request the
receiver accepts, so that a restarted follow goes on where the last one stopped. Only a
request in flight when the process died can be sent twice, with the same ids, which a
receiver deduplicates. A receiver that is down or slow is retried with growing waits
(up to ``MAX_BACKOFF_S``), the same spans each time, and nothing moves on without it.

Each poll looks at the sessions with something running or with anything new since a
``margin`` (60 s) before the previous poll, and compares the finished spans of those
sessions with what was sent. The margin lets a row stamped up to a minute before its
commit (a slow transaction, a clock a little behind) still be seen. A change that
leaves no new time behind, in a session where nothing has run for longer than the
margin (``add_agent_cost`` on an agent finished long ago), is not seen: a one-shot
export sends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from .atomic_file import new_file_mode, replacing
from .errors import ValidationError
from .manager import DatabaseManager
from .models import format_timestamp
from .otel_export import ReceiverError, SpanSink
from .otel_mapping import (
    FINISHED_AGENT,
    FINISHED_PROMPT,
    SessionHistory,
    SystemLogDay,
    component_day_span,
    day_of,
    nanoseconds,
    session_spans,
    stored_text,
    system_log_spans,
)
from .otel_source import (
    active_sessions,
    definitions,
    load_session,
    recent_system_logs,
    session_ids,
    system_log_days,
)

__all__ = ["CURSOR_VERSION", "FollowCursor", "Follower"]

logger = logging.getLogger(__name__)

CURSOR_VERSION = 1
MARGIN_S = 60.0
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0


def fingerprint(span: ReadableSpan) -> str:
    """What a receiver would see of a span, hashed: equal means nothing to send."""
    events = [
        (event.name, event.timestamp, sorted((event.attributes or {}).items()))
        for event in span.events
    ]
    content = (
        span.name,
        span.start_time,
        span.end_time,
        span.status.status_code.value,
        span.status.description,
        sorted((span.attributes or {}).items()),
        events,
        span.parent.span_id if span.parent else None,
    )
    return hashlib.sha256(repr(content).encode()).hexdigest()[:24]


def _key(span: ReadableSpan) -> str:
    assert span.context is not None  # every span the mapping makes has one
    return format(span.context.span_id, "016x")


def is_finished(span: ReadableSpan) -> bool:
    """A session's, agent's or prompt's span is final once its row is; logs always are."""
    attributes = span.attributes or {}
    if "orchestrator.agent.status" in attributes:
        return attributes["orchestrator.agent.status"] in FINISHED_AGENT
    if "orchestrator.prompt.status" in attributes:
        return attributes["orchestrator.prompt.status"] in FINISHED_PROMPT
    if "orchestrator.session.agents_running" in attributes:
        return attributes["orchestrator.session.agents_running"] == 0
    return True


def _latest_moment(span: ReadableSpan) -> int:
    moments = [span.end_time or 0, *(event.timestamp for event in span.events)]
    return max(moments)


@dataclass
class FollowCursor:
    """What has been sent, kept in a JSON file between runs."""

    store: str
    target: str
    phase: str = "initial"  # "initial" (sending the history so far), then "live"
    started: str | None = None  # when the initial phase began: the first live window
    initial_after: str = ""  # initial phase: the last session id completely sent
    system_log_after: int = 0  # initial phase: the last system log id sent
    watermark: str | None = None  # live: when the last complete poll began
    # Sessions still being watched: span id (hex) -> fingerprint of what was sent.
    tracked: dict[str, dict[str, str]] = field(default_factory=dict)
    # System logs sent within the margin (id -> time), so that none is sent twice.
    recent_system_logs: dict[str, str] = field(default_factory=dict)
    component_days: list[str] = field(default_factory=list)  # day spans already sent

    @classmethod
    def load(cls, path: Path, store: str, target: str) -> FollowCursor:
        if not path.exists():
            return cls(store=store, target=target)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            if data.pop("version") != CURSOR_VERSION:
                raise ValueError("another version")
            cursor = cls(**data)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise ValidationError(
                f"{path} is not a follow cursor this version wrote ({exc}): "
                "remove it to send everything again"
            ) from None
        if (cursor.store, cursor.target) != (store, target):
            raise ValidationError(
                f"{path} follows {cursor.store} into {cursor.target}, not {store} into "
                f"{target}: pass another --cursor"
            )
        return cursor

    def save(self, path: Path, mode: int) -> None:
        data = {"version": CURSOR_VERSION, **self.__dict__}
        with replacing(path, mode) as handle:
            json.dump(data, handle, separators=(",", ":"))


class Follower:
    """Sends the store's finished spans to ``sink``, then keeps polling for changes."""

    def __init__(
        self,
        db: DatabaseManager,
        sink: SpanSink,
        cursor_path: Path,
        *,
        store: str,
        target: str,
        session: str | None = None,
        since: datetime | None = None,
        with_content: bool = False,
        interval: float = 1.0,
        margin: float = MARGIN_S,
        batch_size: int = 512,
        on_retry: Callable[[ReceiverError, float], None] = lambda error, wait: None,
        on_sent: Callable[[int], None] = lambda count: None,
    ) -> None:
        self._db = db
        self._sink = sink
        self._path = cursor_path
        self._mode = new_file_mode()
        self.cursor = FollowCursor.load(cursor_path, store, target)
        self._session = session
        self._since = since
        self._with_content = with_content
        self._interval = interval
        self._margin = timedelta(seconds=margin)
        self._batch_size = batch_size
        self._on_retry = on_retry
        self._on_sent = on_sent
        self._definitions: dict[str, dict[str, Any]] = {}
        self.sent = 0

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Poll until ``stop`` is set (or forever)."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            await self.poll()
            with contextlib.suppress(TimeoutError):  # the interval passed: poll again
                await asyncio.wait_for(stop.wait(), self._interval)

    async def poll(self) -> int:
        """One round: the history so far on the first, then what changed. Returns how
        many spans it sent."""
        before = self.sent
        self._definitions = await definitions(self._db)
        if self.cursor.phase == "initial":
            await self._initial()
        else:
            await self._live()
        return self.sent - before

    # --- the history so far ----------------------------------------------------------

    async def _initial(self) -> None:
        cursor = self.cursor
        if cursor.started is None:
            cursor.started = format_timestamp(datetime.now(UTC))
        started = datetime.fromisoformat(cursor.started)
        async for session_id in session_ids(self._db, since=self._since, session=self._session):
            if session_id <= cursor.initial_after:
                continue
            await self._sync_session(session_id, started - self._margin, initial=True)
        if self._session is None:
            async for day in system_log_days(
                self._db, since=self._since, after_id=cursor.system_log_after
            ):
                await self._send_system_logs(day, nanoseconds(started - self._margin))
        cursor.phase = "live"
        cursor.watermark = cursor.started
        self._save()

    # --- what changed ----------------------------------------------------------------

    async def _live(self) -> None:
        cursor = self.cursor
        assert cursor.watermark is not None
        began = datetime.now(UTC)
        window_start = datetime.fromisoformat(cursor.watermark) - self._margin
        sessions = set(cursor.tracked) | await active_sessions(self._db, window_start)
        if self._session is not None:
            sessions &= {self._session}
        for session_id in sorted(sessions):
            await self._sync_session(session_id, window_start, initial=False)
        if self._session is None:
            await self._live_system_logs(window_start)
        cursor.watermark = format_timestamp(began)
        self._save()

    async def _sync_session(
        self, session_id: str, window_start: datetime, *, initial: bool
    ) -> None:
        """Send the session's finished spans that changed since they were sent. For a
        session not being watched, that is those with anything at or after
        ``window_start`` (older ones were sent before); in the initial phase, all."""
        history = await load_session(
            self._db, session_id, self._definitions, with_content=self._with_content
        )
        tracked = self.cursor.tracked.get(session_id)
        if history is None:  # deleted (prune, cascade): nothing more to send
            self.cursor.tracked.pop(session_id, None)
            return
        window_ns = nanoseconds(window_start)
        spans = [
            span
            for span in session_spans(history, with_content=self._with_content)
            if is_finished(span)
        ]
        changed: list[tuple[ReadableSpan, str]] = []
        for span in spans:
            mark = fingerprint(span)
            if tracked is not None:
                if tracked.get(_key(span)) != mark:
                    changed.append((span, mark))
            elif initial or _latest_moment(span) >= window_ns:
                changed.append((span, mark))
        sent = self.cursor.tracked.setdefault(session_id, dict(tracked or {}))
        for start in range(0, len(changed), self._batch_size):
            batch = changed[start : start + self._batch_size]
            await self._send([span for span, _ in batch])
            sent.update((_key(span), mark) for span, mark in batch)
            self._save()
        if _still_active(history, spans, window_ns):
            # Keep every finished span's print, sent now or before.
            sent.update((_key(span), fingerprint(span)) for span in spans if _key(span) not in sent)
        else:
            # Quiet: a later change shows up with new times, and the window brings it back.
            del self.cursor.tracked[session_id]
        if initial:
            self.cursor.initial_after = session_id
        if changed:  # else a restart finds nothing new to send here either
            self._save()

    async def _live_system_logs(self, window_start: datetime) -> None:
        cursor = self.cursor
        window_ns = nanoseconds(window_start)
        rows = [
            row
            for row in await recent_system_logs(self._db, window_start)
            if str(row["id"]) not in cursor.recent_system_logs
        ]
        for (component, day), group in _runs(rows):
            await self._send_system_logs(SystemLogDay(component, day, group), window_ns)
        cursor.recent_system_logs = {
            log_id: moment
            for log_id, moment in cursor.recent_system_logs.items()
            if nanoseconds(moment) >= window_ns
        }

    async def _send_system_logs(self, day: SystemLogDay, window_ns: int) -> None:
        """A run of one component's day, recorded in the cursor batch by batch as the
        receiver accepts it: past ``system_log_after`` (the initial phase's position)
        and, from ``window_ns`` on, in the logs the next live poll must not send again."""
        cursor = self.cursor
        key = f"{day.component}\0{day.day}"
        items: list[tuple[ReadableSpan, dict[str, Any] | None]] = []
        if key not in cursor.component_days:
            items.append((component_day_span(day.component, day.day), None))
        items += zip(system_log_spans(day), day.logs, strict=True)
        for start in range(0, len(items), self._batch_size):
            batch = items[start : start + self._batch_size]
            await self._send([span for span, _ in batch])
            for _, log in batch:
                if log is None:
                    cursor.component_days.append(key)
                    # Bounded: only days still being written matter, and they are the latest.
                    cursor.component_days = cursor.component_days[-1000:]
                    continue
                cursor.system_log_after = max(cursor.system_log_after, int(log["id"]))
                if nanoseconds(log["created_at"]) >= window_ns:
                    cursor.recent_system_logs[str(log["id"])] = stored_text(log["created_at"])
            self._save()

    # --- sending ---------------------------------------------------------------------

    async def _send(self, spans: list[ReadableSpan]) -> None:
        """Deliver one batch, waiting and retrying for as long as the receiver refuses."""
        wait = FIRST_BACKOFF_S
        while True:
            try:
                await asyncio.to_thread(self._sink.send, spans)
            except ReceiverError as exc:
                self._on_retry(exc, wait)
                logger.warning("%s; retrying in %.1f s", exc, wait)
                await asyncio.sleep(wait)
                wait = min(wait * 2, MAX_BACKOFF_S)
                continue
            self.sent += len(spans)
            self._on_sent(len(spans))
            return

    def _save(self) -> None:
        self.cursor.save(self._path, self._mode)


def _still_active(history: SessionHistory, spans: list[ReadableSpan], window_ns: int) -> bool:
    """Anything running, or anything at or after the window's start: a row's time, or a
    span's end (a prompt's ends at its start plus its latency, which no row holds)."""
    if any(agent["status"] not in FINISHED_AGENT for agent in history.agents):
        return True
    if any(prompt["status"] not in FINISHED_PROMPT for prompt in history.prompts):
        return True
    moments: Iterable[Any] = (
        *(agent["started_at"] for agent in history.agents),
        *(agent["completed_at"] for agent in history.agents if agent["completed_at"]),
        *(prompt["created_at"] for prompt in history.prompts),
        *(prompt["completed_at"] for prompt in history.prompts if prompt["completed_at"]),
        *(log["created_at"] for logs in history.logs.values() for log in logs),
    )
    if any(nanoseconds(moment) >= window_ns for moment in moments):
        return True
    return any(_latest_moment(span) >= window_ns for span in spans)


def _runs(rows: list[dict[str, Any]]) -> Iterable[tuple[tuple[str, str], list[dict[str, Any]]]]:
    """Consecutive rows of one component's day."""
    group: list[dict[str, Any]] = []
    key: tuple[str, str] | None = None
    for row in rows:
        row_key = (row["component"], day_of(row["created_at"]))
        if row_key != key and group:
            assert key is not None
            yield key, group
            group = []
        key = row_key
        group.append(row)
    if group and key is not None:
        yield key, group
