"""A real OTLP/HTTP receiver for tests that records every span it is given.

Phoenix keeps one version of each span id, so it cannot show a span sent twice;
this receiver keeps every delivery, in order, so that a test can count them. It
decodes the protobuf ``ExportTraceServiceRequest`` the SDK's exporter posts to
``/v1/traces`` and answers as an OTLP receiver does (200 and an empty
``ExportTraceServiceResponse``). It can be stopped and started again on the same
port (a receiver that goes down and comes back), told to refuse (503) or to be
slow for a number of requests or until told otherwise.

    with OtlpRecorder() as receiver:
        sink = OtlpHttpSink(receiver.url)
        ...
        receiver.span_ids()  # every delivery's span id, in order
"""

from __future__ import annotations

import gzip
import hashlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

__all__ = ["Delivery", "OtlpRecorder", "Request", "otlp_recorder"]

TRACES_PATH = "/v1/traces"


@dataclass(frozen=True)
class Delivery:
    """One span as one request delivered it."""

    request: int  # the number of the request that brought it, from 1
    span_id: str  # hex, as the store's ids are derived (otel_mapping.span_id_of)
    trace_id: str
    parent_span_id: str  # "" for a root
    name: str
    attributes: dict[str, Any]
    events: tuple[tuple[str, dict[str, Any]], ...]
    start_time: int  # ns
    end_time: int  # ns
    status_code: int  # Status.StatusCode: 0 unset, 1 ok, 2 error
    status_message: str
    version: str  # a hash of the whole span: equal means the same content


@dataclass(frozen=True)
class Request:
    """One POST the receiver answered (or took and then answered late)."""

    number: int
    status: int
    delayed: bool  # slept before answering
    span_ids: tuple[str, ...]  # what it carried (a refused one too)


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(item) for item in value.array_value.values)
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return None if kind is None else getattr(value, kind)


def _attributes(pairs: Any) -> dict[str, Any]:
    items: list[KeyValue] = list(pairs)
    return {pair.key: _value(pair.value) for pair in items}


def _delivery(number: int, span: Span) -> Delivery:
    return Delivery(
        request=number,
        span_id=span.span_id.hex(),
        trace_id=span.trace_id.hex(),
        parent_span_id=span.parent_span_id.hex(),
        name=span.name,
        attributes=_attributes(span.attributes),
        events=tuple((event.name, _attributes(event.attributes)) for event in span.events),
        start_time=span.start_time_unix_nano,
        end_time=span.end_time_unix_nano,
        status_code=span.status.code,
        status_message=span.status.message,
        version=hashlib.sha256(span.SerializeToString(deterministic=True)).hexdigest()[:24],
    )


class _Plan:
    """What the next requests get: refused, delayed, or (by default) taken at once."""

    def __init__(self) -> None:
        self.refusing: int | None = 0  # requests still to refuse; None: until told
        self.delay = 0.0
        self.slow_for: int | None = 0  # requests still to delay; None: until told

    def next(self) -> tuple[bool, float]:
        """(refuse, seconds to sleep first) for the request arriving now."""
        if self.refusing is None or self.refusing > 0:
            if self.refusing is not None:
                self.refusing -= 1
            return True, 0.0
        if self.slow_for is None or self.slow_for > 0:
            if self.slow_for is not None:
                self.slow_for -= 1
            return False, self.delay
        return False, 0.0


