"""``export --format otlp --follow`` (``otel_follow``) against a receiver that records
every delivery (``otlp_recorder``), on both backends.

The tests drive ``Follower.poll()`` a round at a time, so that what each round sends is
known; one test runs the real command line in a subprocess. They count deliveries: a
span is sent once its row has finished, and again only when it changed, so no version
of a span (its id and content) may arrive twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from otlp_recorder import Delivery, OtlpRecorder, otlp_recorder  # noqa: F401

from orchestrator_store import otel_follow
from orchestrator_store.errors import ReceiverError, ValidationError
from orchestrator_store.manager import DatabaseManager
from orchestrator_store.otel_export import OtlpHttpSink
from orchestrator_store.otel_follow import Follower
from orchestrator_store.otel_mapping import day_of

# Long enough for any answer of a receiver on the same machine: a request that timed
# out would be sent again, and a test here counts deliveries.
PATIENT_TIMEOUT_S = 10.0
# Below the SDK exporter's first back-off (1 s less 20 % jitter), so that one send is one
# request: the follower's own retries are what the receiver-down tests watch.
IMPATIENT_TIMEOUT_S = 0.75
TARGET = "recorder"  # what the cursor records as the receiver


# --- which row a span stands for ------------------------------------------------------
# Spans are named by the row they stand for (read from their attributes), not by their
# ids: how ids are derived is the mapping's business, and the tests compare ids only
# with each other (a parent's, a version's).

Label = tuple[Any, ...]


def session_span(session: str) -> Label:
    return ("session", session)


def agent_span(agent: str) -> Label:
    return ("agent", agent)


def prompt_span(prompt: str) -> Label:
    return ("prompt", prompt)


def system_log_span(log_id: int) -> Label:
    return ("system_log", log_id)


def day_span(component: str, day: str) -> Label:
    return ("day", component, day)


def label(delivery: Delivery) -> Label:
    attributes = delivery.attributes
    if "orchestrator.prompt.id" in attributes:
        return prompt_span(attributes["orchestrator.prompt.id"])
    if "gen_ai.agent.id" in attributes:
        return agent_span(attributes["gen_ai.agent.id"])
    if "orchestrator.session.id" in attributes:
        return session_span(attributes["orchestrator.session.id"])
    if "orchestrator.log.id" in attributes:
        return system_log_span(attributes["orchestrator.log.id"])
    if "orchestrator.day" in attributes:
        return day_span(attributes["orchestrator.component"], attributes["orchestrator.day"])
    raise AssertionError(f"a span that stands for no row: {delivery}")


def labels(recorder: OtlpRecorder) -> list[Label]:
    """What each delivery stood for, in order."""
    return [label(delivery) for delivery in recorder.deliveries]


def latest(recorder: OtlpRecorder) -> dict[Label, Delivery]:
    """The last delivery of each row's span."""
    return {label(delivery): delivery for delivery in recorder.deliveries}


# --- writing rows as agents do ---------------------------------------------------------


def now() -> datetime:
    return datetime.now(UTC)


async def definitions(db: DatabaseManager) -> dict[str, str]:
    return {
        name: await db.create_orchestrator_agent(name, f"The {name}", name, default_model=model)
        for name, model in (("planner", "claude-opus"), ("builder", "claude-sonnet"))
    }


async def start_agent(
    db: DatabaseManager, definition: str, session: str, parent: str | None = None
) -> str:
    return await db.create_agent(definition, session, parent_agent_id=parent, status="executing")


async def finish_agent(db: DatabaseManager, agent: str, status: str = "completed") -> None:
    await db.update_agent(agent, status=status, completed_at=now())


async def run_prompt(db: DatabaseManager, agent: str, *, finish: bool = True) -> str:
    prompt = await db.create_prompt(agent, "adw", "Do the step", status="streaming")
    if finish:
        await finish_prompt(db, prompt)
    return prompt


async def finish_prompt(db: DatabaseManager, prompt: str) -> None:
    await db.update_prompt(
        prompt,
        status="completed",
        model_used="claude-sonnet",
        tokens_input=120,
        tokens_output=30,
        cost_usd=0.002,
        completed_at=now(),  # no latency_ms: the span then ends at completed_at
    )


async def finished_agent(
    db: DatabaseManager, definition: str, session: str, parent: str | None = None
) -> tuple[str, str]:
    """An agent that ran one prompt, logged once and completed: (agent, prompt)."""
    agent = await start_agent(db, definition, session, parent)
    prompt = await run_prompt(db, agent)
    await db.create_agent_log(agent, "INFO", "milestone", "step done")
    await finish_agent(db, agent)
    return agent, prompt


async def system_log_day(db: DatabaseManager, log_id: int) -> str:
    """The UTC day a system log was stored on (read back: a test may cross midnight)."""
    rows = await db.query("SELECT id, created_at FROM system_logs")
    (created_at,) = [row["created_at"] for row in rows if int(row["id"]) == log_id]
    return day_of(created_at)


