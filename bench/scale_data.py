"""The history the scale benchmark reads: a user's months of agent sessions.

Sessions arrive at a constant rate, ``SESSIONS_PER_DAY`` a UTC day, the last one ending
before ``end`` (the build's "now"): 10,000 sessions (1,000,000 prompts) span 100 days,
100,000 sessions (10,000,000 prompts) 1,000 days. A session is a lead agent and nine
children under it, over six definitions (six agent types); each agent makes ten prompts
on its definition's model (tool calls on the cheap one: three models in all), with tokens
that grow through the conversation, cost from the model's price, latency from the output's
length, about 3% failed, and writes two logs; each session adds two system logs. The last
session is still running (its agents are executing).

Rows come as tuples in the column order of ``COLUMNS``, a chunk of sessions at a time,
each session from a generator seeded by its number: both backends get the same rows (but
for the times, which end at each build's "now") however they are chunked, and chunks can
be made in any order or thread. ``stamp`` turns microseconds since the epoch into the
backend's value (the store's text on SQLite, a datetime for asyncpg). Ids are
time-ordered UUIDs (version 7) of the row's own time, as the store would have given them.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator_store.dialect import GENERATED_IDS
from orchestrator_store.tables import TABLES

SESSIONS_PER_DAY = 100
AGENTS_PER_SESSION = 10
PROMPTS_PER_AGENT = 10
LOGS_PER_AGENT = 2
SYSTEM_LOGS_PER_SESSION = 2
PROMPTS_PER_SESSION = AGENTS_PER_SESSION * PROMPTS_PER_AGENT
GENERATOR_VERSION = 2  # part of the SQLite cache's key: change it when the rows change

_SESSION_GAP_US = 86_400_000_000 // SESSIONS_PER_DAY
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Model:
    name: str
    input_usd_per_mtok: float
    output_usd_per_mtok: float
    ms_per_output_token: float


SONNET = Model("claude-sonnet-4-5", 3.00, 15.00, 14.0)
GPT = Model("gpt-4.1", 2.00, 8.00, 11.0)
HAIKU = Model("claude-haiku-4-5", 1.00, 5.00, 6.0)


@dataclass(frozen=True)
class Definition:
    name: str
    description: str
    agent_type: str
    model: Model


DEFINITIONS = (  # the lead first
    Definition("lead", "Plans the session and hands the work out", "orchestrator", SONNET),
    Definition("planner", "Breaks a task into steps", "planner", GPT),
    Definition("builder", "Writes and edits the code", "builder", SONNET),
    Definition("reviewer", "Reviews the builders' changes", "reviewer", GPT),
    Definition("tester", "Runs and writes tests", "tester", HAIKU),
    Definition("scout", "Looks things up in the repository", "utility", HAIKU),
)
_CHILD_DEFINITIONS = (1, 2, 2, 3, 4, 2, 5, 3, 4)  # the nine children's, by index
_PROMPT_TYPES = ("followup",) * 10 + ("tool_call",) * 7 + ("correction",) * 3
_PROMPT_ERRORS = ("rate limited (429)", "request timed out", "context length exceeded")
_COMPONENTS = ("scheduler", "dispatcher", "budget", "worktree")

_LEFT_OUT = {"agents": ("config",)}  # columns the rows leave to the database (NULL)


def _written(table: str) -> tuple[str, ...]:
    """The table's columns as ``tables`` lists them, but for its generated id
    and the ones left out."""
    skipped = {*_LEFT_OUT.get(table, ()), *(("id",) if table in GENERATED_IDS else ())}
    return tuple(column for column in TABLES[table].columns if column not in skipped)


COLUMNS: dict[str, tuple[str, ...]] = {
    table: _written(table) for table in ("agents", "prompts", "agent_logs", "system_logs")
}

Stamp = Callable[[int], Any]
Row = tuple[Any, ...]


def sqlite_stamp(us: int) -> str:
    """The store's timestamp text (``isoformat`` of an aware UTC time ends in +00:00)."""
    return (_EPOCH + timedelta(microseconds=us)).isoformat(timespec="microseconds")


