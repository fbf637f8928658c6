"""How the store's rows become OpenTelemetry spans (the GenAI semantic conventions).

A session is a trace. Its root is an ``invoke_workflow`` span; each agent is an
``invoke_agent {definition name}`` span under its parent agent's span (or under the
root); each prompt is a ``chat {model}`` span under its agent; each agent log is an
event on its agent's span. System logs belong to no session: each is a zero-length
``log {component}`` span, carrying the log as its event, under a span that stands for
its component's UTC day, in a trace of that component and day.

Trace and span ids are hashes of the store's ids, so that exporting the same rows twice
gives the same ids and a receiver deduplicates or overwrites instead of doubling.

Cost is set, as ``gen_ai.usage.cost.amount`` (the name open-telemetry/
semantic-conventions-genai#443 proposes), on model-call spans only: a tool that sums
cost over spans then counts each prompt once. An agent's own recorded ``cost_usd`` is
shown as ``orchestrator.agent.cost_usd``, a name no tool adds up.

This module needs the ``otel`` extra (``opentelemetry-sdk``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from .models import format_timestamp

__all__ = [
    "MAX_EVENTS_PER_SPAN",
    "SCOPE",
    "SessionHistory",
    "SystemLogDay",
    "provider_of",
    "resource",
    "session_spans",
    "span_id_of",
    "system_log_spans",
    "trace_id_of",
]

SCOPE = InstrumentationScope("orchestrator_store.otel", None)
# An agent with more logs than this keeps its first ones as events and counts the rest
# (orchestrator.log.dropped): receivers cap events per span, and so does memory.
MAX_EVENTS_PER_SPAN = 1000
# The status description is a summary; receivers show the first line or two.
MAX_STATUS_DESCRIPTION = 1024

FINISHED_AGENT = frozenset({"completed", "failed", "cancelled"})
FINISHED_PROMPT = frozenset({"completed", "failed", "cancelled"})
# error.type's own fallback value: the store keeps an error's text, not its class.
OTHER_ERROR = "_OTHER"

# gen_ai.provider.name from a model's name: the conventions' well-known values, matched
# by the prefixes their models are published under. Unknown models get no provider.
_PROVIDER_PREFIXES = (
    (("claude",), "anthropic"),
    (("gpt-", "gpt4", "o1", "o3", "o4", "chatgpt", "text-embedding", "davinci"), "openai"),
    (("gemini",), "gcp.gemini"),
    (("mistral", "mixtral", "codestral", "magistral", "ministral"), "mistral_ai"),
    (("command", "embed-"), "cohere"),
    (("deepseek",), "deepseek"),
    (("grok",), "x_ai"),
    (("sonar",), "perplexity"),
    (("kimi", "moonshot"), "moonshot_ai"),
)


def provider_of(model: str | None) -> str | None:
    """The conventions' ``gen_ai.provider.name`` for a model's name, or None."""
    if not model:
        return None
    name = model.lower().rsplit("/", 1)[-1]  # "anthropic/claude-..." -> "claude-..."
    for prefixes, provider in _PROVIDER_PREFIXES:
        if name.startswith(prefixes):
            return provider
    return None


def _hashed(kind: str, key: str, size: int) -> int:
    namespace = resource().attributes.get("service.namespace", "")
    digest = hashlib.sha256(f"orchestrator-store/{namespace}/{kind}\0{key}".encode()).digest()
    return int.from_bytes(digest[:size], "big") or 1  # all zeros is "no id" in OTLP


# Ids are hashes of the store's own ids, so exporting again gives the same ones. Two
# stores sent to one receiver may share session names and certainly share log numbers:
# the resource's service.namespace (OTEL_RESOURCE_ATTRIBUTES=service.namespace=...) is
# part of every id, so that each store can be given its own.


def trace_id_of(session_id: str) -> int:
    """The trace id of a session (or of a component's day): 128 bits of a hash of it."""
    return _hashed("trace", session_id, 16)


def span_id_of(kind: str, key: str) -> int:
    """The span id of a row (``kind``: session, agent, prompt, system_log, component_day)."""
    return _hashed(kind, key, 8)


@functools.cache
def resource() -> Resource:
    """Who the spans come from: service.name is ``OTEL_SERVICE_NAME`` when set (the
    SDK's variable), else ``orchestrator-store``; ``OTEL_RESOURCE_ATTRIBUTES`` adds more.
    Read once per process: every span shares one resource, so a request holds it once.
    The SDK's random ``service.instance.id`` is left out: the same rows give the same
    output."""
    name = os.environ.get("OTEL_SERVICE_NAME") or "orchestrator-store"
    created = Resource.create({SERVICE_NAME: name})
    return Resource(
        {key: value for key, value in created.attributes.items() if key != "service.instance.id"}
    )


def nanoseconds(value: Any) -> int:
    """A stored timestamp (the store's text, or a datetime from PostgreSQL) in ns."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def stored_text(value: Any) -> str:
    """A stored timestamp in the store's text form, whatever the backend returned."""
    return format_timestamp(value) if isinstance(value, datetime) else str(value)


@dataclass
class SessionHistory:
    """What one session's trace is made of: its agents (with their definitions'
    name, type, description and model joined in), prompts and agent logs, as rows."""

    session_id: str
    agents: list[dict[str, Any]]
    prompts: list[dict[str, Any]]
    logs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # by agent id
    dropped_logs: dict[str, int] = field(default_factory=dict)  # by agent id


@dataclass
class SystemLogDay:
    """One component's system logs of one UTC day (or a part of them)."""

    component: str
    day: str  # YYYY-MM-DD
    logs: list[dict[str, Any]]


def _context(trace_id: int, span_id: int) -> SpanContext:
    return SpanContext(
        trace_id, span_id, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED)
    )


