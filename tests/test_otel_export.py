"""The OpenTelemetry export into an OTLP JSON file, read back with the protobuf
definitions the SDK ships, on both backends: the realistic session's traces, spans,
attributes, events and ids; content only on request; ``session=`` and ``since=``;
the same bytes on every export; and the file written safely.

``SpanView`` and ``check_realistic_traces`` are shared with ``test_otel_phoenix``,
which holds Phoenix's view of the same export to the same expectations.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from realistic_session import (
    AGENTS,
    EXPECTED,
    LOGS_A,
    LOGS_B,
    PROMPTS,
    SESSION_A,
    SESSION_B,
    RecordedSession,
)

from orchestrator_store import otel_mapping
from orchestrator_store.copy_to_postgres import copy_sqlite_to_postgres
from orchestrator_store.errors import ValidationError
from orchestrator_store.manager import DatabaseManager
from orchestrator_store.otel_export import (
    BATCH_SIZE,
    ExportReport,
    read_otlp_json_line,
    write_otlp_json,
)
from orchestrator_store.otel_mapping import span_id_of, trace_id_of

# The realistic session as spans: 2 roots, 5 agents, 6 prompts; 5 system logs under
# 4 component days (the orchestrator and the scheduler, on each session's day).
SESSION_SPANS = {SESSION_A: 8, SESSION_B: 5}
SYSTEM_LOGS = [row for row in (*LOGS_A, *LOGS_B) if row[3] is None]
ALL_SPANS = sum(SESSION_SPANS.values()) + len(SYSTEM_LOGS) + 4
ALL_TRACES = len(SESSION_SPANS) + 4


@dataclass(frozen=True)
class SpanView:
    """A span as any reader shows it: ids in hex, status as its name."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    status: str  # UNSET, OK or ERROR
    status_message: str
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return None if kind is None else getattr(value, kind)


