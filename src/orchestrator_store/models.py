"""Pydantic v2 models of the orchestrator store, aligned column for column with
the schema (``sql/schema_orchestrator.sql``, described by ``tables``).

* Row models (``OrchestratorAgent``, ``Agent``, ``Prompt``, ``AgentLog``,
  ``SystemLog``, ``OrchestratorChat``, ``AiDeveloperWorkflow``; ``ROW_MODELS``
  maps each table to its own) describe what the store returns: every row
  validates against the model of its table, and a test checks that each
  model's fields are its table's columns.
* Create and update models describe what callers may pass in. The store
  validates every call with them before any SQL runs, so a rejected call
  writes nothing.

Values are held to what both SQLite and PostgreSQL store faithfully: text
without NUL characters or lone surrogates, integers that fit 64 bits, finite
numbers, JSON without NaN or Infinity. What goes in comes out unchanged.

Bounds (importable, so callers can check or clamp before they call)
    ``MAX_TOKENS`` (10**9) for a prompt's ``tokens_input`` and
    ``tokens_output``, ``MAX_LATENCY_MS`` (10**9 ms, about 11.6 days) for its
    ``latency_ms``, ``MAX_COST_USD`` (1e9) for a prompt's ``cost_usd`` and for
    an agent's, including the running total of ``add_agent_cost``. They are
    far above any real prompt, and they keep every aggregate valid: SQLite's
    ``sum()`` of integers raises on 64-bit overflow, which now takes more than
    9.2 billion prompts at the maximum, and sums of costs stay finite (no
    Infinity, which JSON cannot carry). Integers inside JSON values must lie in
    ``MIN_JSON_INTEGER``..``MAX_JSON_INTEGER`` (64-bit): PostgreSQL's JSONB
    would keep larger ones, but SQLite's JSON functions read them as floats and
    most JSON readers lose their digits. JSON nests at most ``MAX_JSON_DEPTH``
    levels. (Floats of 1e16 and more are stored written out in full, so that
    JSONB returns them as floats: see ``json_codec.encode_json``.)
"""

from __future__ import annotations

import functools
import math
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, TypeVar, get_args

import pydantic
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

from .errors import ValidationError

__all__ = [
    "AGENT_STATUSES",
    "AGENT_TYPES",
    "CHAT_PARTIES",
    "LOG_LEVELS",
    "LOG_TYPES",
    "MAX_COST_USD",
    "MAX_INTEGER",
    "MAX_JSON_DEPTH",
    "MAX_JSON_INTEGER",
    "MAX_LATENCY_MS",
    "MAX_TOKENS",
    "MIN_JSON_INTEGER",
    "PROMPT_STATUSES",
    "PROMPT_TYPES",
    "ROW_MODELS",
    "WORKFLOW_END_STATUSES",
    "WORKFLOW_STATUSES",
    "AdwIdQuery",
    "Agent",
    "AgentCostIncrement",
    "AgentCreate",
    "AgentIdPrefix",
    "AgentIdSuffix",
    "AgentLog",
    "AgentLogCreate",
    "AgentLogQuery",
    "AgentLogTypeQuery",
    "AgentQuery",
    "AgentStatus",
    "AgentType",
    "AgentUpdate",
    "AiDeveloperWorkflow",
    "AiDeveloperWorkflowCreate",
    "AiDeveloperWorkflowQuery",
    "AiDeveloperWorkflowUpdate",
    "ChatParty",
    "CostQuery",
    "LogCursor",
    "LogLevel",
    "LogQuery",
    "LogType",
    "LogTypeQuery",
    "OrchestratorAgent",
    "OrchestratorAgentCreate",
    "OrchestratorAgentUpdate",
    "OrchestratorChat",
    "OrchestratorChatCreate",
    "OrchestratorChatQuery",
    "OrchestratorChatUpdate",
    "Page",
    "Prompt",
    "PromptCreate",
    "PromptQuery",
    "PromptStatus",
    "PromptType",
    "PromptUpdate",
    "ReadOnlyQuery",
    "RetentionAge",
    "RetentionPolicy",
    "SessionId",
    "SessionQuery",
    "SystemLog",
    "SystemLogCreate",
    "SystemLogQuery",
    "TableScan",
    "WorkflowEnd",
    "WorkflowEndStatus",
    "WorkflowStatus",
    "WorkflowStep",
    "canonical_uuid",
    "format_timestamp",
    "parse_input",
    "parse_rows",
    "shown",
    "utc_now",
]

