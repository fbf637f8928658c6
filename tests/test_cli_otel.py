"""``orchestrator-store export --format otlp | otlp-json`` through the real command line:
what it writes and sends, what it refuses (one line, nothing written), and how it
behaves without the ``otel`` extra.

The recorded store (``realistic_session``) exports as 22 spans: session A's trace is
its root, 3 agents and 4 prompts (8); session B's is its root, 2 agents and 2 prompts
(5); its 5 system logs are one span each, under one span per component and UTC day
(orchestrator and scheduler, on each session's day: 4), so 9.
"""

from __future__ import annotations

import gzip
import http.server
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from realistic_session import PROMPTS, SESSION_A, SESSION_B, RecordedSession
from test_cli import CLI, digest, fails, run
from typer.testing import CliRunner

from orchestrator_store.cli import app
from orchestrator_store.manager import DatabaseError
from orchestrator_store.otel_export import OtlpJsonSink, read_otlp_json_line
from orchestrator_store.otel_mapping import trace_id_of

SESSION_A_SPANS = 8
SESSION_B_SPANS = 5
SYSTEM_SPANS = 9  # 5 system logs + 4 component-day parents
ALL_SPANS = SESSION_A_SPANS + SESSION_B_SPANS + SYSTEM_SPANS
OTEL_EXTRA = "pip install 'orchestrator-store[otel]'"
HANG_GUARD = 120  # seconds: a hung process fails the test instead of stalling the run


def spans_of(text: str) -> list[Span]:
    """Every span of an OTLP JSON lines text, each line parsed back into protobuf."""
    lines = text.splitlines()
    assert lines and text.endswith("\n")
    return [span for line in lines for span in request_spans(read_otlp_json_line(line))]


def request_spans(request: ExportTraceServiceRequest) -> list[Span]:
    return [
        span
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    ]


def trace_of(session: str) -> bytes:
    return trace_id_of(session).to_bytes(16, "big")


def attributes(span: Span) -> dict[str, Any]:
    """A span's attributes as Python values (only the kinds the export writes)."""
    found: dict[str, Any] = {}
    for item in span.attributes:
        kind = item.value.WhichOneof("value")
        assert kind is not None, item
        found[item.key] = getattr(item.value, kind)
    return found


def summary(stderr: str) -> str:
    """The one line an export prints on stderr."""
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def exported(store: Path | str, *args: str) -> tuple[str, str]:
    """``export --format otlp-json ARGS``: (stdout, the stderr summary line)."""
    result = run(store, "export", "--format", "otlp-json", *args)
    assert result.exit_code == 0, result.output
    return result.stdout, summary(result.stderr)


def every_file(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative path -> digest): what a command wrote."""
    return {
        str(path.relative_to(folder)): digest(path) for path in folder.rglob("*") if path.is_file()
    }


def process(*command: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """A real process, its output captured as text."""
    return subprocess.run(
        command, capture_output=True, text=True, timeout=HANG_GUARD, cwd=cwd, check=False
    )


def closed_port() -> int:
    """A local port nothing listens on (just released by the OS)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- otlp-json: what it writes ---------------------------------------------------------


def test_otlp_json_to_a_file_holds_every_session_and_system_log(
    recorded: RecordedSession, tmp_path: Path
) -> None:
    target = tmp_path / "traces.jsonl"

    stdout, line = exported(recorded.path, "-o", str(target))

    assert stdout == ""
    assert line == f"wrote {ALL_SPANS} spans (2 sessions, 5 system logs) as OTLP JSON to {target}"
    spans = spans_of(target.read_text(encoding="utf-8"))
    assert len(spans) == ALL_SPANS
    assert len({span.span_id for span in spans}) == ALL_SPANS
    by_trace: dict[bytes, list[Span]] = {}
    for span in spans:
        by_trace.setdefault(span.trace_id, []).append(span)
    assert len(by_trace) == 6  # two sessions, four component days
    assert len(by_trace[trace_of(SESSION_A)]) == SESSION_A_SPANS
    assert len(by_trace[trace_of(SESSION_B)]) == SESSION_B_SPANS
    roots = sorted(span.name for span in spans if not span.parent_span_id)
    assert roots == [
        "component orchestrator",
        "component orchestrator",
        "component scheduler",
        "component scheduler",
        f"invoke_workflow {SESSION_B}",
        f"invoke_workflow {SESSION_A}",
    ]
    assert sorted(span.name for span in spans if span.name.startswith("chat ")) == sorted(
        f"chat {prompt[3]}" for prompt in PROMPTS
    )
    # Nothing beside the file: the temporary it was written as was renamed over it.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["recorded", "traces.jsonl"]