def _attributes(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _view(span: Span) -> SpanView:
    return SpanView(
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_id=span.parent_span_id.hex() or None,
        name=span.name,
        status=Status.StatusCode.Name(span.status.code).removeprefix("STATUS_CODE_"),
        status_message=span.status.message,
        attributes=_attributes(span.attributes),
        events=[(event.name, _attributes(event.attributes)) for event in span.events],
    )


@dataclass
class JsonExport:
    report: ExportReport
    lines: list[str]
    spans: list[SpanView]
    resources: list[dict[str, Any]]


async def export_json(location: Path | str, output: Path, **options: Any) -> JsonExport:
    """Export the store at ``location`` to ``output`` and parse the file back."""
    async with DatabaseManager(location) as db:
        report = await write_otlp_json(db, output, **options)
    lines = output.read_text(encoding="utf-8").splitlines()
    spans: list[SpanView] = []
    resources = []
    for line in lines:
        for resource_spans in read_otlp_json_line(line).resource_spans:
            resources.append(_attributes(resource_spans.resource.attributes))
            for scope_spans in resource_spans.scope_spans:
                assert scope_spans.scope.name == otel_mapping.SCOPE.name
                spans.extend(_view(span) for span in scope_spans.spans)
    return JsonExport(report, lines, spans, resources)


def hex_id(number: int, size: int) -> str:
    return number.to_bytes(size, "big").hex()


def by_trace(spans: Iterable[SpanView]) -> dict[str, list[SpanView]]:
    traces: dict[str, list[SpanView]] = defaultdict(list)
    for span in spans:
        traces[span.trace_id].append(span)
    return traces


def check_realistic_traces(
    spans: list[SpanView],
    recorded: RecordedSession,
    *,
    session: Callable[[str], str] = str,
    component: Callable[[str], str] = str,
) -> None:
    """Assert that ``spans`` are the realistic session's export, span for span.
    ``session`` and ``component`` give the names the store held, when renamed."""
    assert len(spans) == ALL_SPANS
    assert len({span.span_id for span in spans}) == ALL_SPANS
    traces = by_trace(spans)
    assert len(traces) == ALL_TRACES
    by_id = {span.span_id: span for span in spans}
    agent_spans: dict[str, SpanView] = {}
    for name, count in SESSION_SPANS.items():
        session_id = session(name)
        trace = traces[hex_id(trace_id_of(session_id), 16)]
        assert len(trace) == count
        (root,) = (span for span in trace if span.parent_id is None)
        assert root.span_id == hex_id(span_id_of("session", session_id), 8)
        assert root.name == f"invoke_workflow {session_id}"
        assert root.attributes["gen_ai.operation.name"] == "invoke_workflow"
        assert root.attributes["gen_ai.conversation.id"] == session_id
        for key, definition, owner, parent, status, *_, error, cost in AGENTS:
            if owner != name:
                continue
            agent_id = recorded.agents[key]
            span = by_id[hex_id(span_id_of("agent", agent_id), 8)]
            agent_spans[key] = span
            assert span.trace_id == root.trace_id
            assert span.name == f"invoke_agent {definition}"
            expected_parent = root if parent is None else agent_spans[parent]
            assert span.parent_id == expected_parent.span_id
            assert span.attributes["gen_ai.operation.name"] == "invoke_agent"
            assert span.attributes["gen_ai.agent.id"] == agent_id
            assert span.attributes["gen_ai.agent.name"] == definition
            assert span.attributes["gen_ai.conversation.id"] == session_id
            assert span.attributes["orchestrator.agent.status"] == status
            assert span.attributes["orchestrator.agent.cost_usd"] == pytest.approx(cost)
            failed = status == "failed"
            assert (span.status, span.status_message) == (
                ("ERROR", error) if failed else ("UNSET", "")
            )
            assert span.attributes.get("error.type") == ("_OTHER" if failed else None)
    failed_agents = EXPECTED["sessions"][SESSION_A]["failed_agents"]
    root_a = by_id[hex_id(span_id_of("session", session(SESSION_A)), 8)]
    assert (root_a.status, root_a.status_message) == (
        "ERROR",
        f"{failed_agents} of 3 agents failed",
    )
    assert root_a.attributes["error.type"] == "_OTHER"
    root_b = by_id[hex_id(span_id_of("session", session(SESSION_B)), 8)]
    assert root_b.status == "UNSET"
    assert root_b.attributes["orchestrator.session.agents_running"] == 1

    # Prompts: `chat {model}` under their agent, with their usage and cost.
    prompts = {
        (span.parent_id, span.attributes["orchestrator.prompt.type"]): span
        for span in spans
        if span.attributes.get("gen_ai.operation.name") == "chat"
    }
    assert len(prompts) == len(PROMPTS)
    for key, kind, _, model, status, tokens_in, tokens_out, cost, latency, error in PROMPTS:
        span = prompts[(agent_spans[key].span_id, kind)]
        assert span.trace_id == agent_spans[key].trace_id
        assert span.name == f"chat {model}"
        assert span.attributes["gen_ai.request.model"] == model
        assert span.attributes["gen_ai.provider.name"] == "anthropic"
        assert span.attributes["gen_ai.usage.input_tokens"] == tokens_in
        assert span.attributes["gen_ai.usage.output_tokens"] == tokens_out
        assert span.attributes["gen_ai.usage.cost.amount"] == pytest.approx(cost)
        assert span.attributes["gen_ai.usage.cost.currency"] == "USD"
        assert span.attributes["orchestrator.prompt.status"] == status
        assert span.attributes.get("orchestrator.prompt.latency_ms") == latency
        failed = status == "failed"
        assert (span.status, span.status_message) == (("ERROR", error) if failed else ("UNSET", ""))
        assert span.attributes.get("error.type") == ("_OTHER" if failed else None)
    chats = prompts.values()
    assert sum(span.attributes["gen_ai.usage.input_tokens"] for span in chats) == 4600
    assert sum(span.attributes["gen_ai.usage.output_tokens"] for span in chats) == 950
    total_cost = sum(span.attributes["gen_ai.usage.cost.amount"] for span in chats)
    # Model calls carry the prompts' costs; agents' own costs (under no model) stay on agents.
    assert total_cost == pytest.approx(EXPECTED["total"][3] - EXPECTED["by_model"][None][3])

    # Agent logs: events on their agent's span, in order.
    for key, span in agent_spans.items():
        expected_events = [
            (log_type, level, message)
            for _, who, level, log_type, message, _ in (*LOGS_A, *LOGS_B)
            if who == key
        ]
        assert [
            (name, attributes["log.level"], attributes["log.message"])
            for name, attributes in span.events
        ] == expected_events
    (slow_test,) = (event for name, event in agent_spans["a2"].events if name == "performance")
    assert json.loads(slow_test["log.details"]) == {"seconds": 412}

    # System logs: `log {component}` spans under their component's day.
    days = {SESSION_A: recorded.day(recorded.base_a), SESSION_B: recorded.day(recorded.base_b)}
    expected_logs = sorted(
        (component(who), level, message, days[name])
        for name, logs in ((SESSION_A, LOGS_A), (SESSION_B, LOGS_B))
        for _, who, level, log_type, message, _ in logs
        if log_type is None
    )
    log_spans = [span for span in spans if span.name.startswith("log ")]
    found = []
    for span in log_spans:
        day_span = by_id[span.parent_id or ""]
        name = span.attributes["orchestrator.component"]
        assert span.name == f"log {name}"
        assert day_span.name == f"component {name}"
        assert day_span.parent_id is None
        assert day_span.trace_id == span.trace_id
        ((event_name, event),) = span.events
        assert event_name == "log"
        assert span.status == ("ERROR" if event["log.level"] == "ERROR" else "UNSET")
        day = day_span.attributes["orchestrator.day"]
        found.append((name, event["log.level"], event["log.message"], day))
    assert sorted(found) == expected_logs


@pytest.fixture
async def store(backend: str, store_url: Any, recorded: RecordedSession) -> Path | str:
    """The realistic session on this test's backend (a copy of it on PostgreSQL)."""
    if backend == "sqlite":
        return recorded.path
    await copy_sqlite_to_postgres(recorded.path, store_url)
    return str(store_url)


@pytest.fixture
def fresh_resource() -> Iterator[None]:
    """The export's resource read again from the environment, here and after."""
    otel_mapping.resource.cache_clear()
    yield
    otel_mapping.resource.cache_clear()


HEX_IDS = {"traceId": 32, "spanId": 16, "parentSpanId": 16}


async def test_the_file_holds_each_session_as_a_trace_of_agents_and_prompts(
    store: Path | str, recorded: RecordedSession, tmp_path: Path
) -> None:
    exported = await export_json(store, tmp_path / "traces.jsonl")
    assert exported.report == ExportReport(
        sessions=2, system_logs=len(SYSTEM_LOGS), spans=ALL_SPANS, requests=1
    )
    assert len(exported.lines) == 1  # fewer spans than a batch: one request
    check_realistic_traces(exported.spans, recorded)


async def test_ids_in_the_file_are_hex_as_otlp_json_requires(
    store: Path | str, tmp_path: Path
) -> None:
    exported = await export_json(store, tmp_path / "traces.jsonl")
    raw = [
        span
        for line in exported.lines
        for resource_spans in json.loads(line)["resourceSpans"]
        for scope_spans in resource_spans["scopeSpans"]
        for span in scope_spans["spans"]
    ]
    assert len(raw) == ALL_SPANS
    for span in raw:
        for field, length in HEX_IDS.items():
            if field in span:
                assert re.fullmatch(f"[0-9a-f]{{{length}}}", span[field]), (field, span[field])
    # Parsing the hex back gives the very same ids.
    assert [(span["traceId"], span["spanId"], span.get("parentSpanId")) for span in raw] == [
        (span.trace_id, span.span_id, span.parent_id) for span in exported.spans
    ]
    assert sum("parentSpanId" not in span for span in raw) == ALL_TRACES  # one root each


async def test_content_attributes_only_when_asked(store: Path | str, tmp_path: Path) -> None:
    content = ("gen_ai.input.messages", "gen_ai.output.messages")
    plain = await export_json(store, tmp_path / "plain.jsonl")
    assert not [span for span in plain.spans if set(content) & span.attributes.keys()]

    full = await export_json(store, tmp_path / "full.jsonl", with_content=True)
    chats = [span for span in full.spans if span.attributes.get("gen_ai.operation.name") == "chat"]
    asked = {
        json.loads(span.attributes["gen_ai.input.messages"])[0]["parts"][0]["content"]: span
        for span in chats
    }
    assert len(asked) == len(chats) == len(PROMPTS)
    for _, _, text, _, status, *_ in PROMPTS:
        span = asked[text]
        assert json.loads(span.attributes["gen_ai.input.messages"]) == [
            {"role": "user", "parts": [{"type": "text", "content": text}]}
        ]
        if status == "completed":  # the realistic session's responses are all "done"
            assert json.loads(span.attributes["gen_ai.output.messages"]) == [
                {
                    "role": "assistant",
                    "parts": [{"type": "text", "content": "done"}],
                    "finish_reason": "stop",
                }
            ]
        else:
            assert "gen_ai.output.messages" not in span.attributes
    # Otherwise the same spans.
    strip = {
        span.span_id: {k: v for k, v in span.attributes.items() if k not in content}
        for span in full.spans
    }
    assert strip == {span.span_id: span.attributes for span in plain.spans}


async def test_one_session_exports_its_trace_only(
    store: Path | str, recorded: RecordedSession, tmp_path: Path
) -> None:
    exported = await export_json(store, tmp_path / "a.jsonl", session=SESSION_A)
    assert exported.report == ExportReport(
        sessions=1, system_logs=0, spans=SESSION_SPANS[SESSION_A], requests=1
    )
    assert {span.trace_id for span in exported.spans} == {hex_id(trace_id_of(SESSION_A), 16)}
    assert {span.attributes.get("gen_ai.conversation.id") for span in exported.spans} == {SESSION_A}
    agents = {span.attributes.get("gen_ai.agent.id") for span in exported.spans} - {None}
    assert agents == {recorded.agents[key] for key in ("a1", "a2", "a3")}

    # A session the store does not hold is refused, and the file stays as it was.
    previous = (tmp_path / "a.jsonl").read_bytes()
    with pytest.raises(ValidationError, match="no session 'no_such_session'"):
        await export_json(store, tmp_path / "a.jsonl", session="no_such_session")
    assert (tmp_path / "a.jsonl").read_bytes() == previous


async def test_since_keeps_the_sessions_and_system_logs_at_or_after_it(
    store: Path | str,
    recorded: RecordedSession,
    tmp_path: Path,
) -> None:
    since = recorded.base_b - timedelta(hours=1)
    exported = await export_json(store, tmp_path / "recent.jsonl", since=since)
    recent_logs = [row for row in LOGS_B if row[3] is None]
    assert exported.report.sessions == 1
    assert exported.report.system_logs == len(recent_logs)
    traces = by_trace(exported.spans)
    assert len(traces[hex_id(trace_id_of(SESSION_B), 16)]) == SESSION_SPANS[SESSION_B]
    assert hex_id(trace_id_of(SESSION_A), 16) not in traces
    days = {
        span.attributes["orchestrator.day"]
        for span in exported.spans
        if span.name.startswith("component ")
    }
    assert days == {recorded.day(recorded.base_b)}
    logs = sorted(
        span.events[0][1]["log.message"] for span in exported.spans if span.name.startswith("log ")
    )
    assert logs == sorted(row[4] for row in recent_logs)

    later = await export_json(
        store, tmp_path / "later.jsonl", since=recorded.base_b + timedelta(days=1)
    )
    assert later.report == ExportReport()


async def test_exporting_twice_writes_the_same_bytes(store: Path | str, tmp_path: Path) -> None:
    first = tmp_path / "first.jsonl"
    await export_json(store, first)
    second = tmp_path / "second.jsonl"
    await export_json(store, second)
    assert second.read_bytes() == first.read_bytes()
    # Again over the first file: it is replaced by the same bytes.
    before = first.read_bytes()
    await export_json(store, first)
    assert first.read_bytes() == before


async def test_the_resource_comes_from_the_sdk_environment(
    recorded: RecordedSession,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fresh_resource: None,
) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    plain = await export_json(recorded.path, tmp_path / "plain.jsonl", session=SESSION_B)
    (resource,) = plain.resources
    assert resource["service.name"] == "orchestrator-store"
    assert "service.instance.id" not in resource  # random: the output would differ

    monkeypatch.setenv("OTEL_SERVICE_NAME", "nightly-builds")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "openinference.project.name=builds,team=core")
    otel_mapping.resource.cache_clear()
    named = await export_json(recorded.path, tmp_path / "named.jsonl", session=SESSION_B)
    (resource,) = named.resources
    assert resource["service.name"] == "nightly-builds"
    assert resource["openinference.project.name"] == "builds"
    assert resource["team"] == "core"
    assert [span.span_id for span in named.spans] == [span.span_id for span in plain.spans]


