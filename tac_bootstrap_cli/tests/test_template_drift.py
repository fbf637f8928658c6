"""BASE and TEMPLATES never drift: rendering with the default config gives the BASE back."""

from __future__ import annotations

import ast
import difflib
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from tac_bootstrap.application import scaffold_service
from tac_bootstrap.application.scaffold_service import (
    BASE_ONLY,
    BASE_TEMPLATES,
    REGISTRY,
    TemplateEntry,
    WriteMode,
    render_registry,
)
from tac_bootstrap.application.template_sync import base_files, sync_templates, templatize
from tac_bootstrap.domain.config import DatabaseConfig, ProjectConfig
from tac_bootstrap.domain.errors import TacBootstrapError
from tac_bootstrap.infrastructure.template_filters import gitignore_path, python_string
from tac_bootstrap.infrastructure.template_repository import TemplateRepository

SYNC_HINT = "run: uv run python tac_bootstrap_cli/scripts/sync_templates.py"
WHOLE_FILES = [entry for entry in REGISTRY if entry.mode is WriteMode.WHOLE_FILE]


def test_every_base_file_has_a_registered_template() -> None:
    """A new module under adws/ cannot be forgotten: this fails until the sync script ran."""
    assert list(BASE_TEMPLATES) == base_files(REPO_ROOT), SYNC_HINT
    assert {str(entry.target) for entry in WHOLE_FILES} == set(BASE_TEMPLATES)
    for name in BASE_ONLY:
        assert (REPO_ROOT / name).is_file(), f"BASE_ONLY lists a missing file: {name}"


@pytest.mark.parametrize("entry", WHOLE_FILES, ids=lambda e: str(e.target))
def test_default_rendering_is_the_base_byte_for_byte(entry: TemplateEntry) -> None:
    rendered = {str(e.target): text for e, text in render_registry(ProjectConfig())}
    target = str(entry.target)
    base = (REPO_ROOT / target).read_bytes()
    assert rendered[target].encode() == base, SYNC_HINT


def test_another_path_changes_only_the_default_path_line() -> None:
    tricky = 'data/it\'s "here"\\x.db'
    base = ProjectConfig()
    other = ProjectConfig(database=DatabaseConfig(path=tricky))
    changed = {}
    for (entry, default_text), (_, other_text) in zip(
        render_registry(base), render_registry(other), strict=True
    ):
        if default_text != other_text:
            diff = [
                line
                for line in difflib.unified_diff(
                    default_text.splitlines(), other_text.splitlines(), lineterm="", n=0
                )
                if line[:1] in "+-" and line[:3] not in ("+++", "---")
            ]
            changed[str(entry.target)] = diff
    module = changed.pop("adws/adw_modules/adw_database.py")
    assert module == [
        '-DEFAULT_DB_PATH = "orchestrator.db"',
        f"+DEFAULT_DB_PATH = {python_string(tricky)}",
    ]
    assert set(changed) == {".gitignore"}
    tree = ast.parse(module[1][1:])
    assert ast.literal_eval(tree.body[0].value) == tricky  # type: ignore[attr-defined]


def test_a_database_url_changes_the_default_url_line_and_the_ignored_files() -> None:
    url = "postgresql://agents@db.internal:5432/orchestrator"
    base = ProjectConfig()
    other = ProjectConfig(database=DatabaseConfig(url=url))
    changed = {
        str(entry.target): (default_text, other_text)
        for (entry, default_text), (_, other_text) in zip(
            render_registry(base), render_registry(other), strict=True
        )
        if default_text != other_text
    }
    assert set(changed) == {"adws/adw_modules/adw_database.py", ".gitignore"}
    _, ignored = changed.pop(".gitignore")  # a server: no database file to ignore
    assert "no database file to ignore" in ignored
    assert "orchestrator.db" not in ignored
    default_text, other_text = changed.popitem()[1]
    assert "DEFAULT_DATABASE_URL: str | None = None\n" in default_text
    assert other_text == default_text.replace(
        "DEFAULT_DATABASE_URL: str | None = None",
        f"DEFAULT_DATABASE_URL: str | None = {python_string(url)}",
    )