def test_otlp_json_without_output_goes_to_stdout_as_the_file_would(
    recorded: RecordedSession, tmp_path: Path
) -> None:
    target = tmp_path / "traces.jsonl"
    exported(recorded.path, "-o", str(target))

    stdout, line = exported(recorded.path)

    assert line == f"wrote {ALL_SPANS} spans (2 sessions, 5 system logs) as OTLP JSON to stdout"
    # The ids come from the store's ids and the resource has no random part: the same
    # rows give the same bytes.
    assert stdout == target.read_text(encoding="utf-8")


def test_session_limits_the_export_to_that_sessions_trace(recorded: RecordedSession) -> None:
    stdout, line = exported(recorded.path, "--session", SESSION_A)

    spans = spans_of(stdout)
    assert (
        line == f"wrote {SESSION_A_SPANS} spans (1 session, 0 system logs) as OTLP JSON to stdout"
    )
    assert len(spans) == SESSION_A_SPANS
    assert {span.trace_id for span in spans} == {trace_of(SESSION_A)}


def test_since_keeps_the_sessions_and_system_logs_from_that_day_on(
    recorded: RecordedSession,
) -> None:
    # Session B ran two days ago, session A ten: from B's day on, only B and its day's
    # two system logs (orchestrator, scheduler) with their two day spans.
    stdout, line = exported(recorded.path, "--since", recorded.day(recorded.base_b))

    spans = spans_of(stdout)
    assert line == "wrote 9 spans (1 session, 2 system logs) as OTLP JSON to stdout"
    assert len(spans) == SESSION_B_SPANS + 4
    assert trace_of(SESSION_A) not in {span.trace_id for span in spans}
    session_b = [span for span in spans if span.trace_id == trace_of(SESSION_B)]
    assert len(session_b) == SESSION_B_SPANS
    system_days = {attributes(span).get("orchestrator.day") for span in spans}
    assert system_days - {None} == {recorded.day(recorded.base_b)}


def test_with_content_adds_the_prompt_and_response_text(recorded: RecordedSession) -> None:
    without, _ = exported(recorded.path)
    with_content, _ = exported(recorded.path, "--with-content")

    plain_chats = [span for span in spans_of(without) if span.name.startswith("chat ")]
    content_chats = [span for span in spans_of(with_content) if span.name.startswith("chat ")]
    assert len(plain_chats) == len(content_chats) == len(PROMPTS)
    for span in plain_chats:
        assert "gen_ai.input.messages" not in attributes(span)
        assert "gen_ai.output.messages" not in attributes(span)
    inputs = sorted(
        json.loads(attributes(span)["gen_ai.input.messages"])[0]["parts"][0]["content"]
        for span in content_chats
    )
    assert inputs == sorted(prompt[2] for prompt in PROMPTS)
    # The recording gives completed prompts the response "done"; the others have none.
    answered = [span for span in content_chats if "gen_ai.output.messages" in attributes(span)]
    assert len(answered) == sum(1 for prompt in PROMPTS if prompt[4] == "completed")
    for span in answered:
        output = json.loads(attributes(span)["gen_ai.output.messages"])
        assert output[0]["parts"][0]["content"] == "done"


def by_span_id(text: str) -> dict[str, dict[str, Any]]:
    """The spans of OTLP JSON lines by span id, each with its resource, and a log's
    details parsed: each backend gives a JSON column's text its own spacing and key
    order (jsonb's, on PostgreSQL), so only what that text means is compared."""
    spans: dict[str, dict[str, Any]] = {}
    for line in text.splitlines():
        for resource_spans in json.loads(line)["resourceSpans"]:
            for scope_spans in resource_spans["scopeSpans"]:
                for span in scope_spans["spans"]:
                    for event in span.get("events", []):
                        for item in event.get("attributes", []):
                            if item["key"] == "log.details":
                                item["value"] = json.loads(item["value"]["stringValue"])
                    spans[span["spanId"]] = {**span, "resource": resource_spans["resource"]}
    return spans