# --- following -------------------------------------------------------------------------


class Watch:
    """What a follower reported through its callbacks."""

    def __init__(self) -> None:
        self.retries: list[tuple[ReceiverError, float]] = []
        self.accepted: list[int] = []  # spans per accepted request
        self.on_retry_hook: Callable[[int], None] = lambda count: None
        self.on_sent_hook: Callable[[int], None] = lambda count: None

    def retried(self, error: ReceiverError, wait: float) -> None:
        self.retries.append((error, wait))
        self.on_retry_hook(len(self.retries))

    def sent(self, count: int) -> None:
        self.accepted.append(count)
        self.on_sent_hook(len(self.accepted))


@pytest.fixture
def cursor_path(tmp_path: Path) -> Path:
    return tmp_path / "follow-cursor.json"


@pytest.fixture
def sinks() -> Iterator[Callable[[str, float], OtlpHttpSink]]:
    """Makes OTLP/HTTP sinks (endpoint, timeout), closed after the test."""
    made: list[OtlpHttpSink] = []

    def make(endpoint: str, timeout: float = PATIENT_TIMEOUT_S) -> OtlpHttpSink:
        sink = OtlpHttpSink(endpoint, timeout=timeout)
        made.append(sink)
        return sink

    yield make
    for sink in made:
        sink.close()


@pytest.fixture
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Waits of 10 ms, 20 ms, ... between the follower's retries."""
    monkeypatch.setattr(otel_follow, "FIRST_BACKOFF_S", 0.01)


def make_follower(
    db: DatabaseManager,
    sink: OtlpHttpSink,
    cursor_path: Path,
    watch: Watch | None = None,
    **options: Any,
) -> Follower:
    watch = watch or Watch()
    return Follower(
        db,
        sink,
        cursor_path,
        store=db.location,
        target=TARGET,
        interval=0.05,
        on_retry=watch.retried,
        on_sent=watch.sent,
        **options,
    )


def assert_each_version_once(recorder: OtlpRecorder) -> None:
    """No span arrived twice with the same content."""
    doubled = {key: count for key, count in recorder.versions().items() if count > 1}
    assert not doubled, f"sent twice unchanged: {doubled}"
    # A span id stands for one row, whatever the version.
    rows: dict[str, set[Label]] = {}
    for delivery in recorder.deliveries:
        rows.setdefault(delivery.span_id, set()).add(label(delivery))
    assert all(len(labelled) == 1 for labelled in rows.values()), rows


def delivered_since(recorder: OtlpRecorder, index: int) -> list[Label]:
    return labels(recorder)[index:]


async def until_set(event: asyncio.Event, task: asyncio.Task[Any]) -> None:
    """Until ``event`` is set while ``task`` runs; what ended ``task`` first is raised."""
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiter, task}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if not event.is_set():
        if task.done():
            task.result()
        pytest.fail(f"waited 60 s in vain for the event; the task is done: {task.done()}")


async def assert_poll_sends_nothing(follower: Follower, recorder: OtlpRecorder) -> None:
    requests = len(recorder.requests)
    assert await follower.poll() == 0
    assert len(recorder.requests) == requests


# --- what is sent, and when -------------------------------------------------------------


async def test_first_poll_sends_the_finished_spans_of_the_history_so_far(
    db: DatabaseManager,
    otlp_recorder: OtlpRecorder,  # noqa: F811
    sinks: Callable[..., OtlpHttpSink],
    cursor_path: Path,
) -> None:
    kinds = await definitions(db)
    planner, planner_prompt = await finished_agent(db, kinds["planner"], "s-done")
    reviewer = await start_agent(db, kinds["builder"], "s-done", parent=planner)
    await db.create_agent_log(reviewer, "ERROR", "error", "tests failed")
    await finish_agent(db, reviewer, "failed")
    builder = await start_agent(db, kinds["builder"], "s-live")
    builder_done = await run_prompt(db, builder)
    await run_prompt(db, builder, finish=False)  # still streaming: not sent
    await db.create_agent_log(builder, "INFO", "tool_call", "read a file")
    log_id = await db.create_system_log("WARNING", "scheduler", "queue depth 12")
    day = await system_log_day(db, log_id)
    follower = make_follower(db, sinks(otlp_recorder.url), cursor_path)

    sent = await follower.poll()

    expected = {
        session_span("s-done"),
        agent_span(planner),
        prompt_span(planner_prompt),
        agent_span(reviewer),
        prompt_span(builder_done),  # a running agent's finished prompt
        day_span("scheduler", day),
        system_log_span(log_id),
    }
    assert sorted(labels(otlp_recorder)) == sorted(expected)
    assert sent == len(expected) == follower.sent
    # Not the running agent, nor its session's root: those are sent once finished.
    spans = latest(otlp_recorder)
    assert spans[agent_span(reviewer)].parent_span_id == spans[agent_span(planner)].span_id
    assert spans[agent_span(reviewer)].status_code == 2  # error
    assert [name for name, _ in spans[agent_span(planner)].events] == ["milestone"]
    assert spans[session_span("s-done")].attributes["orchestrator.session.agents"] == 2
    log_span = spans[system_log_span(log_id)]
    assert log_span.parent_span_id == spans[day_span("scheduler", day)].span_id
    saved = json.loads(cursor_path.read_text(encoding="utf-8"))
    assert saved["phase"] == "live" and saved["store"] == db.location
    await assert_poll_sends_nothing(follower, otlp_recorder)


