"""Sending the store's history as OpenTelemetry spans: over OTLP/HTTP to a receiver
(Phoenix, Jaeger, Tempo, an OpenTelemetry Collector, ...) or into an OTLP JSON file.

    async with DatabaseManager() as db:
        report = await send_otlp(db, "http://127.0.0.1:6006/v1/traces")
        report = await write_otlp_json(db, Path("traces.jsonl"), session="run-42")

Spans are built by ``otel_mapping`` and encoded by the OpenTelemetry SDK's own OTLP
exporter and protobuf encoder. The history is read a session at a time and sent in
batches, so memory stays flat however long it is. Prompt and response text are left
out unless ``with_content=True``: they may be sensitive.

The JSON file holds one OTLP ``ExportTraceServiceRequest`` per line (JSON lines, the
OpenTelemetry Collector file exporter's format), with trace and span ids in hex as the
OTLP JSON encoding requires. ``read_otlp_json_line`` parses a line back.

Memory: the export's own stays flat (about 50 MB at 1M prompts). On SQLite, the store's
readers map up to 256 MiB of the file, which counts in the process's RSS; open the store
with ``DatabaseManager(path, read_mmap_bytes=0)`` to leave it out, as the command does.

Needs the ``otel`` extra: ``pip install 'orchestrator-store[otel]'``.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Protocol

from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from .atomic_file import new_file_mode, replacing
from .errors import ReceiverError, ValidationError
from .location import redact_url, store_file_named_by
from .manager import DatabaseManager
from .otel_mapping import component_day_span, session_spans, system_log_spans
from .otel_source import definitions, load_session, session_ids, system_log_days

__all__ = [
    "BATCH_SIZE",
    "ExportReport",
    "OtlpHttpSink",
    "OtlpJsonSink",
    "ReceiverError",
    "SpanSink",
    "export_history",
    "read_otlp_json_line",
    "send_otlp",
    "to_otlp_json_line",
    "write_otlp_json",
]

BATCH_SIZE = 512  # spans per request: the SDK's batch processor default
REQUEST_TIMEOUT_S = 10.0


@dataclass
class ExportReport:
    """What an export sent."""

    sessions: int = 0
    system_logs: int = 0
    spans: int = 0
    requests: int = 0


class SpanSink(Protocol):
    """Where spans go: ``send`` delivers one batch or raises ``ReceiverError``."""

    def send(self, spans: Sequence[ReadableSpan]) -> None: ...


class OtlpHttpSink:
    """An OTLP/HTTP receiver, through the SDK's ``OTLPSpanExporter`` (protobuf)."""

    def __init__(
        self,
        endpoint: str,
        headers: Mapping[str, str] | None = None,
        *,
        timeout: float = REQUEST_TIMEOUT_S,
    ) -> None:
        self.endpoint = endpoint
        self._exporter = OTLPSpanExporter(
            endpoint=endpoint, headers=dict(headers or {}), timeout=timeout
        )

    def send(self, spans: Sequence[ReadableSpan]) -> None:
        if self._exporter.export(spans) is not SpanExportResult.SUCCESS:
            shown = redact_url(self.endpoint)  # without a password the URL may hold
            raise ReceiverError(
                f"the OTLP receiver at {shown} did not accept {len(spans)} spans "
                "(down, refusing, or slower than the timeout)"
            )

    def close(self) -> None:
        self._exporter.shutdown()  # type: ignore[no-untyped-call]


class OtlpJsonSink:
    """Lines of OTLP JSON, one request per batch, into an open text file."""

    def __init__(self, handle: IO[str]) -> None:
        self._handle = handle

    def send(self, spans: Sequence[ReadableSpan]) -> None:
        self._handle.write(to_otlp_json_line(spans))


_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


def to_otlp_json_line(spans: Sequence[ReadableSpan]) -> str:
    """One ``ExportTraceServiceRequest`` in OTLP JSON, newline-terminated. The protobuf
    JSON mapping writes bytes in base64; OTLP JSON wants trace and span ids in hex."""
    message = json_format.MessageToDict(encode_spans(spans), use_integers_for_enums=True)
    _convert_ids(message, lambda text: base64.b64decode(text).hex())
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")) + "\n"


def read_otlp_json_line(line: str) -> ExportTraceServiceRequest:
    """Parse one line of an OTLP JSON file back into the protobuf message."""
    message = json.loads(line)
    _convert_ids(message, lambda text: base64.b64encode(bytes.fromhex(text)).decode())
    request = ExportTraceServiceRequest()
    json_format.ParseDict(message, request)
    return request


