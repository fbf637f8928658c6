"""A rendered project works with no manual step, as a user meets it: `uv init myapp`,
then `tac-bootstrap init` (the installed command, run from outside the project), then
the user's own script, the seed module and the rendered tests, each with `uv run`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from orchestrator_store.schema import LATEST_VERSION

CONFIGURED = "var/data/agents.db"
# A guard against a hang, never a speed check: the first `uv run` resolves and installs
# the project's environment.
HANG_GUARD = 600
UV = os.environ.get("UV") or shutil.which("uv")
TAC_BOOTSTRAP = Path(sys.executable).with_name("tac-bootstrap")

USER_SCRIPT = """\
import asyncio

from orchestrator_store import DatabaseManager


async def main() -> None:
    async with DatabaseManager("mine.db") as db:
        definition = await db.create_orchestrator_agent("writer", "Writes", "builder")
        agent = await db.create_agent(definition, "session-1")
        await db.create_agent_log(agent, "INFO", "milestone", "hello from my script")
        print((await db.get_agent_logs(agent))[0]["message"])


asyncio.run(main())
"""

pytestmark = pytest.mark.skipif(UV is None, reason="uv is not installed")


def user_env() -> dict[str, str]:
    """A user's shell: none of this repository's environment, database or test settings."""
    dropped = ("VIRTUAL_ENV", "PYTHONPATH", "COV_CORE_SOURCE", "COV_CORE_CONFIG")
    return {
        k: v
        for k, v in os.environ.items()
        if k not in dropped and not k.startswith(("ORCHESTRATOR_", "PYTEST_", "COV_CORE"))
    } | {"UV_PYTHON": sys.executable}


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        command,
        cwd=cwd,
        env=user_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=HANG_GUARD,
    )
    assert done.returncode == 0, f"{command}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def myapp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`uv init myapp`, then tac-bootstrap into it with a non-default database path."""
    assert UV is not None
    parent = tmp_path_factory.mktemp("user")
    run([UV, "init", "--no-workspace", "myapp"], parent)
    project = parent / "myapp"
    run([str(TAC_BOOTSTRAP), "init", str(project), "--db-path", CONFIGURED], parent)
    (project / "my_script.py").write_text(USER_SCRIPT, encoding="utf-8")
    return project


def test_init_adds_the_vendored_store_to_the_projects_pyproject(myapp: Path) -> None:
    pyproject = tomllib.loads((myapp / "pyproject.toml").read_text(encoding="utf-8"))
    assert "orchestrator-store[cli]" in pyproject["project"]["dependencies"]
    source = pyproject["tool"]["uv"]["sources"]["orchestrator-store"]
    assert source == {"path": "adws/vendor/orchestrator-store", "editable": True}
    assert any(r.startswith("pytest") for r in pyproject["dependency-groups"]["dev"])
    assert pyproject["project"]["name"] == "myapp"  # the user's own entries are kept
    assert (myapp / "adws/vendor/orchestrator-store/orchestrator_store/manager.py").is_file()


def test_the_users_script_imports_the_store(myapp: Path) -> None:
    assert UV is not None
    done = run([UV, "run", "my_script.py"], myapp)
    assert done.stdout.strip() == "hello from my script"


def test_the_seed_module_runs_on_the_configured_path(myapp: Path) -> None:
    assert UV is not None
    done = run([UV, "run", "adws/adw_modules/adw_database.py", "--demo"], myapp)
    lines = done.stdout.splitlines()
    assert lines[0] == f"database: {myapp.resolve() / CONFIGURED}"
    assert re.fullmatch(r"schema version: \d+", lines[1])
    assert lines[2].startswith("recorded session demo_")
    assert (myapp / CONFIGURED).is_file()


def test_the_spec_style_import_works_unchanged(myapp: Path) -> None:
    assert UV is not None
    code = (
        "import sys; sys.path.insert(0, 'adws')\n"
        "from adw_modules.adw_database import DEFAULT_DB_PATH, DatabaseManager\n"
        "from adw_modules.orch_database_models import AgentCreate\n"
        "print(DEFAULT_DB_PATH, DatabaseManager().db_path)\n"
    )
    done = run([UV, "run", "python", "-c", code], myapp)
    assert done.stdout.split() == [CONFIGURED, str(myapp.resolve() / CONFIGURED)]


def test_the_rendered_tests_pass(myapp: Path) -> None:
    assert UV is not None
    done = run([UV, "run", "pytest", "-q", "-p", "no:cacheprovider"], myapp)
    summary = done.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ passed in .*", summary), summary


def test_the_inspection_command_line_is_installed(myapp: Path) -> None:
    assert UV is not None
    run([UV, "run", "adws/adw_modules/adw_database.py"], myapp)
    done = run([UV, "run", "orchestrator-store", "--db", CONFIGURED, "stats", "--json"], myapp)
    assert f'"schema_version": {LATEST_VERSION}' in done.stdout


def test_a_second_init_is_identical(myapp: Path) -> None:
    done = run([str(TAC_BOOTSTRAP), "init", ".", "--db-path", CONFIGURED], myapp)
    assert "0 file(s) written" in done.stdout
    assert "conflict" not in done.stdout
