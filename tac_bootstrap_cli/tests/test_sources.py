"""One source for every file: rendering with the default config gives back the BASE
(this repository's adws/) and the store's package byte for byte, and only files that
take a value from config.yml are templates."""

from __future__ import annotations

import ast
import difflib
import subprocess
import tomllib
from pathlib import Path, PurePosixPath

import pytest
from conftest import REPO_ROOT
from tac_bootstrap.application.scaffold_service import (
    PYPROJECT,
    VENDOR_DIR,
    RenderedFile,
    WriteMode,
    render_files,
)
from tac_bootstrap.domain.config import DatabaseConfig, ProjectConfig
from tac_bootstrap.domain.errors import TacBootstrapError
from tac_bootstrap.infrastructure.template_filters import (
    gitignore_path,
    python_string,
    toml_string,
)
from tac_bootstrap.infrastructure.template_repository import TEMPLATES_DIR, TemplateRepository

STORE_SOURCE = REPO_ROOT / "src"


def tracked(folder: str) -> set[str]:
    """The files git tracks under ``folder`` (what a fresh clone holds)."""
    listed = subprocess.run(
        ["git", "ls-files", folder], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    return set(listed.stdout.split())


def source_of(rendered: RenderedFile) -> Path:
    """Where the file's one source is in this repository."""
    if rendered.group == VENDOR_DIR and rendered.target.name != "pyproject.toml":
        return STORE_SOURCE / rendered.target.relative_to(VENDOR_DIR)
    return REPO_ROOT / rendered.target


WHOLE_FILES = [
    rendered
    for rendered in render_files(ProjectConfig())
    if rendered.mode is WriteMode.WHOLE_FILE and rendered.target.name != "pyproject.toml"
]


@pytest.mark.parametrize("rendered", WHOLE_FILES, ids=lambda r: str(r.target))
def test_default_rendering_is_the_source_byte_for_byte(rendered: RenderedFile) -> None:
    assert rendered.content == source_of(rendered).read_bytes()


def test_every_base_file_and_every_store_file_is_rendered() -> None:
    """A file added to adws/ or to the package cannot be forgotten by the scaffolder."""
    targets = {str(rendered.target) for rendered in WHOLE_FILES}
    assert tracked("adws") <= targets
    store = {
        str(VENDOR_DIR / Path(name).relative_to("src"))
        for name in tracked("src/orchestrator_store")
    }
    vendored = {t for t in targets if t.startswith(str(VENDOR_DIR) + "/")}
    assert vendored == store


def test_the_spec_schema_file_is_the_packages_own() -> None:
    schema = REPO_ROOT / "adws/schema/schema_orchestrator.sql"
    assert schema.is_symlink()  # one source: the package's, not a second copy
    assert schema.resolve() == STORE_SOURCE / "orchestrator_store/sql/schema_orchestrator.sql"


def test_only_files_that_take_a_value_are_templates() -> None:
    templates = sorted(
        path.relative_to(TEMPLATES_DIR).as_posix()
        for path in TEMPLATES_DIR.rglob("*")
        if path.is_file()
    )
    assert templates == [
        ".gitignore.j2",
        "adws/adw_modules/adw_database.py.j2",
        "adws/vendor/orchestrator-store/pyproject.toml.j2",
    ]
    for name in templates:
        assert "{{" in (TEMPLATES_DIR / name).read_text(encoding="utf-8"), name


def test_the_vendored_pyproject_says_what_the_packages_own_says() -> None:
    (vendored,) = [r for r in render_files(ProjectConfig()) if r.target == VENDOR_DIR / PYPROJECT]
    ours = tomllib.loads(vendored.content.decode())["project"]
    source = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for key in ("name", "version", "requires-python", "scripts"):
        assert ours[key] == source[key], key
    assert sorted(ours["dependencies"]) == sorted(source["dependencies"])
    assert {name: sorted(items) for name, items in ours["optional-dependencies"].items()} == {
        name: sorted(items) for name, items in source["optional-dependencies"].items()
    }


def rendered_texts(config: ProjectConfig) -> list[tuple[PurePosixPath, str]]:
    return [(r.target, r.content.decode()) for r in render_files(config)]


def test_another_path_changes_only_the_default_path_line() -> None:
    tricky = 'data/it\'s "here"\\x.db'
    base = ProjectConfig()
    other = ProjectConfig(database=DatabaseConfig(path=tricky))
    changed = {}
    for (target, default_text), (_, other_text) in zip(
        rendered_texts(base), rendered_texts(other), strict=True
    ):
        if default_text != other_text:
            diff = [
                line
                for line in difflib.unified_diff(
                    default_text.splitlines(), other_text.splitlines(), lineterm="", n=0
                )
                if line[:1] in "+-" and line[:3] not in ("+++", "---")
            ]
            changed[str(target)] = diff
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
        str(target): (default_text, other_text)
        for (target, default_text), (_, other_text) in zip(
            rendered_texts(base), rendered_texts(other), strict=True
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


@pytest.mark.parametrize("value", ["0.2.0", 'say "hi"', "back\\slash", "émoji 🗄", "tab\there"])
def test_toml_string_is_a_toml_string_of_the_same_value(value: str) -> None:
    assert tomllib.loads(f"key = {toml_string(value)}")["key"] == value


def test_gitignore_path_matches_exactly_that_file() -> None:
    assert gitignore_path("orchestrator.db") == "/orchestrator.db"
    assert gitignore_path("data/*[1]?.db") == "/data/\\*\\[1\\]\\?.db"
    assert gitignore_path("#notes!.db ") == "/\\#notes\\!.db\\ "


def test_undefined_variables_are_errors_not_empty_strings(tmp_path: Path) -> None:
    (tmp_path / "t.j2").write_text("path = {{ config.database.pth }}\n")
    with pytest.raises(TacBootstrapError, match="has no attribute 'pth'"):
        TemplateRepository(tmp_path).render("t.j2", config=ProjectConfig())
    with pytest.raises(TacBootstrapError, match="template not found"):
        TemplateRepository(tmp_path).render("missing.j2")