def postgres_stamp(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def session_id(number: int) -> str:
    return f"scale-{number:07d}"


def expected_counts(sessions: int) -> dict[str, int]:
    agents = sessions * AGENTS_PER_SESSION
    return {
        "orchestrator_agents": len(DEFINITIONS),
        "agents": agents,
        "prompts": agents * PROMPTS_PER_AGENT,
        "agent_logs": agents * LOGS_PER_AGENT,
        "system_logs": sessions * SYSTEM_LOGS_PER_SESSION,
    }


@dataclass
class Chunk:
    agents: list[Row] = field(default_factory=list)
    prompts: list[Row] = field(default_factory=list)
    agent_logs: list[Row] = field(default_factory=list)
    system_logs: list[Row] = field(default_factory=list)

    def tables(self) -> dict[str, list[Row]]:
        """Rows per table, parents before the rows that refer to them."""
        return {
            "agents": self.agents,
            "prompts": self.prompts,
            "agent_logs": self.agent_logs,
            "system_logs": self.system_logs,
        }


def _time_ordered_id(rng: random.Random, us: int) -> str:
    """A UUID version 7 of this time: 48 bits of milliseconds, version, 12 random bits,
    variant, 62 random bits."""
    value = (
        (us // 1000) << 80
        | 0x7 << 76
        | rng.getrandbits(12) << 64
        | 0b10 << 62
        | rng.getrandbits(62)
    )
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


class _Session:
    """One session's rows, appended to a chunk."""

    def __init__(
        self,
        rng: random.Random,
        stamp: Stamp,
        definition_ids: Sequence[str],
        chunk: Chunk,
        *,
        running: bool,
    ) -> None:
        self.rng = rng
        self.stamp = stamp
        self.definition_ids = definition_ids
        self.chunk = chunk
        self.running = running

    def add(self, number: int, start_us: int) -> None:
        name = session_id(number)
        lead = _time_ordered_id(self.rng, start_us)
        lead_position = len(self.chunk.agents)
        last_us = start_us
        for child, definition in enumerate(_CHILD_DEFINITIONS):
            begin = start_us + 3_000_000 + child * 15_000_000 + self.rng.randrange(2_000_000)
            last_us = max(last_us, self.agent(name, definition, lead, begin))
        # The lead's prompts run while the children work; it ends after the last of them.
        last_us = self.agent(name, 0, None, start_us, agent_id=lead, ends_after=last_us)
        self.chunk.agents.insert(lead_position, self.chunk.agents.pop())  # parent first
        self.chunk.system_logs.append(
            (
                "INFO",
                _COMPONENTS[0],
                f"session {name} started",
                '{"agents": 10}',
                self.stamp(start_us),
            )
        )
        warning = self.rng.random() < 0.05
        self.chunk.system_logs.append(
            (
                "WARNING" if warning else "INFO",
                _COMPONENTS[1 + number % 3],
                f"session {name} " + ("over its budget" if warning else "finished"),
                json.dumps({"agents": AGENTS_PER_SESSION, "prompts": PROMPTS_PER_SESSION}),
                self.stamp(last_us),
            )
        )

    def agent(
        self,
        session: str,
        definition: int,
        parent: str | None,
        start_us: int,
        *,
        agent_id: str | None = None,
        ends_after: int = 0,
    ) -> int:
        """Add an agent with its prompts and logs; the moment it ended."""
        rng = self.rng
        agent_id = agent_id or _time_ordered_id(rng, start_us)
        model = DEFINITIONS[definition].model
        self.chunk.agent_logs.append(
            (
                agent_id,
                "INFO",
                "state_change",
                "started",
                '{"from": "initializing", "to": "executing"}',
                self.stamp(start_us),
            )
        )
        moment = start_us + rng.randrange(200_000, 1_500_000)
        failure = None
        for p in range(PROMPTS_PER_AGENT):
            moment, failure = self.prompt(agent_id, session, p, model, moment)
        own_cost = round(rng.uniform(0.005, 0.05), 4) if rng.random() < 0.2 else 0.0
        end_us = max(moment, ends_after) + 500_000
        if self.running:
            status, completed, log = "executing", None, ("INFO", "milestone", "step 10 of 12")
        elif failure is not None:
            status, completed, log = "failed", end_us, ("ERROR", "error", f"failed: {failure}")
        else:
            status, completed, log = "completed", end_us, ("INFO", "milestone", "finished")
        self.chunk.agents.append(
            (
                agent_id,
                self.definition_ids[definition],
                session,
                parent,
                status,
                '{"task": "issue"}' if parent is None else None,
                self.stamp(start_us),
                None if completed is None else self.stamp(completed),
                own_cost,  # tools and other spend beside the prompts
                failure if status == "failed" else None,
            )
        )
        self.chunk.agent_logs.append(
            (agent_id, *log, json.dumps({"prompts": PROMPTS_PER_AGENT}), self.stamp(end_us))
        )
        return end_us

    def prompt(
        self, agent_id: str, session: str, p: int, model: Model, created_us: int
    ) -> tuple[int, str | None]:
        """Add a prompt; when the next one starts, and its error (None if it succeeded)."""
        rng = self.rng
        kind = "command" if p == 0 else rng.choice(_PROMPT_TYPES)
        if kind == "tool_call":
            model = HAIKU
        tokens_in = 1_200 + p * 1_500 + rng.randrange(3_000)
        failed = rng.random() < 0.03
        error = rng.choice(_PROMPT_ERRORS) if failed else None
        tokens_out = 0 if failed else min(8_000, 40 + int(rng.expovariate(1 / 600)))
        latency = 300 + int(tokens_out * model.ms_per_output_token * rng.uniform(0.7, 1.3))
        if failed:
            latency += rng.randrange(30_000)
        cost = (tokens_in * model.input_usd_per_mtok + tokens_out * model.output_usd_per_mtok) / 1e6
        completed_us = created_us + latency * 1000
        self.chunk.prompts.append(
            (
                _time_ordered_id(rng, created_us),
                agent_id,
                kind,
                f"step-{p}",
                f"Step {p} of {session}: carry on with the task and report what changed.",
                None if failed else f"Done with step {p}: {tokens_out} tokens of changes.",
                "failed" if failed else "completed",
                model.name,
                tokens_in,
                tokens_out,
                round(cost, 6),
                latency,
                self.stamp(created_us),
                self.stamp(completed_us),
                error,
            )
        )
        think = rng.randrange(300_000, 2_000_000 if kind == "tool_call" else 6_000_000)
        return completed_us + think, error


def chunk(
    first: int,
    count: int,
    sessions: int,
    end_us: int,
    definition_ids: Sequence[str],
    stamp: Stamp,
) -> Chunk:
    """Sessions ``first`` to ``first + count - 1`` of ``sessions`` ending before ``end_us``
    (microseconds since the epoch); ``definition_ids`` in the order of ``DEFINITIONS``."""
    rows = Chunk()
    for number in range(first, min(first + count, sessions)):
        rng = random.Random(number)
        start_us = end_us - (sessions - number) * _SESSION_GAP_US + rng.randrange(200_000_000)
        running = number == sessions - 1
        _Session(rng, stamp, definition_ids, rows, running=running).add(number, start_us)
    return rows