@pytest.mark.parametrize(
    "url", ["mysql://x/y", "postgresql:/missing-slash", "sqlite:///", "sqlite://rel.db", ""]
)
def test_a_database_url_must_be_postgresql_or_sqlite(url: str) -> None:
    with pytest.raises(ValueError, match="url"):
        DatabaseConfig(url=url)


@pytest.mark.parametrize(
    "value", ["orchestrator.db", "it's.db", 'say "hi".db', "back\\slash.db", "émoji 🗄.db"]
)
def test_python_string_is_a_literal_of_the_same_value(value: str) -> None:
    assert ast.literal_eval(python_string(value)) == value
    assert python_string("orchestrator.db") == '"orchestrator.db"'


def test_gitignore_path_matches_exactly_that_file() -> None:
    assert gitignore_path("orchestrator.db") == "/orchestrator.db"
    assert gitignore_path("data/*[1]?.db") == "/data/\\*\\[1\\]\\?.db"
    assert gitignore_path("#notes!.db ") == "/\\#notes\\!.db\\ "


JINJA_HOSTILE = (
    'f"{{literal}}" and "{% not a tag %}" and {# not a comment #}\n'
    "{% raw %}nested{% endraw %} then {%- endraw -%} and {{ '{%' }}\n"
    "DEFAULT_DB_PATH = 'x'\n"
    "DEFAULT_DATABASE_URL: str | None = 'y'\n"
)


@pytest.mark.parametrize(
    "relative", ["adws/adw_modules/other.py", "adws/adw_modules/adw_database.py"]
)
def test_code_with_jinja_syntax_survives_templating(tmp_path: Path, relative: str) -> None:
    template = tmp_path / "t.j2"
    template.write_text(templatize(JINJA_HOSTILE, relative))
    rendered = TemplateRepository(tmp_path).render("t.j2", config=ProjectConfig())
    expected = (
        JINJA_HOSTILE.replace("'x'", '"orchestrator.db"').replace("'y'", "None")
        if "database" in relative
        else JINJA_HOSTILE
    )
    assert rendered == expected


def test_the_variable_line_must_be_found_exactly_once() -> None:
    with pytest.raises(ValueError, match="found 0"):
        templatize("nothing here\n", "adws/adw_modules/adw_database.py")


def test_undefined_variables_are_errors_not_empty_strings(tmp_path: Path) -> None:
    (tmp_path / "t.j2").write_text("path = {{ config.database.pth }}\n")
    with pytest.raises(TacBootstrapError, match="has no attribute 'pth'"):
        TemplateRepository(tmp_path).render("t.j2", config=ProjectConfig())
    with pytest.raises(TacBootstrapError, match="template not found"):
        TemplateRepository(tmp_path).render("missing.j2")


def test_sync_adds_a_new_base_module_in_one_step(tmp_path: Path) -> None:
    """What the lead does after merging a new module: run the script, nothing else."""
    base = tmp_path / "repo"
    for name in base_files(REPO_ROOT):
        (base / name).parent.mkdir(parents=True, exist_ok=True)
        (base / name).write_bytes((REPO_ROOT / name).read_bytes())
    (base / "adws/adw_modules/adw_cli.py").write_text('print(f"{{}}")\n')
    templates = tmp_path / "templates"
    (templates / "adws/schema").mkdir(parents=True)
    (templates / "adws/schema/gone.sql.j2").write_text("stale\n")
    registry = tmp_path / "scaffold_service.py"
    registry.write_text(Path(scaffold_service.__file__).read_text(encoding="utf-8"))

    result = sync_templates(base, templates, registry)

    assert "adws/adw_modules/adw_cli.py" in result.written
    assert result.removed == ["adws/schema/gone.sql"]
    assert result.registry_changed
    assert '    "adws/adw_modules/adw_cli.py",\n' in registry.read_text()
    rendered = TemplateRepository(templates).render(
        "adws/adw_modules/adw_cli.py.j2", config=ProjectConfig()
    )
    assert rendered == 'print(f"{{}}")\n'
    again = sync_templates(base, templates, registry)
    assert (again.written, again.removed, again.registry_changed) == ([], [], False)