# --- enumerations (each mirrors a CHECK in the schema) -------------------------

AgentType = Literal["planner", "builder", "reviewer", "tester", "orchestrator", "utility"]
AgentStatus = Literal[
    "initializing", "planning", "executing", "reviewing", "completed", "failed", "cancelled"
]
PromptType = Literal["adw", "command", "followup", "correction", "tool_call"]
PromptStatus = Literal["pending", "streaming", "completed", "failed", "cancelled"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LogType = Literal["state_change", "milestone", "error", "performance", "tool_call", "cost_update"]
ChatParty = Literal["user", "orchestrator", "agent"]  # who sends or receives a chat message
WorkflowStatus = Literal["pending", "in_progress", "completed", "failed", "cancelled"]
WorkflowEndStatus = Literal["completed", "failed", "cancelled"]  # what end_workflow accepts

# The same values as tuples, in that order, for code and error messages that list them.
AGENT_TYPES: tuple[AgentType, ...] = get_args(AgentType)
AGENT_STATUSES: tuple[AgentStatus, ...] = get_args(AgentStatus)
PROMPT_TYPES: tuple[PromptType, ...] = get_args(PromptType)
PROMPT_STATUSES: tuple[PromptStatus, ...] = get_args(PromptStatus)
LOG_LEVELS: tuple[LogLevel, ...] = get_args(LogLevel)
LOG_TYPES: tuple[LogType, ...] = get_args(LogType)
CHAT_PARTIES: tuple[ChatParty, ...] = get_args(ChatParty)
WORKFLOW_STATUSES: tuple[WorkflowStatus, ...] = get_args(WorkflowStatus)
WORKFLOW_END_STATUSES: tuple[WorkflowEndStatus, ...] = get_args(WorkflowEndStatus)

# --- value rules ---------------------------------------------------------------

MAX_INTEGER = 2**63 - 1  # SQLite INTEGER and PostgreSQL BIGINT
MAX_JSON_DEPTH = 256
MIN_JSON_INTEGER = -(2**63)
MAX_JSON_INTEGER = MAX_INTEGER
# Per row, so that sums over all rows stay valid (see the module docstring).
MAX_TOKENS = 10**9
MAX_LATENCY_MS = 10**9
MAX_COST_USD = 1e9
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%f+00:00"
TIMESTAMP_LENGTH = len("2026-01-31T12:00:00.000000+00:00")


def format_timestamp(moment: datetime) -> str:
    """The store's one timestamp format: UTC, microseconds, explicit offset."""
    # isoformat pads the year to four digits, which strftime does not promise.
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "+00:00"


def utc_now() -> str:
    # The store's format directly: a UTC datetime prints "+00:00" itself.
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _portable_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if value.isascii():  # the common case: no surrogate can hide in ASCII
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or blank")
    return value


def shown(value: Any) -> str:
    """A value for an error message or a log line: short, and safe for any
    input (repr of a huge int raises ValueError, of a deep list
    RecursionError, and a class's own __repr__ may raise anything)."""
    if isinstance(value, str):
        return repr(value[:80]) + ("..." if len(value) > 80 else "")
    if value is None or isinstance(value, bool | float):
        return repr(value)
    if isinstance(value, int):
        bits = value.bit_length()
        return repr(value) if bits <= 64 else f"an integer of {bits} bits"
    return f"a {type(value).__name__}"


# Said with every malformed id: a made-up or foreign id (the original module's
# "adw-orchestrator", a test's "nonexistent-id") is an error here, not a miss.
UUID_GUIDANCE = (
    "the store's ids are UUIDs its create_* methods make, so a made-up id can match "
    "nothing; pass an id a create_* method returned (or catch ValidationError when "
    "the id comes from outside)"
)


def canonical_uuid(value: Any) -> str:
    """The canonical text of a UUID (lowercase, hyphenated); ``ValueError`` if it is not one."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str):
        canonical = _canonical_uuid_text(value)
        if canonical is not None:
            return canonical
    raise ValueError(f"must be a UUID, got {shown(value)}: {UUID_GUIDANCE}")


@functools.lru_cache(maxsize=4096)  # batches and sessions repeat the same ids
def _canonical_uuid_text(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _timestamp(value: Any) -> str:
    """Accept an aware datetime or an ISO 8601 string with an offset."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"must be an ISO 8601 timestamp, got {shown(value)}") from None
    if not isinstance(value, datetime):
        raise ValueError("must be a timezone-aware datetime or an ISO 8601 string")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            "must carry a UTC offset: naive times are refused because they are ambiguous "
            "(datetime.utcnow() returns a naive one); pass datetime.now(UTC) or an ISO 8601 "
            "string with an offset such as +00:00"
        )
    try:
        return format_timestamp(value)
    except OverflowError:
        raise ValueError("is out of the range of representable UTC times") from None