async def test_a_running_agent_is_sent_once_when_it_finishes(
    db: DatabaseManager,
    otlp_recorder: OtlpRecorder,  # noqa: F811
    sinks: Callable[..., OtlpHttpSink],
    cursor_path: Path,
) -> None:
    kinds = await definitions(db)
    planner, _ = await finished_agent(db, kinds["planner"], "s1")
    builder = await start_agent(db, kinds["builder"], "s1", parent=planner)
    streaming = await run_prompt(db, builder, finish=False)
    follower = make_follower(db, sinks(otlp_recorder.url), cursor_path)
    await follower.poll()
    first = len(otlp_recorder.deliveries)
    await assert_poll_sends_nothing(follower, otlp_recorder)

    # Its prompt finishes: that prompt alone (the agent still runs).
    await finish_prompt(db, streaming)
    assert await follower.poll() == 1
    assert delivered_since(otlp_recorder, first) == [prompt_span(streaming)]
    await assert_poll_sends_nothing(follower, otlp_recorder)

    # It logs and finishes: its span once, and the session's root, now that none runs.
    await db.create_agent_log(builder, "INFO", "state_change", "executing -> completed")
    await finish_agent(db, builder)
    assert await follower.poll() == 2
    assert sorted(delivered_since(otlp_recorder, first + 1)) == sorted(
        [agent_span(builder), session_span("s1")]
    )
    builder_span = latest(otlp_recorder)[agent_span(builder)]
    assert builder_span.attributes["orchestrator.agent.status"] == "completed"
    assert [name for name, _ in builder_span.events] == ["state_change"]
    await assert_poll_sends_nothing(follower, otlp_recorder)
    assert_each_version_once(otlp_recorder)
    assert labels(otlp_recorder).count(agent_span(builder)) == 1


async def test_a_log_added_to_a_finished_agent_in_an_active_session_resends_it_once(
    db: DatabaseManager,
    otlp_recorder: OtlpRecorder,  # noqa: F811
    sinks: Callable[..., OtlpHttpSink],
    cursor_path: Path,
) -> None:
    kinds = await definitions(db)
    planner, _ = await finished_agent(db, kinds["planner"], "s1")
    await start_agent(db, kinds["builder"], "s1", parent=planner)  # keeps s1 active
    follower = make_follower(db, sinks(otlp_recorder.url), cursor_path)
    await follower.poll()
    first = len(otlp_recorder.deliveries)

    await db.create_agent_log(planner, "WARNING", "performance", "late note", {"seconds": 3})
    assert await follower.poll() == 1

    assert delivered_since(otlp_recorder, first) == [agent_span(planner)]
    events = latest(otlp_recorder)[agent_span(planner)].events
    assert [message["log.message"] for _, message in events] == ["step done", "late note"]
    await assert_poll_sends_nothing(follower, otlp_recorder)
    assert_each_version_once(otlp_recorder)
    assert labels(otlp_recorder).count(agent_span(planner)) == 2  # once per version


async def test_a_log_added_to_a_quiet_session_brings_it_back_and_resends_that_agent_once(
    db: DatabaseManager,
    otlp_recorder: OtlpRecorder,  # noqa: F811
    sinks: Callable[..., OtlpHttpSink],
    cursor_path: Path,
) -> None:
    # No margin: the session is quiet (no longer watched) from the second poll on.
    kinds = await definitions(db)
    planner, _ = await finished_agent(db, kinds["planner"], "s1")
    builder, _ = await finished_agent(db, kinds["builder"], "s1", parent=planner)
    follower = make_follower(db, sinks(otlp_recorder.url), cursor_path, margin=0.0)
    await follower.poll()
    await assert_poll_sends_nothing(follower, otlp_recorder)
    assert follower.cursor.tracked == {}
    first = len(otlp_recorder.deliveries)

    await db.create_agent_log(builder, "INFO", "cost_update", "billed late")
    assert await follower.poll() == 1

    assert delivered_since(otlp_recorder, first) == [agent_span(builder)]
    await assert_poll_sends_nothing(follower, otlp_recorder)
    assert_each_version_once(otlp_recorder)