def _convert_ids(message: dict[str, Any], convert: Callable[[str], str]) -> None:
    """Rewrite every trace and span id of a request (its spans' and their links')."""
    for span in _spans_of(message):
        for holder in (span, *span.get("links", [])):
            for name in _ID_FIELDS:
                if name in holder:
                    holder[name] = convert(holder[name])


def _spans_of(message: dict[str, Any]) -> Iterable[dict[str, Any]]:
    for resource_spans in message.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            yield from scope_spans.get("spans", [])


class _Batcher:
    """Collects spans and hands the sink a batch at a time, off the event loop."""

    def __init__(self, sink: SpanSink, report: ExportReport, batch_size: int) -> None:
        self._sink = sink
        self._report = report
        self._batch_size = batch_size
        self._pending: list[ReadableSpan] = []

    async def add(self, spans: Iterable[ReadableSpan]) -> None:
        self._pending.extend(spans)
        while len(self._pending) >= self._batch_size:
            batch = self._pending[: self._batch_size]
            del self._pending[: self._batch_size]
            await self._send(batch)

    async def flush(self) -> None:
        if self._pending:
            batch, self._pending = self._pending, []
            await self._send(batch)

    async def _send(self, batch: list[ReadableSpan]) -> None:
        await asyncio.to_thread(self._sink.send, batch)
        self._report.spans += len(batch)
        self._report.requests += 1


async def export_history(
    db: DatabaseManager,
    sink: SpanSink,
    *,
    since: datetime | None = None,
    session: str | None = None,
    with_content: bool = False,
    system_logs: bool = True,
    batch_size: int = BATCH_SIZE,
    on_session: Callable[[], None] = lambda: None,
) -> ExportReport:
    """Send every session's trace (or one ``session``'s, which must exist; with
    ``since``, the sessions active at or after it), then the system logs (unless
    ``session`` is given or ``system_logs`` is False), to ``sink``. ``on_session`` is
    called after each session."""
    if batch_size < 1:
        raise ValidationError(f"batch_size must be at least 1, not {batch_size}")
    report = ExportReport()
    batcher = _Batcher(sink, report, batch_size)
    known = await definitions(db)
    if session is not None and not [found async for found in session_ids(db, session=session)]:
        raise ValidationError(f"no session {session!r} in the store: nothing was exported")
    async for session_id in session_ids(db, since=since, session=session):
        history = await load_session(db, session_id, known, with_content=with_content)
        if history is not None:
            await batcher.add(session_spans(history, with_content=with_content))
            report.sessions += 1
        on_session()
    if session is None and system_logs:
        days_sent: set[tuple[str, str]] = set()
        async for day in system_log_days(db, since=since):
            spans = list(system_log_spans(day))
            if (day.component, day.day) not in days_sent:
                days_sent.add((day.component, day.day))
                spans.insert(0, component_day_span(day.component, day.day))
            await batcher.add(spans)
            report.system_logs += len(day.logs)
    await batcher.flush()
    return report


async def send_otlp(
    db: DatabaseManager,
    endpoint: str,
    *,
    headers: Mapping[str, str] | None = None,
    since: datetime | None = None,
    session: str | None = None,
    with_content: bool = False,
    request_timeout: float = REQUEST_TIMEOUT_S,
) -> ExportReport:
    """Send the history to the OTLP/HTTP ``endpoint`` (e.g. ``http://host:4318/v1/traces``).
    A batch the receiver does not take raises ``ReceiverError``; batches before it stay sent."""
    sink = OtlpHttpSink(endpoint, headers, timeout=request_timeout)
    try:
        return await export_history(
            db, sink, since=since, session=session, with_content=with_content
        )
    finally:
        sink.close()


def checked_output(output: Path, database: Path | None) -> Path:
    """Where an export file goes (through a symlink, its target); refuses the store's
    own files (database, WAL, journal), a folder and a missing folder."""
    target = output.resolve()
    if database is not None and store_file_named_by(target, database) is not None:
        raise ValidationError(f"{output} is the store's own file: choose another output")
    if target.is_dir():
        raise ValidationError(f"{output} is a folder")
    if not target.parent.is_dir():
        raise ValidationError(f"{output}: no folder {output.parent}")
    return target


async def write_otlp_json(
    db: DatabaseManager,
    output: Path,
    *,
    since: datetime | None = None,
    session: str | None = None,
    with_content: bool = False,
) -> ExportReport:
    """Write the history as OTLP JSON lines to ``output``, which takes its place only
    once complete; refuses to write over the store's own files."""
    target = checked_output(Path(output), db.db_path)
    mode = new_file_mode()
    with replacing(target, mode) as handle:
        return await export_history(
            db, OtlpJsonSink(handle), since=since, session=session, with_content=with_content
        )