def _attributes(values: Mapping[str, Any]) -> dict[str, Any]:
    """OpenTelemetry attributes hold no None: an unknown value is left out."""
    return {key: value for key, value in values.items() if value is not None}


_OK = Status(StatusCode.UNSET)


def _error(message: str | None) -> Status:
    description = (message or "").strip()[:MAX_STATUS_DESCRIPTION] or None
    return Status(StatusCode.ERROR, description)


def _json_text(value: Any) -> str | None:
    """A JSON column as compact text with sorted keys: the same on both backends
    (PostgreSQL's JSONB reorders keys and spaces them; SQLite keeps the text as given)."""
    if value is None:
        return None
    decoded = json.loads(value) if isinstance(value, str) else value
    return json.dumps(decoded, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _log_event(log: Mapping[str, Any]) -> Event:
    return Event(
        name=str(log["log_type"]) if "log_type" in log else "log",
        timestamp=nanoseconds(log["created_at"]),
        attributes=_attributes(
            {
                "log.level": log["log_level"],
                "log.message": log["message"],
                "log.details": _json_text(log.get("details")),
                "orchestrator.log.id": int(log["id"]),
            }
        ),
    )


def session_spans(history: SessionHistory, *, with_content: bool = False) -> list[ReadableSpan]:
    """The spans of one session's trace: its root, then its agents and prompts."""
    trace_id = trace_id_of(history.session_id)
    root = _context(trace_id, span_id_of("session", history.session_id))
    agent_ids = {agent["id"] for agent in history.agents}
    ends = _agent_ends(history)
    spans = [_session_span(history, root, ends)]
    for agent in history.agents:
        parent_id = agent.get("parent_agent_id")
        parent = root
        if parent_id is not None and parent_id in agent_ids:  # a parent elsewhere: another trace
            parent = _context(trace_id, span_id_of("agent", parent_id))
        spans.append(_agent_span(history, agent, trace_id, parent, ends[agent["id"]]))
    for prompt in history.prompts:
        spans.append(_prompt_span(history, prompt, trace_id, with_content=with_content))
    return spans


def _agent_ends(history: SessionHistory) -> dict[str, int]:
    """When each agent's span ends: its completion, or for one still running its
    latest activity so far (start, prompt or log), so that the span covers what it did."""
    latest = {agent["id"]: nanoseconds(agent["started_at"]) for agent in history.agents}
    for prompt in history.prompts:
        agent_id = prompt["agent_id"]
        latest[agent_id] = max(latest.get(agent_id, 0), _prompt_times(prompt)[1])
    for agent_id, logs in history.logs.items():
        for log in logs:
            latest[agent_id] = max(latest.get(agent_id, 0), nanoseconds(log["created_at"]))
    for agent in history.agents:
        if agent.get("completed_at") is not None:
            latest[agent["id"]] = nanoseconds(agent["completed_at"])
    return latest


def _session_span(
    history: SessionHistory, context: SpanContext, agent_ends: Mapping[str, int]
) -> ReadableSpan:
    starts = [nanoseconds(agent["started_at"]) for agent in history.agents]
    ends = list(agent_ends.values())
    failed = sum(1 for agent in history.agents if agent["status"] == "failed")
    running = sum(1 for agent in history.agents if agent["status"] not in FINISHED_AGENT)
    status = Status(StatusCode.UNSET)
    if failed:
        status = _error(f"{failed} of {len(history.agents)} agents failed")
    return ReadableSpan(
        name=f"invoke_workflow {history.session_id}",
        context=context,
        parent=None,
        resource=resource(),
        kind=SpanKind.INTERNAL,
        instrumentation_scope=SCOPE,
        start_time=min(starts),
        end_time=max(ends),
        status=status,
        attributes=_attributes(
            {
                "gen_ai.operation.name": "invoke_workflow",
                "gen_ai.conversation.id": history.session_id,
                "error.type": OTHER_ERROR if failed else None,
                "orchestrator.session.id": history.session_id,
                "orchestrator.session.agents": len(history.agents),
                "orchestrator.session.agents_failed": failed,
                "orchestrator.session.agents_running": running,
            }
        ),
    )


def _agent_span(
    history: SessionHistory,
    agent: Mapping[str, Any],
    trace_id: int,
    parent: SpanContext,
    end: int,
) -> ReadableSpan:
    name = agent.get("definition_name")
    model = agent.get("definition_model")
    failed = agent["status"] == "failed"
    events = [_log_event(log) for log in history.logs.get(agent["id"], [])]
    return ReadableSpan(
        name=f"invoke_agent {name}" if name else "invoke_agent",
        context=_context(trace_id, span_id_of("agent", agent["id"])),
        parent=parent,
        resource=resource(),
        kind=SpanKind.INTERNAL,
        instrumentation_scope=SCOPE,
        start_time=nanoseconds(agent["started_at"]),
        end_time=end,
        status=_error(agent.get("error_message") or "failed")
        if failed
        else Status(StatusCode.UNSET),
        events=events,
        attributes=_attributes(
            {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.provider.name": provider_of(model),
                "gen_ai.agent.id": agent["id"],
                "gen_ai.agent.name": name,
                "gen_ai.agent.description": agent.get("definition_description"),
                "gen_ai.conversation.id": history.session_id,
                "gen_ai.request.model": model,
                "error.type": OTHER_ERROR if failed else None,
                "orchestrator.agent.status": agent["status"],
                "orchestrator.agent.cost_usd": float(agent["cost_usd"]),
                "orchestrator.agent.type": agent.get("definition_type"),
                "orchestrator.agent.definition_id": agent["orchestrator_agent_id"],
                "orchestrator.agent.error_message": agent.get("error_message"),
                "orchestrator.log.dropped": history.dropped_logs.get(agent["id"]) or None,
            }
        ),
    )


def _prompt_times(prompt: Mapping[str, Any]) -> tuple[int, int]:
    """A prompt's span: from its creation, for its latency when recorded, else until
    its completion (a prompt still running ends where it started)."""
    start = nanoseconds(prompt["created_at"])
    if prompt.get("latency_ms") is not None:
        return start, start + int(prompt["latency_ms"]) * 1_000_000
    if prompt.get("completed_at") is not None:
        return start, max(start, nanoseconds(prompt["completed_at"]))
    return start, start


def _messages(prompt: Mapping[str, Any]) -> dict[str, str | None]:
    """The opt-in content attributes, in the conventions' message JSON schema."""
    text = prompt.get("prompt_text")
    response = prompt.get("response_text")
    finish = {"completed": "stop", "failed": "error"}.get(prompt["status"])
    output = None
    if response is not None:
        message: dict[str, Any] = {
            "role": "assistant",
            "parts": [{"type": "text", "content": response}],
            "finish_reason": finish or "stop",
        }
        output = json.dumps([message], ensure_ascii=False)
    return {
        "gen_ai.input.messages": json.dumps(
            [{"role": "user", "parts": [{"type": "text", "content": text}]}], ensure_ascii=False
        )
        if text is not None
        else None,
        "gen_ai.output.messages": output,
    }


def _prompt_span(
    history: SessionHistory, prompt: Mapping[str, Any], trace_id: int, *, with_content: bool
) -> ReadableSpan:
    model = prompt.get("model_used")
    failed = prompt["status"] == "failed"
    start, end = _prompt_times(prompt)
    content = _messages(prompt) if with_content else {}
    return ReadableSpan(
        name=f"chat {model}" if model else "chat",
        context=_context(trace_id, span_id_of("prompt", prompt["id"])),
        parent=_context(trace_id, span_id_of("agent", prompt["agent_id"])),
        resource=resource(),
        kind=SpanKind.CLIENT,
        instrumentation_scope=SCOPE,
        start_time=start,
        end_time=end,
        status=_error(prompt.get("error_message") or "failed")
        if failed
        else Status(StatusCode.UNSET),
        attributes=_attributes(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": provider_of(model),
                "gen_ai.request.model": model,
                "gen_ai.response.model": model,
                "gen_ai.conversation.id": history.session_id,
                "gen_ai.usage.input_tokens": int(prompt["tokens_input"]),
                "gen_ai.usage.output_tokens": int(prompt["tokens_output"]),
                "gen_ai.usage.cost.amount": float(prompt["cost_usd"]),
                "gen_ai.usage.cost.currency": "USD",
                "error.type": OTHER_ERROR if failed else None,
                "orchestrator.prompt.id": prompt["id"],
                "orchestrator.prompt.type": prompt["prompt_type"],
                "orchestrator.prompt.name": prompt.get("prompt_name"),
                "orchestrator.prompt.status": prompt["status"],
                "orchestrator.prompt.latency_ms": prompt.get("latency_ms"),
                "orchestrator.prompt.error_message": prompt.get("error_message"),
                **content,
            }
        ),
    )