class OtlpRecorder:
    """An OTLP/HTTP traces receiver on 127.0.0.1 that records every span delivered."""

    def __init__(self) -> None:
        self.port = 0  # chosen by the first start(), kept by the next ones
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._changed = threading.Condition()  # guards everything below
        self._plan = _Plan()
        self._deliveries: list[Delivery] = []
        self._requests: list[Request] = []
        self._arrived = 0  # requests numbered so far
        self._in_flight = 0

    # --- running ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self.port, "start() the receiver first"
        return f"http://127.0.0.1:{self.port}{TRACES_PATH}"

    def start(self) -> None:
        """Listen (again) on the same port; the first start picks a free one."""
        assert self._server is None, "already running"
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler_class())
        server.daemon_threads = True  # a slow answer never holds the test run up
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop listening: connections are refused until start() is called again.
        A request already being answered (a slow one) still completes."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._server = self._thread = None
        server.shutdown()
        server.server_close()
        thread.join()

    def __enter__(self) -> OtlpRecorder:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- behaviour -------------------------------------------------------------------

    def refuse(self, count: int | None = None) -> None:
        """Answer 503 (Service Unavailable) to the next ``count`` requests, or to every
        request until ``accept()``."""
        with self._changed:
            self._plan.refusing = count

    def slow(self, delay: float, count: int | None = None) -> None:
        """Sleep ``delay`` seconds before taking each of the next ``count`` requests (or
        every request until ``accept()``): a client with a shorter timeout gives up, but
        the receiver still takes the spans, as a real one would."""
        with self._changed:
            self._plan.delay = delay
            self._plan.slow_for = count

    def accept(self) -> None:
        """Take every request at once again."""
        with self._changed:
            self._plan = _Plan()

    # --- what was received -----------------------------------------------------------

    @property
    def deliveries(self) -> list[Delivery]:
        with self._changed:
            return list(self._deliveries)

    @property
    def requests(self) -> list[Request]:
        with self._changed:
            return list(self._requests)

    def span_ids(self) -> list[str]:
        return [delivery.span_id for delivery in self.deliveries]

    def versions(self) -> Counter[tuple[str, str]]:
        """How many times each version (span id, content) of each span arrived."""
        return Counter((delivery.span_id, delivery.version) for delivery in self.deliveries)

    def wait_until(self, condition: Callable[[OtlpRecorder], bool], timeout: float = 60.0) -> None:
        """Block until ``condition(self)`` holds (or fail the test). It is checked after
        each request and every 0.1 s: it may look at more than the receiver."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    pytest.fail(
                        f"the receiver waited {timeout:g} s in vain; it has "
                        f"{len(self._deliveries)} deliveries in {len(self._requests)} requests"
                    )
                self._changed.wait(min(remaining, 0.1))  # a condition may not be ours

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Block until no request is being answered (a slow one has been taken)."""
        self.wait_until(lambda recorder: recorder._in_flight == 0, timeout)

    # --- the HTTP side ---------------------------------------------------------------

    def _take(self, body: bytes, encoding: str) -> tuple[int, bytes]:
        """Decide, maybe sleep, then record: the status and body to answer with."""
        if encoding == "gzip":
            body = gzip.decompress(body)
        spans = [
            span
            for resource_spans in ExportTraceServiceRequest.FromString(body).resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]
        span_ids = tuple(span.span_id.hex() for span in spans)
        with self._changed:
            self._arrived += 1
            number = self._arrived
            self._in_flight += 1
            refuse, delay = self._plan.next()
        try:
            if refuse:  # nothing delivered: the same spans must come again
                self._record(Request(number, HTTPStatus.SERVICE_UNAVAILABLE, False, span_ids), [])
                return HTTPStatus.SERVICE_UNAVAILABLE, b""
            if delay:
                time.sleep(delay)
            deliveries = [_delivery(number, span) for span in spans]
            self._record(Request(number, HTTPStatus.OK, bool(delay), span_ids), deliveries)
            return HTTPStatus.OK, ExportTraceServiceResponse().SerializeToString()
        finally:
            with self._changed:
                self._in_flight -= 1
                self._changed.notify_all()

    def _record(self, request: Request, deliveries: list[Delivery]) -> None:
        with self._changed:
            self._requests.append(request)
            self._deliveries.extend(deliveries)
            self._changed.notify_all()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            # HTTP/1.0: one request per connection, so a stopped receiver leaves no
            # kept-alive connection behind that would still reach a closed server.
            protocol_version = "HTTP/1.0"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if self.path != TRACES_PATH:
                    self._answer(HTTPStatus.NOT_FOUND, b"")
                    return
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                status, payload = recorder._take(body, encoding)
                self._answer(status, payload)

            def _answer(self, status: int, payload: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/x-protobuf")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a slow answer): it retries

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the test reads what was recorded instead

        return Handler


@pytest.fixture
def otlp_recorder() -> Iterator[OtlpRecorder]:
    """A running recorder, stopped after the test."""
    with OtlpRecorder() as recorder:
        yield recorder