async def test_a_service_namespace_gives_a_store_ids_of_its_own(
    recorded: RecordedSession,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fresh_resource: None,
) -> None:
    """Two stores sent to one receiver share log numbers and may share session names:
    service.namespace is part of every id, and the same namespace gives the same ids."""
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    plain = await export_json(recorded.path, tmp_path / "plain.jsonl")

    def ids(exported: Any) -> set[tuple[bytes, bytes]]:
        return {(span.trace_id, span.span_id) for span in exported.spans}

    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.namespace=team-a")
    otel_mapping.resource.cache_clear()
    team_a = await export_json(recorded.path, tmp_path / "a.jsonl")
    again = await export_json(recorded.path, tmp_path / "a-again.jsonl")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.namespace=team-b")
    otel_mapping.resource.cache_clear()
    team_b = await export_json(recorded.path, tmp_path / "b.jsonl")

    assert len(ids(plain)) == len(ids(team_a)) == len(ids(team_b)) == 22
    assert ids(again) == ids(team_a)
    traces = [{trace for trace, _ in ids(exported)} for exported in (plain, team_a, team_b)]
    spans = [{span for _, span in ids(exported)} for exported in (plain, team_a, team_b)]
    for first, second in ((0, 1), (0, 2), (1, 2)):
        assert not traces[first] & traces[second]
        assert not spans[first] & spans[second]