def _stored_timestamp(value: str) -> str:
    """Rows hold timestamps in exactly the store's format (fixed width)."""
    try:
        parsed = datetime.strptime(value, TIMESTAMP_FORMAT)
    except ValueError:
        parsed = None
    if parsed is None or len(value) != TIMESTAMP_LENGTH:
        raise ValueError(f"is not in the store's timestamp format: {shown(value)}")
    return value


def _check_json(value: Any, depth: int = 0) -> None:
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if not MIN_JSON_INTEGER <= value <= MAX_JSON_INTEGER:
            # SQLite's JSON functions would read it as a float; 10**5000 cannot even be encoded.
            raise ValueError(
                f"JSON integers must fit 64 bits ({MIN_JSON_INTEGER}..{MAX_JSON_INTEGER}), "
                f"got {shown(value)}: store larger numbers as strings"
            )
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("JSON numbers must be finite (no NaN or Infinity)")
        return
    if isinstance(value, str):
        _portable_text(value)
        return
    if isinstance(value, list):
        for item in value:
            _check_json(item, depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"JSON object keys must be strings, got {shown(key)}")
            _portable_text(key)
            _check_json(item, depth + 1)
        return
    raise ValueError(f"is not JSON: {type(value).__name__} values cannot be stored")


def _json_value(value: Any) -> Any:
    _check_json(value)
    return value


