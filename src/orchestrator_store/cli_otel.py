"""``orchestrator-store export --format otlp | otlp-json``: the command line's side of
the OpenTelemetry export (``otel_export``, ``otel_follow``).

The OpenTelemetry packages are the ``otel`` extra: without them the command says what
to install. Everything here raises ``ValidationError`` (one line, exit status 1) for
options that do not fit together, before the store is read.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import typer

from .cli_render import plain
from .errors import ReceiverError, ValidationError
from .location import redact_url
from .manager import DatabaseManager

if TYPE_CHECKING:
    from .otel_export import ExportReport

__all__ = ["OtlpOptions", "otlp_work", "parse_headers"]

OTEL_MISSING = (
    "the OpenTelemetry export needs the otel extra: pip install 'orchestrator-store[otel]'"
)
TRACES_PATH = "/v1/traces"
FOLLOW_INTERVAL_S = 1.0


@dataclass
class OtlpOptions:
    """What ``export`` was given for the OTLP formats."""

    json_lines: bool  # otlp-json (a file) rather than otlp (a receiver)
    endpoint: str | None
    headers: list[str]
    output: Path | None
    since: datetime | None
    session: str | None
    follow: bool
    cursor: Path | None
    with_content: bool
    interval: float | None  # None: FOLLOW_INTERVAL_S


def parse_headers(values: list[str]) -> dict[str, str]:
    """``--headers 'k=v,k2=v2'`` (repeatable; the ``OTEL_EXPORTER_OTLP_HEADERS`` form)."""
    headers: dict[str, str] = {}
    for value in values:
        for part in value.split(","):
            if not part.strip():
                continue
            name, equals, text = part.partition("=")
            if not equals or not name.strip():
                raise ValidationError(f"--headers: {part.strip()!r} is not name=value")
            headers[name.strip()] = text.strip()
    return headers


def traces_endpoint(endpoint: str) -> str:
    """An http(s) URL, with ``/v1/traces`` added when it names no path (as the
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` variable is read)."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationError(f"--endpoint {endpoint!r} is not an http:// or https:// URL")
    if parts.path in ("", "/"):
        parts = parts._replace(path=TRACES_PATH)
    return urlunsplit(parts)


def check(options: OtlpOptions) -> None:
    """Options that do not fit together, refused before anything runs."""
    if options.json_lines:
        if options.endpoint is not None or options.headers:
            raise ValidationError("--endpoint and --headers go with --format otlp, not otlp-json")
        if options.follow:
            raise ValidationError("--follow sends to a receiver: use --format otlp --endpoint URL")
    else:
        if options.endpoint is None:
            raise ValidationError("--format otlp sends to a receiver: give --endpoint URL")
        if options.output is not None:
            raise ValidationError("--output goes with --format otlp-json, not otlp")
    if not options.follow:
        for option, value in (("--cursor", options.cursor), ("--interval", options.interval)):
            if value is not None:
                raise ValidationError(f"{option} goes with --follow")
    if options.interval is not None and not options.interval > 0:
        raise ValidationError(f"--interval must be above 0 seconds, not {options.interval:g}")


def otlp_work(options: OtlpOptions) -> Callable[[DatabaseManager], Awaitable[None]]:
    """What ``export`` runs against the store for the OTLP formats."""
    check(options)
    headers = parse_headers(options.headers)
    endpoint = traces_endpoint(options.endpoint) if options.endpoint else None
    _require_otel()

    async def work(db: DatabaseManager) -> None:
        from .otel_export import send_otlp

        if options.json_lines:
            await _write_json_lines(db, options)
            return
        assert endpoint is not None
        if options.follow:
            await _follow(db, options, endpoint, headers)
            return
        report = await send_otlp(
            db,
            endpoint,
            headers=headers,
            since=options.since,
            session=options.session,
            with_content=options.with_content,
        )
        typer.echo(
            f"sent {_summary(report)} to {plain(redact_url(endpoint))}",
            err=True,
        )

    return work


def _require_otel() -> None:
    """The otel extra's packages, checked before the store is opened."""
    try:
        import opentelemetry.exporter.otlp.proto.http
        import opentelemetry.sdk  # noqa: F401
    except ImportError:
        raise ValidationError(OTEL_MISSING) from None


async def _write_json_lines(db: DatabaseManager, options: OtlpOptions) -> None:
    from .otel_export import OtlpJsonSink, export_history, write_otlp_json

    if options.output is None:
        report = await export_history(
            db,
            OtlpJsonSink(sys.stdout),
            since=options.since,
            session=options.session,
            with_content=options.with_content,
        )
        where = "stdout"
    else:
        report = await write_otlp_json(
            db,
            options.output,
            since=options.since,
            session=options.session,
            with_content=options.with_content,
        )
        where = plain(options.output)
    typer.echo(
        f"wrote {_summary(report)} as OTLP JSON to {where}",
        err=True,
    )


def _summary(report: ExportReport) -> str:
    def count(number: int, noun: str) -> str:
        return f"{number} {noun}" + ("" if number == 1 else "s")

    return (
        f"{count(report.spans, 'span')} ({count(report.sessions, 'session')}, "
        f"{count(report.system_logs, 'system log')})"
    )


def default_cursor(db: DatabaseManager) -> Path:
    """Beside a SQLite store; in the current folder for PostgreSQL."""
    if db.db_path is not None:
        return Path(f"{db.db_path}.otlp-cursor.json")
    return Path("orchestrator-store.otlp-cursor.json").resolve()


async def _follow(
    db: DatabaseManager, options: OtlpOptions, endpoint: str, headers: dict[str, str]
) -> None:
    from .otel_export import OtlpHttpSink
    from .otel_follow import Follower

    cursor = options.cursor or default_cursor(db)
    interval = options.interval or FOLLOW_INTERVAL_S
    shown_endpoint = redact_url(endpoint)

    def retrying(error: ReceiverError, wait: float) -> None:
        typer.echo(f"{plain(str(error))}; retrying in {wait:.1f} s", err=True)

    sink = OtlpHttpSink(endpoint, headers)
    try:
        follower = Follower(
            db,
            sink,
            cursor,
            store=db.location,
            target=shown_endpoint,
            session=options.session,
            since=options.since,
            with_content=options.with_content,
            interval=interval,
            on_retry=retrying,
        )
        typer.echo(
            f"following {plain(db.location)} into {plain(shown_endpoint)} "
            f"(cursor {plain(cursor)}); Ctrl-C stops",
            err=True,
        )
        while True:
            sent = await follower.poll()
            if sent:
                typer.echo(f"sent {sent} spans (total {follower.sent})", err=True)
            await asyncio.sleep(interval)
    finally:
        sink.close()