@pytest.mark.backend("postgresql")
async def test_sqlite_and_postgresql_write_the_same_bytes(
    store: Path | str, recorded: RecordedSession, tmp_path: Path
) -> None:
    """The same rows give the same file, whichever database holds them (``store`` is
    the PostgreSQL copy of ``recorded``): timestamps, numbers and JSON details alike."""
    from_sqlite = tmp_path / "sqlite.jsonl"
    await export_json(recorded.path, from_sqlite, with_content=True)
    from_postgres = tmp_path / "postgres.jsonl"
    await export_json(store, from_postgres, with_content=True)
    assert from_postgres.read_bytes() == from_sqlite.read_bytes()


def _store_files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


@pytest.mark.backend("sqlite")
@pytest.mark.parametrize("name", ["database", "-wal", "-shm", "symlink"])
async def test_the_stores_own_files_are_refused_and_left_alone(
    recorded: RecordedSession, name: str
) -> None:
    folder = recorded.path.parent
    async with DatabaseManager(recorded.path) as db:
        if name == "symlink":
            output = folder / "traces.jsonl"
            output.symlink_to(recorded.path)
        elif name == "database":
            output = recorded.path
        else:
            output = Path(f"{recorded.path}{name}")
        assert output.resolve().exists()  # the store has the file open
        before = _store_files(folder)
        with pytest.raises(ValidationError, match="the store's own file"):
            await write_otlp_json(db, output)
        assert _store_files(folder) == before  # nothing written, no temporary left
        rows = await db.count_rows()
    assert {table: rows[table] for table in EXPECTED["rows"]} == EXPECTED["rows"]


