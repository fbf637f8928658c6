"""Adopting a SQLite file the original ``adw_database`` module wrote.

The original module (tac_bootstrap's aiosqlite ``DatabaseManager``) used the
store's table names, but its files ("original-era files") carry no schema
version (``PRAGMA user_version`` 0), naive timestamps (``datetime.utcnow()``
text, and SQLite's ``datetime('now')`` text from its column defaults), ids that
are not all UUIDs (its sync bridge's ``"adw-orchestrator"``, a workflow's
8-hex ADW id) and plain text in JSON columns. Opened as it is, such a file
would hand back rows the store's own models refuse, so ``connect()`` refuses
it with a ``SchemaError`` naming ``orchestrator-store adopt``. So does a file
an earlier store stamped version 1 without converting it (its tables lack the
store's timestamp CHECKs).

``adopt_database(path)`` (on the command line ``orchestrator-store adopt --db
PATH``) moves such a file into the current schema, in place:

1. It takes the file's write lock (``BEGIN IMMEDIATE``, waiting for other
   writers) and looks at the file again: only an original-era file is adopted.
2. It writes a backup copy next to the file with SQLite's backup API, read
   through a second, read-only connection while the first one holds the write
   lock: the copy is exactly what the migration starts from, and no write can
   slip in between. (The locked connection itself cannot be the source:
   ``sqlite3_backup_step`` answers SQLITE_BUSY while its source connection has
   a write transaction open, and Python's ``Connection.backup`` retries that
   for ever.)
3. In one transaction: the old tables are renamed aside (their indexes and
   triggers dropped), the current schema is created, every row is copied and
   converted (below), the version is set, the old tables are dropped, and the
   foreign keys and the file's integrity are checked. An error anywhere rolls
   it all back: the file stays as it was, and the backup stays in place.

Conversions
    * timestamps: naive ISO text and SQLite's ``YYYY-MM-DD HH:MM:SS`` are read
      as UTC, text with an offset is converted to UTC; all are written in the
      store's one format (``models.format_timestamp``).
    * ids: a UUID of any version is kept, in canonical form; any other id gets
      ``adopted_id(table, old_id)``, a fixed version-5 UUID, and every
      reference to it follows. A workflow keeps such an old id (its ADW id) in
      ``adw_id``.
    * JSON columns: valid JSON is kept, written compact; other text is kept as
      a JSON string.
    * NULL in a NOT NULL column that has a default (tokens, costs, counts, log
      level) becomes the default.

A row that cannot be converted (a value the schema does not allow, blank
required text, an unreadable timestamp, a reference to a row that is not
there, ...) is never dropped silently: it is left out of the new tables, stays
in the backup, and is listed in the report with its table, its original id and
the reason. A row whose reference points at a row that was not copied follows
its foreign key's ``ON DELETE`` rule: ``CASCADE`` leaves it out too, ``SET
NULL`` clears the reference (as the original file would have, had SQLite
enforced its foreign keys).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
import uuid
from collections.abc import Iterator, Sized
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import tables
from .errors import BusyError, DatabaseError, SchemaError, ValidationError
from .json_codec import encode_json
from .location import STORE_FILE_SUFFIXES, store_file_named_by, sync_folder
from .models import ROW_MODELS, canonical_uuid, format_timestamp, parse_input
from .original_era import (
    ORIGINAL_COLUMNS,
    adopt_command,
    is_original_era,
    original_era_refusal,
    table_columns,
    table_sql,
    user_version,
)
from .schema import DEFAULT_SCHEMA_PATH, LATEST_VERSION, statements_to_upgrade
from .sqlite_backend import foreign_tables, is_sqlite_file
from .sqlite_errors import BUSY_RETRIES, SQLITE_NOTADB, is_busy, primary_code, retry_busy

__all__ = [
    "ADOPTION_NAMESPACE",
    "ORIGINAL_COLUMNS",
    "AdoptionReport",
    "LeftOutRow",
    "RemappedId",
    "adopt_command",
    "adopt_database",
    "adopted_id",
    "is_original_era",
    "original_era_refusal",
]

# Fixed for good: the same old id always becomes the same new one.
ADOPTION_NAMESPACE = uuid.UUID("8f238e35-0cf1-4189-a55e-45d245d89b51")
OLD_TABLE_PREFIX = "adopt_original_"  # where an old table waits while its rows are copied
DEFAULT_BUSY_TIMEOUT = 5.0

# Where a table keeps an old id that was not a UUID (a workflow's ADW id).
_OLD_ID_COLUMNS = {"ai_developer_workflows": "adw_id"}

# What the report counts, per table and column.
TIMESTAMP_REWRITTEN = "timestamps rewritten in the store's format (UTC)"
UUID_CANONICAL = "UUIDs written in canonical form"
REFERENCE_REMAPPED = "references to remapped ids"
JSON_AS_STRING = "texts that are not JSON kept as JSON strings"
JSON_COMPACTED = "JSON texts written compact"
NULL_TO_DEFAULT = "NULLs replaced by the column's default"
REFERENCE_CLEARED = "references to rows not copied set to NULL (ON DELETE SET NULL)"


def adopted_id(table: str, old_id: Any) -> str:
    """The id a row of ``table`` has once adopted: a UUID stays itself (in
    canonical form); any other id becomes a version-5 UUID fixed by the table
    and the old id, so references to it can be followed, and found again."""
    canonical = _as_uuid(old_id)
    if canonical is not None:
        return canonical
    # uuid.uuid5, also for text that is not UTF-8 (read from a damaged file).
    name = f"{table}:{old_id}".encode("utf-8", "surrogateescape")
    digest = hashlib.sha1(ADOPTION_NAMESPACE.bytes + name, usedforsecurity=False).digest()
    return str(uuid.UUID(bytes=digest[:16], version=5))


def _as_uuid(value: Any) -> str | None:
    try:
        return canonical_uuid(value)
    except ValueError:
        return None


# --- the report ------------------------------------------------------------------------


@dataclass(frozen=True)
class LeftOutRow:
    """A row that could not be converted: it stays in the backup only."""

    table: str
    original_id: str | int | None
    reason: str


@dataclass(frozen=True)
class RemappedId:
    """A copied row whose old id was not a UUID, and the UUID it has now."""

    table: str
    original_id: str | int
    new_id: str


@dataclass
class AdoptionReport:
    path: Path
    backup_path: Path
    schema_version: int
    rows_copied: dict[str, int] = field(default_factory=dict)  # table -> rows, schema order
    # (table, column, what was done) -> how many values
    converted: dict[tuple[str, str, str], int] = field(default_factory=dict)
    remapped_ids: list[RemappedId] = field(default_factory=list)
    left_out: list[LeftOutRow] = field(default_factory=list)

    @property
    def values_converted(self) -> int:
        return sum(self.converted.values())


# --- adopting --------------------------------------------------------------------------


class _LeftOut(Exception):
    """This row cannot be converted; the message says why."""


def adopt_database(
    path: Path | str,
    *,
    backup_path: Path | str | None = None,
    schema_path: Path = DEFAULT_SCHEMA_PATH,
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
) -> AdoptionReport:
    """Migrate the original-era file at ``path`` into the current schema, in
    place, after writing a backup copy (``backup_path``, by default
    ``<file>.before-adopt-<UTC time>`` next to it; an existing file is never
    written over). Raises ``DatabaseError`` (``SchemaError`` for a file already
    in the store's schema, or newer) and changes nothing when the file is not
    an original-era file or the migration fails."""
    path = Path(path)
    _require_sqlite_file(path)
    try:
        connection = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=rw",
            uri=True,
            isolation_level=None,
            timeout=busy_timeout,
        )
    except sqlite3.Error as exc:
        raise _file_error(exc, path) from exc
    connection.text_factory = _lenient_text
    try:
        return _adopt_locked(connection, path, backup_path, schema_path, busy_timeout)
    except sqlite3.Error as exc:
        raise _file_error(exc, path) from exc
    finally:
        connection.close()


def _adopt_locked(
    connection: sqlite3.Connection,
    path: Path,
    backup_path: Path | str | None,
    schema_path: Path,
    busy_timeout: float,
) -> AdoptionReport:
    connection.execute("PRAGMA foreign_keys = OFF")  # a no-op inside a transaction: set first
    try:
        retry_busy(lambda: connection.execute("BEGIN IMMEDIATE"), str(path))
    except sqlite3.OperationalError as exc:
        if is_busy(exc):
            raise BusyError(
                f"{path} is in use: another connection kept its write lock for longer than "
                f"{busy_timeout:g}s ({BUSY_RETRIES} tries); stop the program writing to it "
                "and run adopt again (nothing was changed)"
            ) from exc
        raise
    try:
        _require_original_era(connection, path)
        backup = _write_backup(path, Path(backup_path) if backup_path is not None else None)
        try:
            report = _Migration(connection, path, backup, schema_path).run()
            connection.execute("COMMIT")
        except Exception as exc:
            detail = str(exc) if isinstance(exc, DatabaseError | sqlite3.Error) else repr(exc)
            raise DatabaseError(
                f"adopting {path} failed and was rolled back: the file is as it was, and the "
                f"backup {backup} is kept ({detail})"
            ) from exc
    except BaseException:
        if connection.in_transaction:
            with suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
        raise
    # The old tables' pages are free now: give them back, so that the adopted
    # file is not twice its size. Only a nicety: a reader holding the file
    # (busy) leaves them free for later writes to reuse.
    with suppress(sqlite3.OperationalError):
        connection.execute("VACUUM")
    return report


def _lenient_text(data: bytes) -> str:
    """Text that is not UTF-8 is read anyway (its row is then refused by the
    store's models), so that one bad value cannot stop the whole adoption."""
    return data.decode("utf-8", "surrogateescape")


def _require_sqlite_file(path: Path) -> None:
    try:
        found = is_sqlite_file(path)
    except NotADirectoryError:  # a part of its folder is a file
        found = False
    if not found:
        if path.is_file():
            raise DatabaseError(f"{path} is empty: there is nothing to adopt")
        raise DatabaseError(f"no database at {path}")


def _file_error(exc: sqlite3.Error, path: Path) -> DatabaseError:
    if primary_code(exc) == SQLITE_NOTADB:
        return DatabaseError(f"{path} is not a SQLite database: {exc} (nothing was changed)")
    return DatabaseError(f"cannot adopt {path}: {exc}")


def _require_original_era(connection: sqlite3.Connection, path: Path) -> None:
    """Looked at under the write lock: another adopt may have just finished."""
    version = user_version(connection)
    if version > LATEST_VERSION:
        raise SchemaError(
            f"{path} has schema version {version}, newer than this store's {LATEST_VERSION}: "
            "it is not a file of the original module (nothing was changed)"
        )
    if not table_sql(connection):
        raise DatabaseError(
            f"{path} holds no tables: there is nothing to adopt (connect() creates the "
            "store's schema in it)"
        )
    # As connect() does, and first: is_original_era assumes the store's tables.
    # Against the tables adopt copies (the schema file is read only once the
    # backup is written: an error in it then rolls back like any other).
    store = {name: table.columns for name, table in tables.TABLES.items()}
    store |= tables.TOTALS_TABLES
    foreign = foreign_tables(table_columns(connection), store) if version == 0 else []
    if foreign:
        raise DatabaseError(
            f"{path} holds tables that are not the store's, by name or columns "
            f"({', '.join(foreign)}): it looks like another application's database "
            "(nothing was changed)"
        )
    if is_original_era(connection):
        _refuse_unknown_objects(connection, path)
        return
    if version > 0:
        raise SchemaError(
            f"{path} is already in the store's schema (version {version}): there is nothing "
            "to adopt; connect() opens it"
        )
    raise SchemaError(
        f"{path} already holds the store's schema, not yet versioned: there is nothing to "
        "adopt; connect() stamps its version"
    )


def _refuse_unknown_objects(connection: sqlite3.Connection, path: Path) -> None:
    """Views, and triggers on other tables, would be left pointing at the old
    tables: the original module made neither, so such a file is refused. The
    store's own totals (an earlier store's stamp) are rebuilt, their triggers too."""
    names = ", ".join(ORIGINAL_COLUMNS)
    known = (*ORIGINAL_COLUMNS, *tables.TOTALS_TABLES)
    rows = connection.execute(
        "SELECT type, name FROM sqlite_master WHERE type = 'view' "
        f"OR (type = 'trigger' AND tbl_name NOT IN ({_placeholders(known)}))",
        known,
    ).fetchall()
    if rows:
        listed = ", ".join(f"{row[0]} {row[1]}" for row in rows)
        raise DatabaseError(
            f"{path} holds {listed}: adopt carries over the original module's tables "
            f"({names}), their indexes and triggers only (nothing was changed)"
        )


# --- the backup ------------------------------------------------------------------------


def _default_backup_paths(path: Path) -> Iterator[Path]:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    base = f"{path}.before-adopt-{stamp}"
    yield Path(base)
    for number in range(2, 1000):
        yield Path(f"{base}-{number}")


def _write_backup(path: Path, requested: Path | None) -> Path:
    """A complete copy of the file as it is now, in a new file (never over an
    existing one), written while the caller holds the write lock."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if requested is not None:
        store_file = store_file_named_by(requested, path)
        if store_file is not None:
            raise DatabaseError(
                f"backup path {requested} is the database's own file {store_file} "
                "(nothing was changed)"
            )
        if not _create_new(requested, mode):
            raise DatabaseError(
                f"backup path {requested} exists: adopt never writes over a file (choose "
                "another path; nothing was changed)"
            )
        target = requested
    else:
        target = _create_default(path, mode)
    try:
        source = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            copy = sqlite3.connect(target, isolation_level=None)
            try:
                source.backup(copy)
                # One self-contained file, whatever journal mode the original used.
                copy.execute("PRAGMA journal_mode = DELETE")
            finally:
                copy.close()
        finally:
            source.close()
    except BaseException:
        for suffix in STORE_FILE_SUFFIXES:
            with suppress(OSError):
                Path(f"{target}{suffix}").unlink(missing_ok=True)
        raise
    sync_folder(target.parent)  # the backup's new name
    return target


def _create_new(target: Path, mode: int) -> bool:
    """Make ``target`` an empty new file; False if it exists (O_EXCL: even
    one made a moment ago is never written over)."""
    try:
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        return False
    except OSError as exc:
        raise DatabaseError(
            f"cannot create the backup {target}: {exc} (nothing was changed)"
        ) from exc
    os.close(descriptor)
    return True


def _create_default(path: Path, mode: int) -> Path:
    """``<file>.before-adopt-<UTC time>``, numbered when that name is taken."""
    for target in _default_backup_paths(path):
        if _create_new(target, mode):
            return target
    raise DatabaseError(f"cannot name a backup of {path}: too many exist already")


# --- the migration ---------------------------------------------------------------------


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _placeholders(items: Sized) -> str:
    return ", ".join("?" * len(items))


def _shown(value: Any) -> str:
    """A value from the file, short, for a reason in the report."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _report_id(value: Any) -> str | int | None:
    """An original id as the report shows it: bytes that are not UTF-8 as escapes (``\\xff``)."""
    if isinstance(value, int) or value is None:
        return value
    return str(value).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class _Migration:
    """Everything between the backup and COMMIT, on the locked connection."""

    def __init__(
        self, connection: sqlite3.Connection, path: Path, backup: Path, schema_path: Path
    ) -> None:
        self.connection = connection
        self.schema_path = schema_path
        self.report = AdoptionReport(path=path, backup_path=backup, schema_version=LATEST_VERSION)
        self.old_tables: dict[str, str] = {}  # store table -> its old table, set aside
        # Text-id tables: every id read (copied or not), and new id -> original id of copied rows.
        self.read_ids: dict[str, set[str]] = {}
        self.copied_ids: dict[str, dict[str, Any]] = {}
        self.defaults: dict[str, dict[str, Any]] = {}  # table -> its NOT NULL columns' defaults

    def run(self) -> AdoptionReport:
        sequences = self._old_sequences()
        self._set_old_tables_aside()
        for statement in statements_to_upgrade(0, self.schema_path):
            self.connection.execute(statement)
        for table in tables.TABLES.values():
            if table.name in self.old_tables:
                self._copy(table)
        self._follow_foreign_keys()
        self._keep_sequences(sequences)
        self.connection.execute(f"PRAGMA user_version = {LATEST_VERSION}")
        for old in self.old_tables.values():
            self.connection.execute(f"DROP TABLE {_quoted(old)}")
        self._check()
        for name in tables.TABLES:
            count = self.connection.execute(f"SELECT count(*) FROM {_quoted(name)}").fetchone()
            self.report.rows_copied[name] = int(count[0])
        self.report.remapped_ids = [
            RemappedId(name, original, new)
            for name, copied in self.copied_ids.items()
            for new, original in copied.items()
            if _as_uuid(original) is None
        ]
        self._in_schema_order()
        return self.report

    def _in_schema_order(self) -> None:
        """The report's lists in the order of the tables and their columns."""
        order = {name: index for index, name in enumerate(tables.TABLES)}

        def place(key: tuple[str, str, str]) -> tuple[int, int, str]:
            name, column, what = key
            return order[name], tables.TABLES[name].columns.index(column), what

        converted = self.report.converted
        self.report.converted = {key: converted[key] for key in sorted(converted, key=place)}
        self.report.left_out.sort(key=lambda row: order[row.table])

    def _old_sequences(self) -> dict[str, int]:
        """AUTOINCREMENT's high-water marks, so adopted logs never reuse a deleted id."""
        if not self.connection.execute(
            "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'"
        ).fetchone():
            return {}
        rows = self.connection.execute("SELECT name, seq FROM sqlite_sequence").fetchall()
        return {row[0]: int(row[1]) for row in rows if isinstance(row[1], int)}

    def _set_old_tables_aside(self) -> None:
        found = table_sql(self.connection)
        names = [name for name in found if name in ORIGINAL_COLUMNS or name in tables.TABLES]
        # Their indexes would keep their names (and so block the schema's own
        # CREATE INDEX IF NOT EXISTS); the original's triggers write its format.
        attached = self.connection.execute(
            "SELECT type, name FROM sqlite_master WHERE type IN ('index', 'trigger') "
            f"AND sql IS NOT NULL AND tbl_name IN ({_placeholders(names)})",
            names,
        ).fetchall()
        for kind, name in attached:
            self.connection.execute(f"DROP {kind.upper()} {_quoted(name)}")
        for name in tables.TOTALS_TABLES:  # derived: the copied rows' triggers rebuild them
            self.connection.execute(f"DROP TABLE IF EXISTS {_quoted(name)}")
        for name in names:
            aside = OLD_TABLE_PREFIX + name
            if aside in found:
                raise DatabaseError(f"the file already holds a table {aside}")
            self.connection.execute(f"ALTER TABLE {_quoted(name)} RENAME TO {_quoted(aside)}")
            self.old_tables[name] = aside

    def _defaults(self, table: str) -> dict[str, Any]:
        """The values of the new table's NOT NULL columns' defaults."""
        defaults = {}
        for row in self.connection.execute("SELECT * FROM pragma_table_info(?)", (table,)):
            name, notnull, default = row[1], row[3], row[4]
            if notnull and default is not None:  # the store's own schema: trusted SQL
                defaults[name] = self.connection.execute(f"SELECT {default}").fetchone()[0]
        return defaults

    def _copy(self, table: tables.Table) -> None:
        name = table.name
        self.defaults[name] = self._defaults(name)
        model = ROW_MODELS.get(name)
        insert = (
            f"INSERT INTO {_quoted(name)} ({', '.join(map(_quoted, table.columns))}) "
            f"VALUES ({_placeholders(table.columns)})"
        )
        if not table.generated_id:
            self.read_ids[name] = set()
            self.copied_ids[name] = {}
        cursor = self.connection.execute(
            f"SELECT * FROM {_quoted(self.old_tables[name])} ORDER BY rowid"
        )
        columns = [description[0] for description in cursor.description]
        while batch := cursor.fetchmany(500):
            for values in batch:
                old = dict(zip(columns, values, strict=True))
                notes: list[tuple[str, str]] = []
                try:
                    self._read_id(table, old.get("id"))
                    row = self._converted(table, old, notes)
                    if model is not None:
                        self._validate(model, table, row)
                    self.connection.execute(
                        insert,
                        [self._stored(table, column, row[column]) for column in table.columns],
                    )
                except _LeftOut as exc:
                    self._leave_out(name, old.get("id"), str(exc))
                    continue
                except sqlite3.IntegrityError as exc:
                    self._leave_out(name, old.get("id"), " ".join(str(exc).split()))
                    continue
                if not table.generated_id:
                    self.copied_ids[name][row["id"]] = old.get("id")
                for column, what in notes:
                    self._count(name, column, what)

    def _read_id(self, table: tables.Table, value: Any) -> None:
        """Note a text id as read (so that a reference to it can say the row was
        left out rather than missing); two rows may not become one."""
        if table.generated_id:
            return
        new = self._new_id(table, value)
        read = self.read_ids[table.name]
        if new in read:
            raise _LeftOut(f"its id is the same UUID as an earlier row's ({new})")
        read.add(new)

    def _converted(
        self, table: tables.Table, old: dict[str, Any], notes: list[tuple[str, str]]
    ) -> dict[str, Any]:
        """The row in the store's terms (JSON columns decoded), and in ``notes``
        what was converted; ``_LeftOut`` if it cannot be. No side effects."""
        defaults = self.defaults[table.name]
        row: dict[str, Any] = {}
        for column in table.columns:
            value = old.get(column)
            if column == "id":
                value = self._new_id(table, value)
                if value != old.get(column) and _as_uuid(old.get(column)) is not None:
                    notes.append((column, UUID_CANONICAL))
            elif value is None:
                pass
            elif column in table.references:
                value = self._reference(table.references[column], column, value, notes)
            elif column.endswith("_at"):  # the schema's convention: every timestamp is *_at
                value = self._timestamp(column, value, notes)
            elif column in table.json_columns:
                value = self._json(column, value, notes)
            if value is None and column in defaults:
                value = defaults[column]
                if column in old:
                    notes.append((column, NULL_TO_DEFAULT))
            row[column] = value
        kept_in = _OLD_ID_COLUMNS.get(table.name, "")
        original = old.get("id")
        if row.get(kept_in, "") is None and _as_uuid(original) is None:
            row[kept_in] = str(original)
        return row

    @staticmethod
    def _new_id(table: tables.Table, value: Any) -> Any:
        if table.generated_id:  # INTEGER PRIMARY KEY: always the row's integer id
            return value
        if value is None or (isinstance(value, str) and not value.strip()):
            raise _LeftOut("it has no id")
        if isinstance(value, str) and not _is_utf8(value):
            raise _LeftOut("its id is not valid UTF-8 text")
        return adopted_id(table.name, value)

    def _reference(self, target: str, column: str, value: Any, notes: list[tuple[str, str]]) -> str:
        new = adopted_id(target, value)
        if new != value:
            notes.append((column, UUID_CANONICAL if _as_uuid(value) else REFERENCE_REMAPPED))
        return new

    @staticmethod
    def _timestamp(column: str, value: Any, notes: list[tuple[str, str]]) -> str:
        """Naive text is UTC (the original wrote utcnow() and datetime('now'))."""
        text = value.strip() if isinstance(value, str) else ""
        # A date alone is no moment: the text needs a time after the date.
        if len(text) < 16 or text[10] not in "T ":
            raise _LeftOut(f"{column}: {_shown(value)} is not a date and time")
        try:
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            stored = format_timestamp(moment)
        except (ValueError, OverflowError):
            raise _LeftOut(f"{column}: {_shown(value)} is not a date and time") from None
        if stored != value:
            notes.append((column, TIMESTAMP_REWRITTEN))
        return stored

    @staticmethod
    def _json(column: str, value: Any, notes: list[tuple[str, str]]) -> Any:
        if isinstance(value, bytes):
            raise _LeftOut(f"{column}: holds binary data, not JSON text")
        if not isinstance(value, str):  # a number in a column without TEXT affinity
            return value
        try:
            decoded = json.loads(value, parse_constant=_not_json)
        except ValueError:
            notes.append((column, JSON_AS_STRING))
            return value
        if _compact(decoded) != value:
            notes.append((column, JSON_COMPACTED))
        return decoded

    @staticmethod
    def _validate(model: Any, table: tables.Table, row: dict[str, Any]) -> None:
        try:
            parse_input(model, table.name, row)
        except ValidationError as exc:
            raise _LeftOut(str(exc)) from None

    @staticmethod
    def _stored(table: tables.Table, column: str, value: Any) -> Any:
        return encode_json(value) if column in table.json_columns else value

    def _leave_out(self, table: str, original_id: Any, reason: str) -> None:
        self.report.left_out.append(LeftOutRow(table, _report_id(original_id), reason))

    def _count(self, table: str, column: str, what: str, times: int = 1) -> None:
        key = (table, column, what)
        self.report.converted[key] = self.report.converted.get(key, 0) + times
        if not self.report.converted[key]:
            del self.report.converted[key]

    def _uncount(self, table: tables.Table, old: dict[str, Any]) -> None:
        """A copied row taken out again: its conversions no longer happened."""
        notes: list[tuple[str, str]] = []
        self._converted(table, old, notes)  # it converted once: it converts again
        for column, what in notes:
            self._count(table.name, column, what, -1)

    def _follow_foreign_keys(self) -> None:
        """Rows naming a row that was not copied follow their foreign key's
        ON DELETE rule. Rows are left out first, until no such reference is
        left dangling (leaving a row out can leave its own children dangling);
        then the references that still dangle are cleared: a row left out has
        no reference cleared, so none is counted."""
        for clearing in (False, True):
            while True:
                changed = False
                for name in tables.TABLES:
                    for problem in self.connection.execute(
                        f"PRAGMA foreign_key_check({_quoted(name)})"
                    ).fetchall():
                        changed |= self._dangling(
                            name, rowid=problem[1], key=problem[3], clearing=clearing
                        )
                if not changed:
                    break

    def _dangling(self, name: str, *, rowid: int, key: int, clearing: bool) -> bool:
        keys = {
            row[0]: (row[2], row[3], row[6])  # id -> (parent table, column, on delete)
            for row in self.connection.execute(f"PRAGMA foreign_key_list({_quoted(name)})")
        }
        parent, column, on_delete = keys[key]
        if (on_delete.upper() == "SET NULL") != clearing:  # not this pass's rule
            return False
        found = self.connection.execute(
            f"SELECT id, {_quoted(column)} FROM {_quoted(name)} WHERE rowid = ?", (rowid,)
        ).fetchone()
        if found is None or found[1] is None:  # already dealt with through another key
            return False
        new_id, reference = found
        if clearing:
            self.connection.execute(
                f"UPDATE {_quoted(name)} SET {_quoted(column)} = NULL WHERE rowid = ?", (rowid,)
            )
            self._count(name, column, REFERENCE_CLEARED)
            return True
        self.connection.execute(f"DELETE FROM {_quoted(name)} WHERE rowid = ?", (rowid,))
        copied = self.copied_ids.get(name)
        original_id = copied.pop(new_id) if copied is not None else new_id
        cursor = self.connection.execute(
            f"SELECT * FROM {_quoted(self.old_tables[name])} WHERE id = ?", (original_id,)
        )
        values = cursor.fetchone()
        old = dict(zip([item[0] for item in cursor.description], values or (), strict=False))
        if old:
            self._uncount(tables.TABLES[name], old)
        shown = _shown(old.get(column, reference))
        fate = (
            "was left out" if reference in self.read_ids.get(parent, ()) else "is not in the file"
        )
        self._leave_out(name, original_id, f"{column} names {parent} row {shown}, which {fate}")
        return True

    def _keep_sequences(self, old: dict[str, int]) -> None:
        for name, seq in old.items():
            if name not in tables.LOG_TABLES:
                continue
            row = self.connection.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = ?", (name,)
            ).fetchone()
            if row is None:
                self.connection.execute(
                    "INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (name, seq)
                )
            elif row[0] < seq:
                self.connection.execute(
                    "UPDATE sqlite_sequence SET seq = ? WHERE name = ?", (seq, name)
                )

    def _check(self) -> None:
        dangling = self.connection.execute("PRAGMA foreign_key_check").fetchall()
        if dangling:
            raise DatabaseError(f"foreign keys still dangle after the copy: {dangling[:5]}")
        integrity = [row[0] for row in self.connection.execute("PRAGMA integrity_check")]
        if integrity != ["ok"]:
            raise DatabaseError(f"integrity check failed: {'; '.join(integrity[:5])}")


def _not_json(constant: str) -> Any:
    """NaN and Infinity are not JSON (SQLite's json_valid refuses them too)."""
    raise ValueError(f"{constant} is not JSON")


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _compact(value: Any) -> str | None:
    try:
        return encode_json(value)
    except ValueError:
        return None