async def test_a_prompt_stored_after_its_call_is_not_sent_again_unchanged(
    db: DatabaseManager,
    otlp_recorder: OtlpRecorder,  # noqa: F811
    sinks: Callable[..., OtlpHttpSink],
    cursor_path: Path,
) -> None:
    """A prompt row written when the model's answer came back (created completed, with the
    call's latency): its span ends after the row's times. A log added later to its agent
    re-sends the agent, not the unchanged prompt."""
    kinds = await definitions(db)
    agent = await start_agent(db, kinds["builder"], "s1")
    prompt = await db.create_prompt(agent, "adw", "Do the step", status="completed")
    await db.update_prompt(prompt, latency_ms=120_000, completed_at=now())  # a 2-minute call
    await finish_agent(db, agent)
    follower = make_follower(db, sinks(otlp_recorder.url), cursor_path, margin=0.0)
    await follower.poll()
    await assert_poll_sends_nothing(follower, otlp_recorder)
    first = len(otlp_recorder.deliveries)

    await db.create_agent_log(agent, "INFO", "cost_update", "billed late")
    await follower.poll()

    assert delivered_since(otlp_recorder, first) == [agent_span(agent)]
    assert_each_version_once(otlp_recorder)


async def test_every_change_is_sent_once_over_a_session_s_life(
    db: DatabaseManager,
    otlp_recorder: OtlpRecorder,  # noqa: F811
    sinks: Callable[..., OtlpHttpSink],
    cursor_path: Path,
) -> None:
    """A session worked on between polls: each poll sends each changed span once, and
    the deliveries of a span id are its versions, one each."""
    kinds = await definitions(db)
    follower = make_follower(db, sinks(otlp_recorder.url), cursor_path)
    await follower.poll()  # an empty store
    planner = await start_agent(db, kinds["planner"], "s1")
    prompt = await run_prompt(db, planner, finish=False)
    child = await start_agent(db, kinds["builder"], "s1", parent=planner)
    spans = {
        "prompt": prompt_span(prompt),
        "planner": agent_span(planner),
        "child": agent_span(child),
        "root": session_span("s1"),
    }
    steps: list[tuple[str, Awaitable[Any], list[str]]] = [
        ("started", asyncio.sleep(0), []),  # everything still running
        ("a log", db.create_agent_log(planner, "INFO", "milestone", "plan ready"), []),
        ("prompt done", finish_prompt(db, prompt), ["prompt"]),
        ("planner done", finish_agent(db, planner), ["planner"]),
        ("child failed", finish_agent(db, child, "failed"), ["child", "root"]),
        ("late log", db.create_agent_log(planner, "INFO", "cost_update", "paid"), ["planner"]),
        ("late agent", start_agent(db, kinds["builder"], "s1", parent=planner), []),
    ]
    for name, change, expected in steps:
        before = len(otlp_recorder.deliveries)
        await change
        await follower.poll()
        sent = delivered_since(otlp_recorder, before)
        assert sorted(sent) == sorted(spans[span] for span in expected), name
        await assert_poll_sends_nothing(follower, otlp_recorder)

    assert_each_version_once(otlp_recorder)
    assert Counter(labels(otlp_recorder)) == {
        spans["prompt"]: 1,
        spans["planner"]: 2,  # finished, then a late log
        spans["child"]: 1,
        spans["root"]: 1,  # not again while the late agent runs
    }
    root = latest(otlp_recorder)[spans["root"]]
    assert root.attributes["orchestrator.session.agents_failed"] == 1
    assert root.status_code == 2


async def test_system_logs_are_sent_once_each_with_their_component_day_once(
    db: DatabaseManager,
    otlp_recorder: OtlpRecorder,  # noqa: F811
    sinks: Callable[..., OtlpHttpSink],
    cursor_path: Path,
) -> None:
    first = await db.create_system_log("INFO", "scheduler", "started")
    follower = make_follower(db, sinks(otlp_recorder.url), cursor_path)
    await follower.poll()
    day = await system_log_day(db, first)
    assert sorted(labels(otlp_recorder)) == sorted(
        [day_span("scheduler", day), system_log_span(first)]
    )
    days_sent = {("scheduler", day)}

    # Runs of components, interleaved: each component's day span the first time only.
    for batch in (
        [("INFO", "scheduler", "queue depth 3"), ("ERROR", "orchestrator", "budget spent")],
        [("INFO", "scheduler", "queue depth 0")],
        [],
        [("DEBUG", "orchestrator", "tick"), ("INFO", "scheduler", "idle")],
    ):
        expected: list[Label] = []
        for level, component, message in batch:
            log_id = await db.create_system_log(level, component, message)
            log_day = await system_log_day(db, log_id)
            if (component, log_day) not in days_sent:  # midnight may pass, too
                days_sent.add((component, log_day))
                expected.append(day_span(component, log_day))
            expected.append(system_log_span(log_id))
        before = len(otlp_recorder.deliveries)
        assert await follower.poll() == len(expected)
        assert sorted(delivered_since(otlp_recorder, before)) == sorted(expected)

    assert len(labels(otlp_recorder)) == len(set(labels(otlp_recorder))) == 6 + len(days_sent)
    errors = [delivery for delivery in otlp_recorder.deliveries if delivery.status_code == 2]
    assert [delivery.status_message for delivery in errors] == ["budget spent"]
    await assert_poll_sends_nothing(follower, otlp_recorder)