Text = Annotated[str, Field(strict=True), AfterValidator(_portable_text)]
Name = Annotated[
    str, Field(strict=True), AfterValidator(_portable_text), AfterValidator(_not_blank)
]
UUIDText = Annotated[str, BeforeValidator(canonical_uuid)]
InputTimestamp = Annotated[str, BeforeValidator(_timestamp)]
Timestamp = Annotated[str, Field(strict=True), AfterValidator(_stored_timestamp)]
Count = Annotated[int, Field(strict=True, ge=0, le=MAX_INTEGER)]
Tokens = Annotated[int, Field(strict=True, ge=0, le=MAX_TOKENS)]
LatencyMs = Annotated[int, Field(strict=True, ge=0, le=MAX_LATENCY_MS)]
Money = Annotated[float, Field(strict=True, ge=0, le=MAX_COST_USD, allow_inf_nan=False)]
Seconds = Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)]
JsonValue = Annotated[Any, AfterValidator(_json_value)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- orchestrator_agents -------------------------------------------------------


class OrchestratorAgentCreate(_Model):
    name: Name
    description: Text | None = None
    agent_type: AgentType
    capabilities: Text | None = None
    default_model: Text | None = None


class OrchestratorAgentUpdate(_Model):
    name: Name = None  # type: ignore[assignment]  # unset fields are never written
    description: Text | None = None
    agent_type: AgentType = None  # type: ignore[assignment]
    capabilities: Text | None = None
    default_model: Text | None = None


class OrchestratorAgent(OrchestratorAgentCreate):
    id: UUIDText
    created_at: Timestamp
    updated_at: Timestamp


# --- agents --------------------------------------------------------------------


class AgentCreate(_Model):
    orchestrator_agent_id: UUIDText
    session_id: Name
    parent_agent_id: UUIDText | None = None
    status: AgentStatus = "initializing"
    context: JsonValue = None
    config: JsonValue = None


class AgentUpdate(_Model):
    """``cost_usd`` is at most ``MAX_COST_USD``; ``context`` and ``config`` are
    JSON (64-bit integers, finite numbers, at most ``MAX_JSON_DEPTH`` deep)."""

    status: AgentStatus = None  # type: ignore[assignment]
    completed_at: InputTimestamp | None = None
    cost_usd: Money = None  # type: ignore[assignment]
    error_message: Text | None = None
    context: JsonValue = None
    config: JsonValue = None


class Agent(AgentCreate):
    id: UUIDText
    started_at: Timestamp
    completed_at: Timestamp | None
    cost_usd: Money
    error_message: Text | None


# --- prompts -------------------------------------------------------------------


class PromptCreate(_Model):
    agent_id: UUIDText
    prompt_type: PromptType
    prompt_text: Name
    prompt_name: Text | None = None
    status: PromptStatus = "pending"
    model_used: Text | None = None


class PromptUpdate(_Model):
    """Tokens are at most ``MAX_TOKENS`` each, ``latency_ms`` at most
    ``MAX_LATENCY_MS``, ``cost_usd`` at most ``MAX_COST_USD``."""

    response_text: Text | None = None
    status: PromptStatus = None  # type: ignore[assignment]
    model_used: Text | None = None
    tokens_input: Tokens = None  # type: ignore[assignment]
    tokens_output: Tokens = None  # type: ignore[assignment]
    cost_usd: Money = None  # type: ignore[assignment]
    latency_ms: LatencyMs | None = None
    completed_at: InputTimestamp | None = None
    error_message: Text | None = None


class Prompt(PromptCreate):
    id: UUIDText
    response_text: Text | None
    tokens_input: Tokens
    tokens_output: Tokens
    cost_usd: Money
    latency_ms: LatencyMs | None
    created_at: Timestamp
    completed_at: Timestamp | None
    error_message: Text | None


# --- logs ----------------------------------------------------------------------


class AgentLogCreate(_Model):
    agent_id: UUIDText
    log_level: LogLevel = "INFO"
    log_type: LogType
    message: Name
    details: JsonValue = None


class AgentLog(AgentLogCreate):
    id: Annotated[int, Field(strict=True, ge=1)]
    created_at: Timestamp


class SystemLogCreate(_Model):
    log_level: LogLevel = "INFO"
    component: Name
    message: Name
    details: JsonValue = None


class SystemLog(SystemLogCreate):
    id: Annotated[int, Field(strict=True, ge=1)]
    created_at: Timestamp


# --- orchestrator_chat -----------------------------------------------------------


class OrchestratorChatCreate(_Model):
    orchestrator_agent_id: UUIDText
    sender_type: ChatParty
    receiver_type: ChatParty
    message: Name
    summary: Text | None = None
    agent_id: UUIDText | None = None
    metadata: JsonValue = None


class OrchestratorChatUpdate(_Model):
    summary: Text | None = None
    metadata: JsonValue = None


class OrchestratorChat(OrchestratorChatCreate):
    id: UUIDText
    created_at: Timestamp
    updated_at: Timestamp


# --- ai_developer_workflows --------------------------------------------------------


class AiDeveloperWorkflowCreate(_Model):
    """``adw_id`` is the run's own id (an ADW id, say), unique when given."""

    orchestrator_agent_id: UUIDText | None = None
    adw_id: Name | None = None
    adw_name: Name
    workflow_type: Name
    description: Text | None = None
    total_steps: Count = 0
    input_data: JsonValue = None
    metadata: JsonValue = None


class AiDeveloperWorkflowUpdate(_Model):
    adw_name: Name = None  # type: ignore[assignment]  # unset fields are never written
    workflow_type: Name = None  # type: ignore[assignment]
    description: Text | None = None
    status: WorkflowStatus = None  # type: ignore[assignment]
    current_step: Text | None = None
    total_steps: Count = None  # type: ignore[assignment]
    completed_steps: Count = None  # type: ignore[assignment]
    started_at: InputTimestamp | None = None
    completed_at: InputTimestamp | None = None
    duration_seconds: Seconds | None = None
    input_data: JsonValue = None
    output_data: JsonValue = None
    error_message: Text | None = None
    error_step: Text | None = None
    error_count: Count = None  # type: ignore[assignment]
    metadata: JsonValue = None


class WorkflowStep(_Model):
    """One ``update_workflow_step``: ``completed_steps`` None leaves it as it is."""

    current_step: Name
    completed_steps: Count | None = None
    status: WorkflowStatus = "in_progress"


class WorkflowEnd(_Model):
    """One ``end_workflow``: a final status; None leaves a field as it is."""

    status: WorkflowEndStatus
    error_message: Text | None = None
    error_step: Text | None = None
    output_data: JsonValue = None


class AiDeveloperWorkflow(AiDeveloperWorkflowCreate):
    id: UUIDText
    status: WorkflowStatus
    current_step: Text | None
    completed_steps: Count
    started_at: Timestamp | None
    completed_at: Timestamp | None
    duration_seconds: Seconds | None
    output_data: JsonValue
    error_message: Text | None
    error_step: Text | None
    error_count: Count
    created_at: Timestamp
    updated_at: Timestamp


# The row model of each table, in schema order.
ROW_MODELS: dict[str, type[BaseModel]] = {
    "orchestrator_agents": OrchestratorAgent,
    "agents": Agent,
    "prompts": Prompt,
    "agent_logs": AgentLog,
    "system_logs": SystemLog,
    "orchestrator_chat": OrchestratorChat,
    "ai_developer_workflows": AiDeveloperWorkflow,
}


class AgentCostIncrement(_Model):
    """One ``add_agent_cost``: the increment is at most ``MAX_COST_USD``, and
    so is the agent's total after it (``max_total``, checked in the UPDATE)."""

    max_total: ClassVar[float] = MAX_COST_USD

    agent_id: UUIDText
    cost_usd: Money


# --- queries (filters and pages of the list methods) ----------------------------

Limit = Annotated[int, Field(strict=True, ge=1, le=MAX_INTEGER)]


class Page(_Model):
    limit: Limit | None = None
    offset: Count = 0


class AgentQuery(Page):
    session_id: Name | None = None
    orchestrator_agent_id: UUIDText | None = None
    status: AgentStatus | None = None


class PromptQuery(Page):
    agent_id: UUIDText | None = None
    status: PromptStatus | None = None


class AgentLogQuery(Page):
    agent_id: UUIDText
    log_level: LogLevel | None = None
    log_type: LogType | None = None


class LogTypeQuery(Page):
    """Agent logs of one type, of every agent (``get_logs_by_type``)."""

    log_type: LogType


class AgentLogTypeQuery(LogTypeQuery):
    """Agent logs of one type, of one agent (``get_agent_logs_by_type``)."""

    agent_id: UUIDText


class SystemLogQuery(Page):
    log_level: LogLevel | None = None
    component: Name | None = None


class OrchestratorChatQuery(Page):
    orchestrator_agent_id: UUIDText | None = None
    agent_id: UUIDText | None = None


class AiDeveloperWorkflowQuery(Page):
    status: WorkflowStatus | None = None
    workflow_type: Name | None = None
    orchestrator_agent_id: UUIDText | None = None


class AdwIdQuery(_Model):
    adw_id: Name


# --- reports (the read methods behind the command line) -------------------------

CostGroup = Literal["session", "model", "agent_type", "day"]
# A Literal, so its error lists the names; tests/test_tables.py checks it against tables.TABLES.
TableName = Literal[
    "orchestrator_agents",
    "agents",
    "prompts",
    "agent_logs",
    "system_logs",
    "orchestrator_chat",
    "ai_developer_workflows",
]


class SessionQuery(_Model):
    limit: Limit | None = None


class CostQuery(_Model):
    by: CostGroup | None = None
    since: InputTimestamp | None = None
    session_id: Name | None = None
    limit: Limit | None = None

    @model_validator(mode="after")
    def _limit_ranks_sessions_or_days(self) -> CostQuery:
        if self.limit is not None and self.by not in ("session", "day"):
            raise ValueError(
                "limit keeps the costliest sessions or the latest days: "
                "it needs by='session' or by='day'"
            )
        return self


class SessionId(_Model):
    session_id: Name


class LogCursor(_Model):
    """Where a follow of the logs stands in each log table (``log_bounds``,
    ``logs_after``): a dict of plain ints, so that it survives a trip through
    JSON. A missing key is 0, or for a ``*_tx`` key None: ``{}`` is the start.

    * ``agent_logs``, ``system_logs``: on SQLite, the highest id delivered
      (ids become visible in increasing order there).
    * ``agent_logs_tx``, ``system_logs_tx``: PostgreSQL only (schema version 5
      on). With its table's id, the place (tx, id) of the last row delivered:
      ``tx`` is the id of the transaction that inserted it, and rows are
      delivered in (tx, id) order once final. ``log_bounds`` gives (horizon, 0),
      before every row not final when it looked (ids are 1 and up). Without it
      (a cursor from before version 5, or ``{}``), the table's id places the
      cursor among the rows from before version 5 (their tx is NULL), which
      come before every other row.
    """

    agent_logs: Count = 0
    system_logs: Count = 0
    agent_logs_tx: Count | None = None
    system_logs_tx: Count | None = None


class LogQuery(_Model):
    agent_id: UUIDText | None = None
    min_level: LogLevel | None = None
    log_type: LogType | None = None
    component: Name | None = None
    since: InputTimestamp | None = None
    limit: Limit | None = None

    @model_validator(mode="after")
    def _one_table_per_filter(self) -> LogQuery:
        if self.component is not None and (self.agent_id or self.log_type):
            raise ValueError(
                "component filters system logs, agent_id and log_type filter agent logs: "
                "pass one kind"
            )
        return self

    @property
    def reads_agent_logs(self) -> bool:
        return self.component is None

    @property
    def reads_system_logs(self) -> bool:
        return self.agent_id is None and self.log_type is None


# Part of an agent id: lowercase like the stored ids; at most a whole UUID.
IdPart = Annotated[
    str,
    Field(strict=True, min_length=1, max_length=36, pattern=r"^[0-9a-f-]+$"),
    BeforeValidator(lambda value: value.strip().lower() if isinstance(value, str) else value),
]


class AgentIdPrefix(_Model):
    prefix: IdPart
    limit: Limit = 2


class AgentIdSuffix(_Model):
    suffix: IdPart
    limit: Limit = 2


class RetentionAge(_Model):
    """``days``: a finite number, 0 or more. More days than lie between year 1
    and now mean "older than the earliest representable time": no row is that
    old, so nothing matches (rather than an OverflowError)."""

    days: Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)]


