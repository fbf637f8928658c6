"""The OpenTelemetry export into a real Arize Phoenix, read back through Phoenix's
REST API, on both backends: the realistic session's traces, nesting, tokens, errors
and attributes as Phoenix shows them; a second export deduplicated; and a receiver
that is down or refuses raising ``ReceiverError``.

Phoenix is started once per run (``phoenix_receiver``); each test writes to a project
of its own, with session names and system log ids of its own (see ``distinguish``).
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from pathlib import Path
from typing import Any

import phoenix_receiver
import pytest
from phoenix_receiver import PhoenixProject, PhoenixServer, free_port
from realistic_session import EXPECTED, PROMPTS, SESSION_A, SESSION_B, RecordedSession
from test_otel_export import ALL_SPANS, ALL_TRACES, SpanView, check_realistic_traces

from orchestrator_store.copy_to_postgres import copy_sqlite_to_postgres
from orchestrator_store.manager import DatabaseManager
from orchestrator_store.otel_export import ExportReport, ReceiverError, send_otlp

# The harness's fixtures, bound here rather than imported by name: ruff takes a
# test's argument of the same name for a redefinition of an unused import.
phoenix = phoenix_receiver.phoenix
phoenix_project = phoenix_receiver.phoenix_project


def view(span: dict[str, Any]) -> SpanView:
    """A span of Phoenix's REST API in the shape the checks take."""
    return SpanView(
        trace_id=span["context"]["trace_id"],
        span_id=span["context"]["span_id"],
        parent_id=span["parent_id"],
        name=span["name"],
        status=span["status_code"],
        status_message=span["status_message"],
        attributes=span["attributes"],
        events=[(event["name"], event["attributes"]) for event in span["events"]],
    )


@pytest.fixture
async def store(
    backend: str, store_url: Any, recorded: RecordedSession, phoenix_project: PhoenixProject
) -> Path | str:
    """The realistic session, with this test's own names, on this test's backend."""
    phoenix_project.distinguish(recorded.path)
    if backend == "sqlite":
        return recorded.path
    await copy_sqlite_to_postgres(recorded.path, store_url)
    return str(store_url)


async def send(
    location: Path | str, server: PhoenixServer, project: PhoenixProject
) -> ExportReport:
    async with DatabaseManager(location) as db:
        return await send_otlp(db, server.traces_endpoint, headers=project.headers)


async def test_phoenix_shows_the_session_traces_as_exported(
    store: Path | str,
    recorded: RecordedSession,
    phoenix: PhoenixServer,
    phoenix_project: PhoenixProject,
) -> None:
    report = await send(store, phoenix, phoenix_project)
    assert report == ExportReport(sessions=2, system_logs=5, spans=ALL_SPANS, requests=1)
    spans = await asyncio.to_thread(phoenix_project.wait_for_spans, ALL_SPANS)
    check_realistic_traces(
        [view(span) for span in spans],
        recorded,
        session=phoenix_project.session,
        component=phoenix_project.component,
    )


async def test_phoenix_reads_the_genai_conventions(
    store: Path | str, phoenix: PhoenixServer, phoenix_project: PhoenixProject
) -> None:
    """What Phoenix makes of the attributes: model calls and agents as such, tokens
    counted per trace and per session, sessions from gen_ai.conversation.id."""
    await send(store, phoenix, phoenix_project)
    spans = await asyncio.to_thread(phoenix_project.wait_for_spans, ALL_SPANS)
    kinds = Counter(
        span["span_kind"] for span in spans if span["name"].startswith(("chat ", "invoke_agent "))
    )
    assert kinds == {"LLM": len(PROMPTS), "AGENT": 5}
    for span in spans:
        attributes = span["attributes"]
        if span["span_kind"] == "LLM":
            assert attributes["llm.token_count.prompt"] == attributes["gen_ai.usage.input_tokens"]
            assert (
                attributes["llm.token_count.completion"] == attributes["gen_ai.usage.output_tokens"]
            )
            assert attributes["llm.model_name"] == attributes["gen_ai.request.model"]
    traces = await asyncio.to_thread(phoenix_project.traces)
    assert len(traces) == ALL_TRACES
    sessions = await asyncio.to_thread(phoenix_project.sessions)
    tokens = {
        session["session_id"]: (session["token_count_prompt"], session["token_count_completion"])
        for session in sessions
    }
    assert tokens == {
        phoenix_project.session(name): (figures["tokens_input"], figures["tokens_output"])
        for name, figures in EXPECTED["sessions"].items()
    }
    session_traces = {
        session["session_id"]: [trace["trace_id"] for trace in session["traces"]]
        for session in sessions
    }
    for name in (SESSION_A, SESSION_B):
        (trace_id,) = session_traces[phoenix_project.session(name)]  # a session is a trace
        (trace,) = (trace for trace in traces if trace["trace_id"] == trace_id)
        assert trace["token_count_prompt"] == EXPECTED["sessions"][name]["tokens_input"]


async def test_exporting_twice_keeps_one_copy_of_each_span(
    store: Path | str, phoenix: PhoenixServer, phoenix_project: PhoenixProject
) -> None:
    await send(store, phoenix, phoenix_project)
    first = await asyncio.to_thread(phoenix_project.wait_for_spans, ALL_SPANS)
    # A system log written since is the last span of the second export (system logs go
    # last, in id order): once Phoenix shows it, it has taken in all the rest before it.
    marker = phoenix_project.component("marker")
    async with DatabaseManager(store) as db:
        await db.create_system_log("INFO", marker, "written between the exports")
    report = await send(store, phoenix, phoenix_project)
    assert report.spans == ALL_SPANS + 2  # everything again, the marker and its day

    spans = await asyncio.to_thread(
        phoenix_project.wait_until,
        lambda spans: any(span["name"] == f"log {marker}" for span in spans),
        "the marker log",
    )
    span_ids = Counter(span["context"]["span_id"] for span in spans)
    assert len(spans) == ALL_SPANS + 2
    assert max(span_ids.values()) == 1
    assert {span["context"]["span_id"] for span in first} < span_ids.keys()


async def test_a_receiver_that_is_not_listening_raises_receiver_error(
    db: DatabaseManager, agent_id: str
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}/v1/traces"
    with pytest.raises(ReceiverError, match=re.escape(endpoint)):
        await send_otlp(db, endpoint, request_timeout=2)


async def test_a_receiver_that_refuses_raises_receiver_error(
    db: DatabaseManager, agent_id: str, phoenix: PhoenixServer
) -> None:
    endpoint = f"{phoenix.base_url}/v1/no-such-receiver"
    with pytest.raises(ReceiverError, match=re.escape(endpoint)):
        await send_otlp(db, endpoint)


def test_a_phoenix_that_cannot_start_fails_with_its_output(tmp_path: Path) -> None:
    in_the_way = tmp_path / "working_dir"
    in_the_way.write_text("a file where Phoenix wants its folder\n")
    server = PhoenixServer(working_dir=in_the_way, log_path=tmp_path / "phoenix.log")
    with pytest.raises(pytest.fail.Exception, match="Phoenix exited with code") as failure:
        server.start()
    assert "FileExistsError" in str(failure.value)  # the tail of Phoenix's own output