@pytest.mark.backend("sqlite")
async def test_a_failed_export_leaves_the_existing_file_as_it_was(
    recorded: RecordedSession, tmp_path: Path
) -> None:
    output = tmp_path / "out" / "traces.jsonl"
    output.parent.mkdir()
    output.write_text("the previous export\n")
    # More system logs than a batch, so the export writes before it fails; the last
    # has a timestamp of the right shape but no real day (PostgreSQL would refuse it).
    async with DatabaseManager(recorded.path) as db:
        for number in range(BATCH_SIZE + 10):
            last = await db.create_system_log("INFO", "bulk", f"log {number}")
    with sqlite3.connect(recorded.path) as raw:
        raw.execute(
            "UPDATE system_logs SET created_at = '2026-13-45T09:00:00.000000+00:00' WHERE id = ?",
            (last,),
        )
    raw.close()

    with pytest.raises(ValueError, match=r"month must be in 1\.\.12"):
        await export_json(recorded.path, output)
    assert output.read_text() == "the previous export\n"
    assert os.listdir(output.parent) == ["traces.jsonl"]  # the partial file is gone


# --- promises of the mapping the realistic session does not reach ------------------------


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("claude-sonnet-4", "anthropic"),
        ("anthropic/claude-opus", "anthropic"),
        ("gpt-4o", "openai"),
        ("o3-mini", "openai"),
        ("gemini-2.5-pro", "gcp.gemini"),
        ("mistral-large", "mistral_ai"),
        ("deepseek-chat", "deepseek"),
        ("grok-4", "x_ai"),
        ("my-finetune", None),
        (None, None),
    ],
)
def test_the_provider_is_read_from_the_model_name_or_left_out(
    model: str | None, provider: str | None
) -> None:
    assert otel_mapping.provider_of(model) == provider