def test_otlp_json_from_postgresql_has_the_spans_of_the_sqlite_store(
    recorded: RecordedSession, postgres_url: str
) -> None:
    copied = CliRunner().invoke(app, ["copy-to-postgres", str(recorded.path), postgres_url])
    assert copied.exit_code == 0, copied.output

    from_sqlite, _ = exported(recorded.path, "--with-content")
    from_postgres, line = exported(postgres_url, "--with-content")

    assert line == f"wrote {ALL_SPANS} spans (2 sessions, 5 system logs) as OTLP JSON to stdout"
    assert len(by_span_id(from_postgres)) == ALL_SPANS
    assert by_span_id(from_postgres) == by_span_id(from_sqlite)


# --- otlp-json: an atomic write ------------------------------------------------------------


def test_a_failed_otlp_json_export_leaves_the_previous_file_untouched(
    recorded: RecordedSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "traces.jsonl"
    target.write_text("previous export\n", encoding="utf-8")
    real_send = OtlpJsonSink.send
    seen_while_writing: list[dict[str, int]] = []

    def written_then_failing(self: OtlpJsonSink, spans: Any) -> None:
        real_send(self, spans)
        self._handle.flush()
        # The spans went into a temporary beside the target, not into the target.
        seen_while_writing.append({path.name: path.stat().st_size for path in tmp_path.iterdir()})
        raise DatabaseError("disk I/O error")

    monkeypatch.setattr(OtlpJsonSink, "send", written_then_failing)

    line = fails(recorded.path, "export", "--format", "otlp-json", "-o", str(target))

    assert line == "error: disk I/O error"
    assert target.read_text(encoding="utf-8") == "previous export\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["recorded", "traces.jsonl"]
    (during,) = seen_while_writing
    partial = [name for name in during if name.endswith(".partial")]
    assert len(partial) == 1 and during[partial[0]] > 0, during
    assert during["traces.jsonl"] == len("previous export\n")


def test_an_export_from_a_missing_store_leaves_the_output_untouched(tmp_path: Path) -> None:
    target = tmp_path / "traces.jsonl"
    target.write_text("previous export\n", encoding="utf-8")
    missing = tmp_path / "missing.db"

    line = fails(missing, "export", "--format", "otlp-json", "-o", str(target))

    assert line.startswith(f"error: no database at {missing}")
    assert target.read_text(encoding="utf-8") == "previous export\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["traces.jsonl"]


# --- refusals ----------------------------------------------------------------------------

ENDPOINT = "http://127.0.0.1:9/v1/traces"  # never reached: every refusal comes first
# (arguments after `export`, the error line): options that do not fit together,
# refused before the store is opened.
OPTION_REFUSALS = {
    "endpoint with otlp-json": (
        ["--format", "otlp-json", "--endpoint", ENDPOINT, "-o", "out.jsonl"],
        "error: --endpoint and --headers go with --format otlp, not otlp-json",
    ),
    "headers with otlp-json": (
        ["--format", "otlp-json", "--headers", "a=b", "-o", "out.jsonl"],
        "error: --endpoint and --headers go with --format otlp, not otlp-json",
    ),
    "follow with otlp-json": (
        ["--format", "otlp-json", "--follow", "-o", "out.jsonl"],
        "error: --follow sends to a receiver: use --format otlp --endpoint URL",
    ),
    "otlp without an endpoint": (
        ["--format", "otlp"],
        "error: --format otlp sends to a receiver: give --endpoint URL",
    ),
    "output with otlp": (
        ["--format", "otlp", "--endpoint", ENDPOINT, "--output", "out.jsonl"],
        "error: --output goes with --format otlp-json, not otlp",
    ),
    "cursor without follow": (
        ["--format", "otlp", "--endpoint", ENDPOINT, "--cursor", "cursor.json"],
        "error: --cursor goes with --follow",
    ),
    "table with otlp": (
        ["--format", "otlp", "--endpoint", ENDPOINT, "--table", "agents"],
        "error: --table goes with --format jsonl or csv: otlp exports every session",
    ),
    "table with otlp-json": (
        ["--format", "otlp-json", "--table", "agents", "-o", "out.jsonl"],
        "error: --table goes with --format jsonl or csv: otlp-json exports every session",
    ),
    "endpoint with jsonl": (
        ["--format", "jsonl", "--endpoint", ENDPOINT, "-o", "out.jsonl"],
        "error: --endpoint goes with --format otlp or otlp-json, not jsonl",
    ),
    "session with jsonl": (
        ["--session", SESSION_A, "-o", "out.jsonl"],
        "error: --session goes with --format otlp or otlp-json, not jsonl",
    ),
    "follow with csv": (
        ["--format", "csv", "--table", "agents", "--follow", "-o", "out.csv"],
        "error: --follow goes with --format otlp or otlp-json, not csv",
    ),
    "with-content with csv": (
        ["--format", "csv", "--table", "agents", "--with-content", "-o", "out.csv"],
        "error: --with-content goes with --format otlp or otlp-json, not csv",
    ),
    "since with jsonl": (
        ["--format", "jsonl", "--since", "2024-01-01", "-o", "out.jsonl"],
        "error: --since goes with --format otlp or otlp-json, not jsonl",
    ),
    "a header with no value": (
        ["--format", "otlp", "--endpoint", ENDPOINT, "--headers", "a=b,novalue"],
        "error: --headers: 'novalue' is not name=value",
    ),
    "a header with no name": (
        ["--format", "otlp", "--endpoint", ENDPOINT, "--headers", "=x"],
        "error: --headers: '=x' is not name=value",
    ),
    "a non-http endpoint": (
        ["--format", "otlp", "--endpoint", "ftp://x"],
        "error: --endpoint 'ftp://x' is not an http:// or https:// URL",
    ),
    "an endpoint without a host": (
        ["--format", "otlp", "--endpoint", "http:///v1/traces"],
        "error: --endpoint 'http:///v1/traces' is not an http:// or https:// URL",
    ),
    "interval 0": (
        ["--format", "otlp", "--endpoint", ENDPOINT, "--follow", "--interval", "0"],
        "error: --interval must be above 0 seconds, not 0",
    ),
    "a negative interval": (
        ["--format", "otlp", "--endpoint", ENDPOINT, "--follow", "--interval", "-1"],
        "error: --interval must be above 0 seconds, not -1",
    ),
    "an interval without --follow": (
        ["--format", "otlp-json", "--interval", "5", "-o", "out.jsonl"],
        "error: --interval goes with --follow",
    ),
    "since that is no date": (
        ["--format", "otlp-json", "--since", "last week", "-o", "out.jsonl"],
        "error: --since: 'last week' is not a date (use YYYY-MM-DD or an ISO 8601 time)",
    ),
}


@pytest.mark.parametrize("case", list(OPTION_REFUSALS))
def test_options_that_do_not_fit_are_one_line_and_write_nothing(
    recorded: RecordedSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    arguments, expected = OPTION_REFUSALS[case]
    monkeypatch.chdir(tmp_path)  # where the relative -o, --output and --cursor point
    before = every_file(tmp_path)

    assert fails(recorded.path, "export", *arguments) == expected
    # Refused before the store is looked at: a missing store gets the same line.
    assert fails(tmp_path / "missing.db", "export", *arguments) == expected
    assert every_file(tmp_path) == before


def test_an_unknown_session_is_an_error_and_writes_nothing(
    recorded: RecordedSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    before = every_file(tmp_path)

    line = fails(
        recorded.path, "export", "--format", "otlp-json", "--session", "no-such", "-o", "out.jsonl"
    )

    assert line == "error: no session 'no-such' in the store: nothing was exported"
    assert every_file(tmp_path) == before


@pytest.mark.parametrize("suffix", ["", "-wal", "-journal"])
def test_otlp_json_refuses_to_write_over_the_store_files(
    recorded: RecordedSession, tmp_path: Path, suffix: str
) -> None:
    target = f"{recorded.path}{suffix}"
    before = every_file(tmp_path)

    line = fails(recorded.path, "export", "--format", "otlp-json", "-o", target)

    assert line == f"error: {target} is the store's own file: choose another output"
    assert every_file(tmp_path) == before


# --- otlp: sending to a receiver --------------------------------------------------------------


@dataclass
class Received:
    """One request a ``Recorder`` answered."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Recorder:
    """A local OTLP/HTTP receiver that answers 200 to ``POST /v1/traces`` and keeps
    each request; anything else gets 404."""

    url: str
    requests: list[Received] = field(default_factory=list)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    recording = Recorder("")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            recording.requests.append(
                Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            found = self.path == "/v1/traces"
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # no lines on stderr
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    recording.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield recording
    finally:
        server.shutdown()
        server.server_close()
        thread.join(HANG_GUARD)


def test_otlp_sends_every_span_with_the_headers_given(
    recorded: RecordedSession, recorder: Recorder
) -> None:
    # A bare host: /v1/traces is added, as OTEL_EXPORTER_OTLP_ENDPOINT is read.
    result = run(
        recorded.path,
        "export",
        "--format",
        "otlp",
        "--endpoint",
        recorder.url,
        "--headers",
        "authorization=Bearer x,x-team=a",
    )

    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert summary(result.stderr) == (
        f"sent {ALL_SPANS} spans (2 sessions, 5 system logs) to {recorder.url}/v1/traces"
    )
    assert recorder.requests, "the receiver got nothing"
    spans: list[Span] = []
    for request in recorder.requests:
        assert request.path == "/v1/traces"
        assert request.headers["authorization"] == "Bearer x"
        assert request.headers["x-team"] == "a"
        assert request.headers["content-type"] == "application/x-protobuf"
        message = ExportTraceServiceRequest()
        message.ParseFromString(request.body)
        spans += request_spans(message)
    assert len(spans) == ALL_SPANS
    assert len({span.span_id for span in spans}) == ALL_SPANS
    assert sum(1 for span in spans if span.trace_id == trace_of(SESSION_A)) == SESSION_A_SPANS


def test_otlp_to_a_closed_port_is_one_line_naming_the_receiver(
    recorded: RecordedSession, tmp_path: Path
) -> None:
    # A real process: what a user sees, with nothing of the test's logging set up.
    # The SDK retries a refused connection for several seconds before giving up.
    endpoint = f"http://127.0.0.1:{closed_port()}"
    before = every_file(tmp_path)

    command = ["--db", str(recorded.path), "export", "--format", "otlp", "--endpoint", endpoint]
    done = process(str(CLI), *command, cwd=tmp_path)

    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == (
        f"error: the OTLP receiver at {endpoint}/v1/traces did not accept {ALL_SPANS} spans "
        "(down, refusing, or slower than the timeout)\n"
    )
    assert every_file(tmp_path) == before


# --- without the otel extra --------------------------------------------------------------

# Runs the console script's entry point as if no opentelemetry package were installed.
WITHOUT_OTEL = """
import sys

class NoOpenTelemetry:
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ImportError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoOpenTelemetry())
from orchestrator_store import cli

sys.argv = ["orchestrator-store", *sys.argv[1:]]
cli.main()
"""


def without_otel(*arguments: str) -> subprocess.CompletedProcess[str]:
    """``orchestrator-store ARGUMENTS`` in a process where no opentelemetry imports."""
    return process(sys.executable, "-c", WITHOUT_OTEL, *arguments)


def test_without_the_otel_extra_the_export_says_what_to_install(
    recorded: RecordedSession, tmp_path: Path
) -> None:
    target = tmp_path / "traces.jsonl"
    before = every_file(tmp_path)

    done = without_otel(
        "--db", str(recorded.path), "export", "--format", "otlp-json", "-o", str(target)
    )

    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert done.stderr == f"error: the OpenTelemetry export needs the otel extra: {OTEL_EXTRA}\n"
    assert every_file(tmp_path) == before


def test_without_the_otel_extra_the_row_export_still_works(recorded: RecordedSession) -> None:
    done = without_otel("--db", str(recorded.path), "export", "--table", "agents")

    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert sorted(row["id"] for row in rows) == sorted(recorded.agents.values())


def test_importing_the_store_or_its_command_line_does_not_import_opentelemetry() -> None:
    code = (
        "import sys, orchestrator_store, orchestrator_store.cli\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'opentelemetry'))"
    )
    done = process(sys.executable, "-c", code)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
