"""The dashboard's figures, drawn on the server: their geometry, not their markup.

- ``cost_per_day``: cost per UTC day stacked by model, with a legend.
- ``session_waterfall``: a session's agents on one time line, with their
  prompts and log lines as marks.

Both return plain numbers and strings; the templates write the SVG, so every
model name, message and tooltip goes through Jinja2's autoescape like any other
stored text (no markup is built here). Positions are SVG attributes (``x``,
``width``), never ``style``, which the Content-Security-Policy forbids. The
waterfall's are percentages of its width, so it stretches with the page.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from .formatting import duration, moment, money, parse_moment, tokens
from .reads import ACTIVE_STATUSES, first_line

__all__ = [
    "MAX_SERIES",
    "NO_MODEL",
    "CostChart",
    "Waterfall",
    "cost_per_day",
    "session_waterfall",
]

Row = dict[str, Any]

NO_MODEL = "(no model: agents' own costs)"
OTHER_MODELS = "(other models)"
MAX_SERIES = 8  # colours in dashboard.css (.series-0 .. .series-7); past that, "other models"


# --- cost per day ------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """One model's part of one day's column."""

    x: float
    y: float
    width: float
    height: float
    series: int
    title: str


@dataclass(frozen=True)
class DayColumn:
    day: str
    label: str | None  # shown under the axis on some days only
    label_x: float
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class LegendEntry:
    series: int
    label: str
    cost_usd: float


@dataclass(frozen=True)
class Gridline:
    y: float
    label: str


@dataclass(frozen=True)
class CostChart:
    width: int
    height: int
    left: float  # the plot area, in the SVG's own units
    right: float
    top: float
    bottom: float
    columns: tuple[DayColumn, ...]
    legend: tuple[LegendEntry, ...]
    gridlines: tuple[Gridline, ...]
    total_usd: float
    first_day: str
    last_day: str

    @property
    def empty(self) -> bool:
        return not self.legend


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5 or 5 times a power of ten at or above ``value``."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= step * power * (1 + 1e-12):
            return step * power
    return 10.0 * power  # pragma: no cover  # the loop's last step always fits


def _axis_money(value: float) -> str:
    """An axis label: dollars without the trailing zeros (``$62.5``, ``$0.0125``)."""
    return "$" + f"{value:,.4f}".rstrip("0").rstrip(".")


def _series_names(rows: Sequence[Row]) -> dict[str | None, str]:
    """Each model's legend label: the costliest first, the rest as "other models"."""
    totals: dict[str | None, float] = {}
    for row in rows:
        totals[row["model"]] = totals.get(row["model"], 0.0) + float(row["cost_usd"])
    ranked = sorted(totals, key=lambda model: (-totals[model], model is None, model or ""))
    kept = ranked if len(ranked) <= MAX_SERIES else ranked[: MAX_SERIES - 1]
    names = {model: NO_MODEL if model is None else model for model in kept}
    for model in ranked[len(kept) :]:
        names[model] = OTHER_MODELS
    return names


def cost_per_day(rows: Sequence[Row], days: Sequence[date]) -> CostChart:
    """A stacked column per day of ``days`` from ``rows`` (``day``, ``model``,
    ``cost_usd``, ``prompts``, as ``DashboardReads.daily_costs`` gives them)."""
    width, height = 900, 240
    left, right, top, bottom = 64.0, width - 8.0, 10.0, height - 26.0
    names = _series_names(rows)
    labels = list(dict.fromkeys(names.values()))  # in rank order, "other" last
    series_of = {label: index for index, label in enumerate(labels)}
    per_day: dict[str, dict[str, tuple[float, int]]] = {}
    for row in rows:
        label = names[row["model"]]
        cost, prompts = per_day.setdefault(row["day"], {}).get(label, (0.0, 0))
        per_day[row["day"]][label] = (cost + float(row["cost_usd"]), prompts + int(row["prompts"]))
    day_totals = [sum(cost for cost, _ in per_day.get(d.isoformat(), {}).values()) for d in days]
    scale = _nice_ceiling(max(day_totals, default=0.0))
    slot = (right - left) / max(len(days), 1)
    columns = []
    for index, day in enumerate(days):
        key = day.isoformat()
        x = left + index * slot + slot * 0.1
        y = bottom
        segments = []
        for label in labels:
            cost, prompts = per_day.get(key, {}).get(label, (0.0, 0))
            if cost <= 0:
                continue
            size = cost / scale * (bottom - top)
            y -= size
            title = f"{key} · {label}: {money(cost)} ({tokens(prompts)} prompts)"
            segments.append(Segment(x, y, slot * 0.8, size, series_of[label], title))
        labelled = (len(days) - 1 - index) % 7 == 0  # every week back from the last day
        columns.append(
            DayColumn(key, key[5:] if labelled else None, x + slot * 0.4, tuple(segments))
        )
    gridlines = tuple(
        Gridline(bottom - step / 4 * (bottom - top), _axis_money(scale * step / 4))
        for step in range(5)
    )
    legend_costs = {label: 0.0 for label in labels}
    for row in rows:
        legend_costs[names[row["model"]]] += float(row["cost_usd"])
    legend = tuple(
        LegendEntry(series_of[label], label, legend_costs[label])
        for label in labels
        if legend_costs[label] > 0
    )
    return CostChart(
        width=width,
        height=height,
        left=left,
        right=right,
        top=top,
        bottom=bottom,
        columns=tuple(columns),
        legend=legend,
        gridlines=gridlines,
        total_usd=sum(day_totals),
        first_day=days[0].isoformat() if days else "",
        last_day=days[-1].isoformat() if days else "",
    )


# --- a session's waterfall ---------------------------------------------------------