async def test_an_agent_keeps_its_first_logs_as_events_and_counts_the_rest(
    db: DatabaseManager, store_url: Any, tmp_path: Path
) -> None:
    definition = await db.create_orchestrator_agent("chatty", "logs a lot", "utility")
    agent = await db.create_agent(definition, "s-logs", status="completed")
    extra = 3
    await db.create_agent_logs(
        {"agent_id": agent, "log_type": "milestone", "message": f"step {number}"}
        for number in range(otel_mapping.MAX_EVENTS_PER_SPAN + extra)
    )

    exported = await export_json(store_url, tmp_path / "logs.jsonl")

    (span,) = [span for span in exported.spans if span.name == "invoke_agent chatty"]
    assert len(span.events) == otel_mapping.MAX_EVENTS_PER_SPAN
    assert span.events[0][1]["log.message"] == "step 0"
    assert span.attributes["orchestrator.log.dropped"] == extra


async def test_a_cancelled_agent_or_prompt_is_not_an_error(
    db: DatabaseManager, store_url: Any, tmp_path: Path
) -> None:
    definition = await db.create_orchestrator_agent("stopper", "gets cancelled", "builder")
    agent = await db.create_agent(definition, "s-cancel", status="cancelled")
    prompt = await db.create_prompt(agent, "command", "build it", model_used="gpt-4o")
    await db.update_prompt(prompt, status="cancelled")

    exported = await export_json(store_url, tmp_path / "cancelled.jsonl")

    spans = {span.name: span for span in exported.spans}
    agent_span, prompt_span = spans["invoke_agent stopper"], spans["chat gpt-4o"]
    assert agent_span.attributes["orchestrator.agent.status"] == "cancelled"
    assert prompt_span.attributes["orchestrator.prompt.status"] == "cancelled"
    for span in (agent_span, prompt_span, spans["invoke_workflow s-cancel"]):
        assert span.status == "UNSET", span.name
        assert "error.type" not in span.attributes, span.name