# --- restarts ---------------------------------------------------------------------------


async def test_a_new_follower_on_the_cursor_sends_only_what_changed_while_none_ran(
    db: DatabaseManager,
    otlp_recorder: OtlpRecorder,  # noqa: F811
    sinks: Callable[..., OtlpHttpSink],
    cursor_path: Path,
) -> None:
    kinds = await definitions(db)
    planner, _ = await finished_agent(db, kinds["planner"], "s1")
    builder = await start_agent(db, kinds["builder"], "s1", parent=planner)
    first_log = await db.create_system_log("INFO", "scheduler", "started")
    before_stop = make_follower(db, sinks(otlp_recorder.url), cursor_path)
    await before_stop.poll()
    await before_stop.poll()
    sent_before = labels(otlp_recorder)

    # While no follower runs: the builder finishes, the planner gets a late log, a new
    # session runs to its end, the scheduler logs again.
    await finish_agent(db, builder)
    await db.create_agent_log(planner, "INFO", "cost_update", "cost settled")
    reviewer, reviewer_prompt = await finished_agent(db, kinds["builder"], "s2")
    second_log = await db.create_system_log("INFO", "scheduler", "stopping")
    after_restart = make_follower(db, sinks(otlp_recorder.url), cursor_path)
    assert after_restart.cursor.phase == "live"
    await after_restart.poll()

    expected = [
        agent_span(builder),
        session_span("s1"),
        agent_span(planner),
        agent_span(reviewer),
        prompt_span(reviewer_prompt),
        session_span("s2"),
        system_log_span(second_log),
    ]
    second_day = await system_log_day(db, second_log)
    if second_day != await system_log_day(db, first_log):  # midnight passed meanwhile
        expected.append(day_span("scheduler", second_day))
    assert sorted(delivered_since(otlp_recorder, len(sent_before))) == sorted(expected)
    await assert_poll_sends_nothing(after_restart, otlp_recorder)
    assert_each_version_once(otlp_recorder)


async def test_a_follow_stopped_in_the_middle_of_the_history_resumes_from_its_cursor(
    db: DatabaseManager,
    otlp_recorder: OtlpRecorder,  # noqa: F811
    sinks: Callable[..., OtlpHttpSink],
    cursor_path: Path,
    quick_backoff: None,
) -> None:
    """The process ends (here: cancelled while it waits for a refusing receiver) after
    some requests were taken; the next follow sends the rest, nothing twice."""
    kinds = await definitions(db)
    expected: set[Label] = set()
    for number in range(4):
        agent, prompt = await finished_agent(db, kinds["planner"], f"s{number}")
        expected |= {agent_span(agent), prompt_span(prompt), session_span(f"s{number}")}
    for number in range(3):
        log_id = await db.create_system_log("INFO", "scheduler", f"tick {number}")
        expected.add(system_log_span(log_id))
    expected.add(day_span("scheduler", await system_log_day(db, log_id)))
    watch = Watch()
    waiting = asyncio.Event()
    watch.on_sent_hook = lambda accepted: otlp_recorder.refuse() if accepted == 2 else None
    watch.on_retry_hook = lambda retries: waiting.set()
    sink = sinks(otlp_recorder.url, IMPATIENT_TIMEOUT_S)
    interrupted = make_follower(db, sink, cursor_path, watch, batch_size=2)

    task = asyncio.create_task(interrupted.poll())
    await until_set(waiting, task)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    taken = labels(otlp_recorder)
    assert len(watch.accepted) == 2 and len(taken) == sum(watch.accepted)

    otlp_recorder.accept()
    resumed = make_follower(db, sinks(otlp_recorder.url), cursor_path, batch_size=2)
    await resumed.poll()

    assert sorted(labels(otlp_recorder)) == sorted(expected)
    assert labels(otlp_recorder)[: len(taken)] == taken
    await assert_poll_sends_nothing(resumed, otlp_recorder)


@pytest.mark.parametrize("phase", ["initial", "live"])
async def test_a_follow_stopped_while_sending_system_logs_does_not_send_them_again(
    db: DatabaseManager,
    otlp_recorder: OtlpRecorder,  # noqa: F811
    sinks: Callable[..., OtlpHttpSink],
    cursor_path: Path,
    quick_backoff: None,
    phase: str,
) -> None:
    """Three runs of system logs (a, b, a): one request each. The receiver takes the
    first, then refuses; the follow is stopped while it waits. The next one sends the
    rest, and not the first run again."""
    sink = sinks(otlp_recorder.url, IMPATIENT_TIMEOUT_S)
    if phase == "live":
        await make_follower(db, sink, cursor_path).poll()  # the history: nothing yet
    log_ids = [await db.create_system_log("INFO", name, "tick") for name in ("a", "b", "a")]
    watch = Watch()
    waiting = asyncio.Event()
    watch.on_sent_hook = lambda accepted: otlp_recorder.refuse()
    watch.on_retry_hook = lambda retries: waiting.set()
    task = asyncio.create_task(make_follower(db, sink, cursor_path, watch).poll())
    await until_set(waiting, task)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert watch.accepted == [2]  # the first run: its day span and its log

    otlp_recorder.accept()
    await make_follower(db, sink, cursor_path).poll()

    assert sorted(labels(otlp_recorder)) == sorted(
        [system_log_span(log_id) for log_id in log_ids]
        + [day_span(name, await system_log_day(db, log_ids[0])) for name in ("a", "b")]
    )