class TableScan(_Model):
    table: TableName
    batch_size: Limit = 500


def _parameter_list(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(value)
    raise ValueError(f"must be a list or tuple with one value per placeholder, got {shown(value)}")


def _sql_parameter(value: Any) -> Any:
    """What both drivers bind as they are: no datetime (SQLite would bind it
    as text in another format than the stored one), no Decimal, no JSON."""
    if value is None or isinstance(value, bool | bytes):
        return value
    if isinstance(value, int):
        if not MIN_JSON_INTEGER <= value <= MAX_INTEGER:
            raise ValueError(f"integers must fit 64 bits, got {shown(value)}")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("numbers must be finite (no NaN or Infinity)")
        return value
    if isinstance(value, str):
        return _portable_text(value)
    raise ValueError(
        f"must be None, a bool, an int, a float, a str or bytes, got {shown(value)}: pass "
        "timestamps as the store's text (models.format_timestamp), UUIDs and JSON as text"
    )


class ReadOnlyQuery(_Model):
    """``query()``: one statement and the values of its placeholders."""

    sql: Name
    params: Annotated[
        tuple[Annotated[Any, AfterValidator(_sql_parameter)], ...],
        BeforeValidator(_parameter_list),
    ]


# --- validation at the boundary ------------------------------------------------

ModelT = TypeVar("ModelT", bound=BaseModel)


def parse_input(model: type[ModelT], table: str, data: dict[str, Any]) -> ModelT:
    """Validate caller input, turning Pydantic's error into the store's, naming
    the table and the field (``agents.status: ...``)."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise _translated(exc, table) from exc


@functools.cache
def _list_of(model: type[BaseModel]) -> pydantic.TypeAdapter[list[Any]]:
    return pydantic.TypeAdapter(list[model])  # type: ignore[valid-type]


def parse_rows(model: type[ModelT], table: str, rows: list[Any]) -> list[ModelT]:
    """Validate many rows in one pass; an error names the row's index
    (``agent_logs[3].message: ...``)."""
    try:
        return _list_of(model).validate_python(rows)
    except pydantic.ValidationError as exc:
        raise _translated(exc, table, indexed=True) from exc


def _translated(
    exc: pydantic.ValidationError, table: str, *, indexed: bool = False
) -> ValidationError:
    if not isinstance(table, str):  # a bad table argument (iter_rows) labels its own error
        table = "(unknown table)"
    problems = []
    first_field = None
    for error in exc.errors(include_url=False):
        location = [part if isinstance(part, str) else shown(part) for part in error["loc"]]
        prefix = f"{table}[{location.pop(0)}]" if indexed and location else table
        field = ".".join(location) or "(input)"
        first_field = first_field or field
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        problems.append(f"{prefix}.{field}: {message}")
    return ValidationError("; ".join(problems), table=table, field=first_field)


# --- retention (``DatabaseManager.prune``) ---------------------------------------

Days = Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)]
MAX_RETENTION_EVERY = 366 * 86_400.0  # a year between automatic runs is as rare as it gets


class RetentionPolicy(_Model):
    """What ``DatabaseManager.prune`` deletes; every rule is optional and
    rules add up (a row goes when any rule says so). See ``retention``.

    * ``agent_log_days``, ``system_log_days``: logs older than that many days.
    * ``session_days``: sessions (agents sharing a ``session_id``, with their
      prompts, logs and chat messages) whose last activity is older.
    * ``keep_sessions``: keep the newest N sessions, delete the older ones.
    * ``max_bytes``: keep the SQLite file's pages in use under this size,
      deleting the oldest logs and sessions first.
    * ``every``: seconds between automatic runs (``DatabaseManager(...,
      retention=...)``); ``prune()`` itself ignores it.
    * ``batch_rows``: the most rows one DELETE removes (one short transaction).

    A session with an agent still running is never deleted. Bad values raise
    the store's ``ValidationError`` naming the field."""

    agent_log_days: Days | None = None
    system_log_days: Days | None = None
    session_days: Days | None = None
    keep_sessions: Count | None = None
    max_bytes: Limit | None = None
    every: (
        Annotated[float, Field(strict=True, gt=0, le=MAX_RETENTION_EVERY, allow_inf_nan=False)]
        | None
    ) = None
    batch_rows: Annotated[int, Field(strict=True, ge=1, le=100_000)] = 1000

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except pydantic.ValidationError as exc:
            raise _translated(exc, "retention") from None

    @property
    def deletes_anything(self) -> bool:
        """Whether any rule is set (``every`` and ``batch_rows`` are not rules)."""
        rules = ("agent_log_days", "system_log_days", "session_days", "keep_sessions", "max_bytes")
        return any(getattr(self, name) is not None for name in rules)
