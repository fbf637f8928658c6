"""What tac-bootstrap generates works: it parses, imports, runs, and passes its own suite."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tac_bootstrap.application.scaffold_service import apply_plan, build_plan
from tac_bootstrap.domain.config import DatabaseConfig, ProjectConfig

CONFIGURED = "var/data/agents.db"
# Hang guards, never speed checks: the generated suite is the store's whole suite, which
# takes minutes on a loaded machine (other suites beside it on the same cores).
PROCESS_HANG_GUARD = 120
SUITE_HANG_GUARD = 1800


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project rendered with a non-default database path (the harder case)."""
    folder = tmp_path_factory.mktemp("generated")
    config = ProjectConfig(database=DatabaseConfig(path=CONFIGURED))
    apply_plan(build_plan(config, folder))
    return folder


def clean_env(generated: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORCHESTRATOR_", "PYTEST_"))}
    env["PYTHONPATH"] = str(generated / "adws" / "adw_modules")
    env.pop("COV_CORE_SOURCE", None)
    return env


def test_every_generated_python_file_parses_and_imports(generated: Path) -> None:
    sources = sorted(generated.rglob("*.py"))
    assert len(sources) >= 10
    for source in sources:
        ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
    modules = [p.stem for p in sources if "adw_modules" in p.parts]
    code = "import importlib, sys\nfor name in sys.argv[1:]: importlib.import_module(name)\n"
    done = subprocess.run(
        [sys.executable, "-c", code, *modules],
        cwd=generated,
        env=clean_env(generated),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_running_the_generated_module_uses_the_configured_path(generated: Path) -> None:
    done = subprocess.run(
        [sys.executable, "adws/adw_modules/adw_database.py"],
        cwd=generated,
        env=clean_env(generated),
        capture_output=True,
        text=True,
        check=False,
        timeout=PROCESS_HANG_GUARD,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"database: {generated.resolve() / CONFIGURED}"
    assert re.fullmatch(r"schema version: \d+", lines[1])
    assert lines[2] == "rows per table:"
    assert re.fullmatch(r"\s+agents\s+0", lines[4])
    assert (generated / CONFIGURED).is_file()


# Longer than the run's own per-test timeout (pyproject: 300 s), which would cut it short.
@pytest.mark.timeout(SUITE_HANG_GUARD + PROCESS_HANG_GUARD)
def test_the_generated_copy_passes_the_stores_own_suite(generated: Path) -> None:
    # -c /dev/null: the generated suite runs on its own, not with this repository's pytest
    # settings (coverage gate, testpaths); the two settings it needs are passed explicitly.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rfE",  # the summary names what failed: it is in the tail the assertion shows
            "-c",
            os.devnull,
            "--rootdir",
            str(generated),
            "-p",
            "no:cacheprovider",
            "-o",
            "asyncio_mode=auto",
            "-o",
            "asyncio_default_fixture_loop_scope=function",
            "adws/adw_tests",
        ],
        cwd=generated,
        env=clean_env(generated),
        capture_output=True,
        text=True,
        check=False,
        timeout=SUITE_HANG_GUARD,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert re.search(r"\d{3} passed", summary), summary
    assert "failed" not in summary and "error" not in summary