# --- a receiver down, refusing or slow -----------------------------------------------------


async def test_a_receiver_stopped_mid_export_is_retried_until_back_losing_and_doubling_nothing(
    db: DatabaseManager,
    otlp_recorder: OtlpRecorder,  # noqa: F811
    sinks: Callable[..., OtlpHttpSink],
    cursor_path: Path,
    quick_backoff: None,
) -> None:
    kinds = await definitions(db)
    expected: set[Label] = set()
    for number in range(3):
        agent, prompt = await finished_agent(db, kinds["planner"], f"s{number}")
        expected |= {agent_span(agent), prompt_span(prompt), session_span(f"s{number}")}
    watch = Watch()
    # Down after the first request it takes; back up at the follower's third retry.
    watch.on_sent_hook = lambda accepted: otlp_recorder.stop() if accepted == 1 else None
    watch.on_retry_hook = lambda retries: otlp_recorder.start() if retries == 3 else None
    follower = make_follower(
        db, sinks(otlp_recorder.url, IMPATIENT_TIMEOUT_S), cursor_path, watch, batch_size=2
    )

    await follower.poll()

    assert [wait for _, wait in watch.retries] == [0.01, 0.02, 0.04]  # doubling
    assert all(otlp_recorder.url in str(error) for error, _ in watch.retries)
    assert sorted(labels(otlp_recorder)) == sorted(expected)
    assert follower.sent == len(expected)


async def test_a_receiver_down_while_rows_change_gets_them_once_it_is_back(
    db: DatabaseManager,
    otlp_recorder: OtlpRecorder,  # noqa: F811
    sinks: Callable[..., OtlpHttpSink],
    cursor_path: Path,
    quick_backoff: None,
) -> None:
    kinds = await definitions(db)
    planner, _ = await finished_agent(db, kinds["planner"], "s1")
    builder = await start_agent(db, kinds["builder"], "s1", parent=planner)
    watch = Watch()
    follower = make_follower(db, sinks(otlp_recorder.url, IMPATIENT_TIMEOUT_S), cursor_path, watch)
    await follower.poll()
    before = len(otlp_recorder.deliveries)

    otlp_recorder.stop()
    prompt = await run_prompt(db, builder)
    await finish_agent(db, builder)
    log_id = await db.create_system_log("ERROR", "scheduler", "receiver unreachable")
    retrying = asyncio.Event()
    watch.on_retry_hook = lambda retries: retrying.set() if retries >= 2 else None
    task = asyncio.create_task(follower.poll())
    await until_set(retrying, task)
    assert not task.done()  # still retrying: nothing moves on without the receiver
    otlp_recorder.start()
    await asyncio.wait_for(task, 60)

    day = await system_log_day(db, log_id)
    assert sorted(delivered_since(otlp_recorder, before)) == sorted(
        [
            prompt_span(prompt),
            agent_span(builder),
            session_span("s1"),
            day_span("scheduler", day),
            system_log_span(log_id),
        ]
    )
    await assert_poll_sends_nothing(follower, otlp_recorder)
    assert_each_version_once(otlp_recorder)