@dataclass(frozen=True)
class Mark:
    """A prompt (a span from its creation, as long as its latency) or a log line
    (a point), in percent of the time line."""

    x: float
    width: float
    css: str
    title: str
    prompt_id: str | None  # prompts link to their page


@dataclass(frozen=True)
class Lane:
    agent: Row
    depth: int
    x: float
    width: float
    css: str
    title: str
    prompts: tuple[Mark, ...]
    logs: tuple[Mark, ...]


@dataclass(frozen=True)
class Tick:
    x: float
    label: str
    anchor: str  # SVG text-anchor: start, middle or end


@dataclass(frozen=True)
class Waterfall:
    start: datetime
    end: datetime
    lanes: tuple[Lane, ...]
    ticks: tuple[Tick, ...]

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


MIN_PROMPT_WIDTH = 0.3  # percent: a prompt of a few milliseconds stays visible and clickable
_OPEN_PROMPTS = frozenset({"pending", "streaming"})


def _is_running(agent: Row) -> bool:
    return agent["status"] in ACTIVE_STATUSES and agent.get("completed_at") is None


def _prompt_span(prompt: Row, now: datetime) -> tuple[datetime, datetime]:
    start = parse_moment(prompt["created_at"]) or now
    if prompt.get("latency_ms") is not None:
        return start, start + timedelta(milliseconds=int(prompt["latency_ms"]))
    ended = parse_moment(prompt.get("completed_at"))
    if ended is not None:
        return start, max(ended, start)
    return start, (now if prompt["status"] in _OPEN_PROMPTS else start)


def _agent_span(agent: Row, marks_end: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    start = parse_moment(agent["started_at"]) or now
    ended = parse_moment(agent.get("completed_at"))
    if ended is None:
        ended = now if _is_running(agent) else (marks_end or start)
    return start, max(ended, start)


def session_waterfall(
    agents: Sequence[tuple[int, Row]],
    prompts: Sequence[Row],
    logs: Sequence[Row],
    *,
    now: datetime,
) -> Waterfall:
    """``agents`` (depth, agent row) in the order to draw them, with the
    ``prompts`` and ``logs`` of them that were read; running agents and open
    prompts reach ``now``."""
    prompt_spans = [(prompt, *_prompt_span(prompt, now)) for prompt in prompts]
    log_times = [(log, parse_moment(log["created_at"]) or now) for log in logs]
    last_mark: dict[str, datetime] = {}
    for prompt, _, ended in prompt_spans:
        key = str(prompt["agent_id"])
        last_mark[key] = max(last_mark.get(key, ended), ended)
    for log, at in log_times:
        key = str(log["agent_id"])
        last_mark[key] = max(last_mark.get(key, at), at)
    agent_spans = [
        (depth, agent, *_agent_span(agent, last_mark.get(str(agent["id"])), now))
        for depth, agent in agents
    ]
    moments = [t for _, _, s, e in agent_spans for t in (s, e)]
    moments += [t for _, s, e in prompt_spans for t in (s, e)]
    moments += [at for _, at in log_times]
    start = min(moments, default=now)
    end = max(max(moments, default=now), start + timedelta(seconds=1))
    total = (end - start).total_seconds()

    def percent(at: datetime) -> float:
        return min(max((at - start).total_seconds() / total * 100, 0.0), 100.0)

    prompt_marks: dict[str, list[Mark]] = {}
    for prompt, began, ended in prompt_spans:
        width = max(percent(ended) - percent(began), MIN_PROMPT_WIDTH)
        x = min(percent(began), 100.0 - width)  # a prompt at the very end stays inside
        css = "prompt " + {"failed": "failed", "cancelled": "cancelled"}.get(
            prompt["status"], "open" if prompt["status"] in _OPEN_PROMPTS else "done"
        )
        latency = prompt.get("latency_ms")
        title = " · ".join(
            part
            for part in (
                moment(prompt["created_at"]),
                f"{prompt['prompt_type']} {prompt.get('prompt_name') or ''}".strip(),
                prompt.get("model_used") or "",
                prompt["status"],
                duration(int(latency) / 1000) if latency is not None else "",
                money(prompt.get("cost_usd")),
                first_line(prompt.get("prompt_preview")),
                first_line(prompt.get("error_message")),
            )
            if part
        )
        prompt_marks.setdefault(str(prompt["agent_id"]), []).append(
            Mark(x, width, css, title, str(prompt["id"]))
        )
    log_marks: dict[str, list[Mark]] = {}
    for log, at in log_times:
        level = str(log["log_level"]).lower()
        title = f"{moment(at)} {log['log_level']} {log['log_type']}: {first_line(log['message'])}"
        log_marks.setdefault(str(log["agent_id"]), []).append(
            Mark(percent(at), 0.0, f"log level-{level}", title, None)
        )
    lanes = []
    for depth, agent, began, ended in agent_spans:
        x = percent(began)
        running = _is_running(agent)
        state = "running" if running else str(agent["status"])
        until = "now" if running else moment(ended)
        title = (
            f"{agent.get('definition') or 'agent'} · {agent['status']} · {moment(began)}"
            f" → {until} ({duration((ended - began).total_seconds())})"
        )
        key = str(agent["id"])
        lanes.append(
            Lane(
                agent=agent,
                depth=depth,
                x=x,
                width=max(percent(ended) - x, 0.2),
                css=f"bar {state}",
                title=title,
                prompts=tuple(prompt_marks.get(key, ())),
                logs=tuple(log_marks.get(key, ())),
            )
        )
    ticks = tuple(
        Tick(
            share * 100,
            moment(start) if share == 0 else "+" + duration(total * share),
            "start" if share == 0 else "end" if share == 1 else "middle",
        )
        for share in (0, 0.25, 0.5, 0.75, 1)
    )
    return Waterfall(start, end, tuple(lanes), ticks)
