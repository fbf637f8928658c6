"""The built wheels work outside this repository: the store's, installed in a fresh
virtual environment, connects, writes and reads, and its command line runs;
tac-bootstrap's, installed beside it, renders the same files as this checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from tac_bootstrap.application.scaffold_service import apply_plan, build_plan
from tac_bootstrap.domain.config import ProjectConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
UV = os.environ.get("UV") or shutil.which("uv")
HANG_GUARD = 600  # seconds: building and installing, never a speed check

pytestmark = pytest.mark.skipif(UV is None, reason="uv is not installed")


def run(command: list[str], cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env = {k: v for k, v in env.items() if not k.startswith(("ORCHESTRATOR_", "COV_CORE"))}
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=HANG_GUARD
    )
    assert done.returncode == 0, f"{command}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both wheels, built from this checkout, in a new virtual environment outside it;
    the folder returned holds ``venv/`` and is the working folder of every command."""
    assert UV is not None
    outside = tmp_path_factory.mktemp("outside")
    dist = outside / "dist"
    run([UV, "build", "--out-dir", str(dist)], REPO_ROOT)  # an sdist, and a wheel built from it
    run([UV, "build", "--wheel", "--package", "tac-bootstrap", "--out-dir", str(dist)], REPO_ROOT)
    (store,) = dist.glob("orchestrator_store-*.whl")
    assert len(list(dist.glob("orchestrator_store-*.tar.gz"))) == 1
    (scaffolder,) = dist.glob("tac_bootstrap-*.whl")
    run([UV, "venv", "--python", sys.executable, str(outside / "venv")], outside)
    python = outside / "venv" / "bin" / "python"
    wheels = [f"{store}[cli,web]", str(scaffolder)]
    run([UV, "pip", "install", "--python", str(python), *wheels], outside)
    return outside


def test_the_store_wheel_connects_writes_and_reads(installed: Path) -> None:
    python = installed / "venv" / "bin" / "python"
    database = installed / "smoke.db"
    seen = json.loads(
        run([str(python), str(REPO_ROOT / "tests/wheel_smoke.py"), str(database)], installed)
    )
    assert seen["module"].startswith(str(installed / "venv"))  # not this checkout's src/
    assert seen["status"] == "initializing"
    assert seen["context"] == {"wheel": True}
    assert seen["logs"] == ["written from the wheel"]
    assert seen["duplicate_refused"] is True
    assert seen["statuses"][0] == "initializing"
    assert seen["schema_version"] >= 1

    stats = run(
        [str(installed / "venv/bin/orchestrator-store"), "--db", str(database), "stats", "--json"],
        installed,
    )
    assert json.loads(stats)["rows"]["agent_logs"] == 1


def test_the_store_wheel_serves_the_dashboard_with_its_templates_and_assets(
    installed: Path,
) -> None:
    """The templates and static files are package data: a wheel without them would start
    and then fail on the first page."""
    python = installed / "venv" / "bin" / "python"
    database = installed / "dashboard.db"
    run([str(python), str(REPO_ROOT / "tests/wheel_smoke.py"), str(database)], installed)
    command = [str(installed / "venv/bin/orchestrator-store"), "serve", "--db", str(database)]
    server = subprocess.Popen(
        [*command, "--port", "0"],
        cwd=installed,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        lines = [server.stdout.readline() for _ in range(2)]  # blocks until bound, or EOF
        url = lines[1].removeprefix("open ").strip()
        assert url.startswith("http://127.0.0.1:"), (lines, server.stderr)
        with urllib.request.urlopen(url, timeout=30) as page:
            html = page.read().decode()
        assert "<h1>Overview</h1>" in html
        with urllib.request.urlopen(url + "static/dashboard.css", timeout=30) as style:
            assert style.headers["content-type"].startswith("text/css")
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_tac_bootstrap_wheel_renders_what_this_checkout_renders(installed: Path) -> None:
    from_wheel = installed / "from_wheel"
    from_checkout = installed / "from_checkout"
    run([str(installed / "venv/bin/tac-bootstrap"), "init", str(from_wheel)], installed)
    from_checkout.mkdir()
    config_text = (from_wheel / "config.yml").read_text(encoding="utf-8")
    (from_checkout / "config.yml").write_text(config_text, encoding="utf-8")
    apply_plan(build_plan(ProjectConfig(), from_checkout))

    def files(root: Path) -> dict[str, bytes]:
        return {
            path.relative_to(root).as_posix(): path.read_bytes()
            for path in sorted(root.rglob("*"))
            if path.is_file()
        }

    wheel_files, checkout_files = files(from_wheel), files(from_checkout)
    assert sorted(wheel_files) == sorted(checkout_files)
    assert len(wheel_files) > 20
    for name, content in checkout_files.items():
        assert wheel_files[name] == content, name