async def test_a_refusing_receiver_gets_the_same_spans_again_with_growing_waits(
    db: DatabaseManager,
    otlp_recorder: OtlpRecorder,  # noqa: F811
    sinks: Callable[..., OtlpHttpSink],
    cursor_path: Path,
    quick_backoff: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(otel_follow, "MAX_BACKOFF_S", 0.03)
    kinds = await definitions(db)
    planner, prompt = await finished_agent(db, kinds["planner"], "s1")
    watch = Watch()
    follower = make_follower(db, sinks(otlp_recorder.url, IMPATIENT_TIMEOUT_S), cursor_path, watch)
    otlp_recorder.refuse(4)  # 503 Service Unavailable, four times

    await follower.poll()

    assert [wait for _, wait in watch.retries] == [0.01, 0.02, 0.03, 0.03]  # capped
    requests = otlp_recorder.requests
    assert [request.status for request in requests] == [503, 503, 503, 503, 200]
    assert len({request.span_ids for request in requests}) == 1  # the same batch each time
    assert sorted(labels(otlp_recorder)) == sorted(
        [agent_span(planner), prompt_span(prompt), session_span("s1")]
    )
    await assert_poll_sends_nothing(follower, otlp_recorder)


async def test_a_slow_receiver_gets_the_request_it_was_too_slow_for_again_and_nothing_else(
    db: DatabaseManager,
    otlp_recorder: OtlpRecorder,  # noqa: F811
    sinks: Callable[..., OtlpHttpSink],
    cursor_path: Path,
    quick_backoff: None,
) -> None:
    """A receiver slower than the timeout still takes the request the follower gave up
    on: those spans arrive twice, identical (same ids and content, which a receiver
    deduplicates, as the module says); every other span arrives once."""
    kinds = await definitions(db)
    planner, prompt = await finished_agent(db, kinds["planner"], "s1")
    builder, builder_prompt = await finished_agent(db, kinds["builder"], "s2")
    watch = Watch()
    follower = make_follower(
        db, sinks(otlp_recorder.url, IMPATIENT_TIMEOUT_S), cursor_path, watch, batch_size=3
    )
    otlp_recorder.slow(IMPATIENT_TIMEOUT_S * 2, count=1)

    await follower.poll()
    otlp_recorder.wait_idle()  # the slow answer has been taken meanwhile

    assert len(watch.retries) == 1
    requests = otlp_recorder.requests
    late = [request for request in requests if request.delayed]
    assert len(late) == 1 and late[0].number == 1
    on_time = [request for request in requests if not request.delayed]
    assert [request.number for request in on_time] == [2, 3]
    assert on_time[0].span_ids == late[0].span_ids  # the same batch, sent again
    row_of = {delivery.span_id: label(delivery) for delivery in otlp_recorder.deliveries}
    counts = otlp_recorder.versions()
    assert {row_of[span] for span, _ in counts} == {
        agent_span(planner),
        prompt_span(prompt),
        session_span("s1"),
        agent_span(builder),
        prompt_span(builder_prompt),
        session_span("s2"),
    }
    assert {span for (span, _), count in counts.items() if count == 2} == set(late[0].span_ids)
    assert max(counts.values()) == 2
    await assert_poll_sends_nothing(follower, otlp_recorder)


# --- the cursor -------------------------------------------------------------------------


@pytest.mark.parametrize("changed", ["store", "target"])
async def test_a_cursor_of_another_store_or_receiver_is_refused_naming_both(
    db: DatabaseManager,
    otlp_recorder: OtlpRecorder,  # noqa: F811
    sinks: Callable[..., OtlpHttpSink],
    cursor_path: Path,
    changed: str,
) -> None:
    kinds = await definitions(db)
    await finished_agent(db, kinds["planner"], "s1")
    await make_follower(db, sinks(otlp_recorder.url), cursor_path).poll()
    saved = cursor_path.read_bytes()
    other = {"store": db.location, "target": TARGET, changed: f"another-{changed}"}

    with pytest.raises(ValidationError) as refused:
        Follower(
            db, sinks(otlp_recorder.url), cursor_path, store=other["store"], target=other["target"]
        )

    message = str(refused.value)
    assert f"follows {db.location} into {TARGET}" in message
    assert f"not {other['store']} into {other['target']}" in message
    assert str(cursor_path) in message and "--cursor" in message
    assert cursor_path.read_bytes() == saved  # left as it was


@pytest.mark.backend("sqlite")
@pytest.mark.parametrize(
    "content",
    [
        "",
        "{not json",
        "[]",
        "{}",
        "null",
        '{"version": 2, "store": "s", "target": "t"}',
        '{"version": 1, "store": "s"}',
        '{"version": 1, "store": "s", "target": "t", "surprise": 1}',
    ],
    ids=["empty", "broken", "list", "no-version", "null", "version-2", "no-target", "unknown"],
)
async def test_a_corrupt_cursor_is_refused_saying_to_remove_it(
    db: DatabaseManager,
    otlp_recorder: OtlpRecorder,  # noqa: F811
    sinks: Callable[..., OtlpHttpSink],
    cursor_path: Path,
    content: str,
) -> None:
    cursor_path.write_text(content, encoding="utf-8")

    with pytest.raises(ValidationError) as refused:
        Follower(db, sinks(otlp_recorder.url), cursor_path, store="s", target="t")

    message = str(refused.value)
    assert message.startswith(f"{cursor_path} is not a follow cursor")
    assert "remove it" in message
    assert otlp_recorder.requests == []


# --- the command line -----------------------------------------------------------------------

# Runs the command line with Ctrl-C as a terminal delivers it, even when the tests run
# as a background job of a non-interactive shell (which starts with SIGINT ignored).
WITH_CTRL_C = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv = ['orchestrator-store', *sys.argv[1:]]; "
    "runpy.run_module('orchestrator_store.cli', run_name='__main__', alter_sys=True)"
)