def _day_bounds(day: str) -> tuple[int, int]:
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    return nanoseconds(start), nanoseconds(start + timedelta(days=1))


def _component_day(component: str, day: str) -> SpanContext:
    """The trace of a component's UTC day, and its span's id."""
    key = f"{component}\0{day}"
    return _context(trace_id_of(f"system\0{key}"), span_id_of("component_day", key))


def component_day_span(component: str, day: str) -> ReadableSpan:
    """The span that stands for one component's UTC day: the parent of that day's
    system logs. Its content depends on nothing else, so sending it again is harmless."""
    start, end = _day_bounds(day)
    return ReadableSpan(
        name=f"component {component}",
        context=_component_day(component, day),
        parent=None,
        resource=resource(),
        kind=SpanKind.INTERNAL,
        instrumentation_scope=SCOPE,
        start_time=start,
        end_time=end,
        attributes={"orchestrator.component": component, "orchestrator.day": day},
    )


def system_log_spans(batch: SystemLogDay) -> Iterator[ReadableSpan]:
    """Each system log of a component's day as a zero-length span holding it as its event."""
    parent = _component_day(batch.component, batch.day)
    trace_id = parent.trace_id
    for log in batch.logs:
        moment = nanoseconds(log["created_at"])
        error = log["log_level"] in ("ERROR", "CRITICAL")
        yield ReadableSpan(
            name=f"log {batch.component}",
            # Its time with its id: log numbers repeat from store to store, times do not.
            context=_context(
                trace_id, span_id_of("system_log", f"{log['id']}\0{stored_text(log['created_at'])}")
            ),
            parent=parent,
            resource=resource(),
            kind=SpanKind.INTERNAL,
            instrumentation_scope=SCOPE,
            start_time=moment,
            end_time=moment,
            status=_error(log["message"]) if error else Status(StatusCode.UNSET),
            events=[_log_event(log)],
            attributes=_attributes(
                {
                    "orchestrator.component": batch.component,
                    "orchestrator.log.id": int(log["id"]),
                    "log.level": log["log_level"],
                }
            ),
        )


def day_of(value: Any) -> str:
    """The UTC day (YYYY-MM-DD) of a stored timestamp."""
    return stored_text(value)[:10]