class CliFollow:
    """``orchestrator-store export --format otlp --follow`` in a subprocess, its stderr
    read line by line as it comes."""

    def __init__(self, arguments: list[str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", WITH_CTRL_C, *arguments],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def total_sent(self) -> int:
        """The last ``sent N spans (total M)`` line's M: what its polls sent and saved."""
        totals = [line for line in self.lines if line.startswith("sent ") and "(total " in line]
        return int(totals[-1].rsplit("(total ", 1)[1].rstrip(")")) if totals else 0

    def wait_for_total(self, count: int, timeout: float = 60.0) -> None:
        """Until its polls have sent ``count`` spans (and saved the cursor after them)."""
        with self._changed:
            done = self._changed.wait_for(
                lambda: self.total_sent() >= count or self.process.poll() is not None, timeout
            )
        assert done and self.process.poll() is None, "\n".join(self.lines)
        assert self.total_sent() == count, "\n".join(self.lines)

    async def delivers(self, recorder: OtlpRecorder, *spans: Label) -> None:
        """Until the receiver has ``spans`` (failing at once if the command line ended)."""

        def arrived(receiver: OtlpRecorder) -> bool:
            return set(spans) <= set(labels(receiver)) or self.process.poll() is not None

        await asyncio.to_thread(recorder.wait_until, arrived)
        assert self.process.poll() is None, "\n".join(self.lines)

    def interrupt(self) -> int:
        """Ctrl-C; its exit status."""
        try:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=60)
        finally:
            if self.process.poll() is None:
                self.process.kill()  # never left polling if the signal was lost
                self.process.wait(timeout=60)
        self._reader.join(timeout=60)
        return self.process.returncode


async def test_the_command_line_follows_until_ctrl_c_and_a_restart_sends_nothing_twice(
    db: DatabaseManager,
    otlp_recorder: OtlpRecorder,  # noqa: F811
    store_url: Any,
    tmp_path: Path,
) -> None:
    kinds = await definitions(db)
    planner, planner_prompt = await finished_agent(db, kinds["planner"], "s1")
    arguments = ["--db", str(store_url), "export", "--format", "otlp"]
    arguments += ["--endpoint", otlp_recorder.url, "--follow", "--interval", "0.2"]
    if db.backend_name == "postgresql":
        cursor = tmp_path / "postgres.otlp-cursor.json"
        arguments += ["--cursor", str(cursor)]
    else:
        cursor = Path(f"{store_url}.otlp-cursor.json")  # the default: beside the store

    follow = CliFollow(arguments)
    try:
        await follow.delivers(
            otlp_recorder, agent_span(planner), prompt_span(planner_prompt), session_span("s1")
        )
        # This process writes while the command line follows.
        builder = await start_agent(db, kinds["builder"], "s1", parent=planner)
        prompt = await run_prompt(db, builder)
        await follow.delivers(otlp_recorder, prompt_span(prompt))
        await finish_agent(db, builder)
        log_id = await db.create_system_log("INFO", "scheduler", "builder done")
        await follow.delivers(otlp_recorder, agent_span(builder), system_log_span(log_id))
        await asyncio.to_thread(follow.wait_for_total, len(otlp_recorder.deliveries))
    finally:
        status = follow.interrupt()
    assert status == 0, "\n".join(follow.lines)
    assert not any("Traceback" in line for line in follow.lines), "\n".join(follow.lines)
    assert follow.lines[0].startswith("following ")
    assert cursor.is_file()
    first_run = labels(otlp_recorder)
    # The root of s1 twice (one agent, then two), every other span once.
    assert first_run.count(session_span("s1")) == 2
    assert len(first_run) == len(set(first_run)) + 1

    # Stopped: a new session runs. The restarted follow sends it, and nothing else.
    reviewer, reviewer_prompt = await finished_agent(db, kinds["builder"], "s2")
    again = CliFollow(arguments)
    try:
        await again.delivers(
            otlp_recorder, agent_span(reviewer), prompt_span(reviewer_prompt), session_span("s2")
        )
        await asyncio.to_thread(again.wait_for_total, 3)
    finally:
        status = again.interrupt()
    assert status == 0, "\n".join(again.lines)
    assert sorted(labels(otlp_recorder)[len(first_run) :]) == sorted(
        [agent_span(reviewer), prompt_span(reviewer_prompt), session_span("s2")]
    )
    assert_each_version_once(otlp_recorder)


async def test_run_polls_until_stopped_and_sends_what_finishes_meanwhile(
    db: DatabaseManager,
    otlp_recorder: OtlpRecorder,  # noqa: F811
    sinks: Callable[..., OtlpHttpSink],
    cursor_path: Path,
) -> None:
    """``Follower.run``, the loop for callers of their own: it keeps polling at its
    interval, and ends when ``stop`` is set."""
    kinds = await definitions(db)
    follower = make_follower(db, sinks(otlp_recorder.url), cursor_path)
    stop = asyncio.Event()
    running = asyncio.create_task(follower.run(stop))
    planner, prompt = await finished_agent(db, kinds["planner"], "s1")
    # Waited for off the loop: the follower runs on it meanwhile.
    await asyncio.to_thread(
        otlp_recorder.wait_until, lambda recorder: session_span("s1") in labels(recorder)
    )
    stop.set()
    await asyncio.wait_for(running, 30)  # a guard against hanging only

    assert sorted(labels(otlp_recorder)) == sorted(
        [agent_span(planner), prompt_span(prompt), session_span("s1")]
    )
