"""The README's first command is `tac-bootstrap demo`, and its output is the real one."""

from __future__ import annotations

import re

from conftest import REPO_ROOT
from tac_bootstrap.interfaces.cli import app
from typer.testing import CliRunner


def normalised(text: str) -> list[str]:
    """Output with the parts that change per run (folders, session ids, agent ids, the
    tests' time) and the number of the package's files (its modules come and go) masked."""
    text = re.sub(r"/\S*demo_project", "<DIR>", text)
    text = re.sub(r"\(\d+ files\)", "(<N> files)", text)
    text = re.sub(r"^\d+ file\(s\) written", "<N> file(s) written", text, flags=re.M)
    text = re.sub(r"passed in [\d.]+s", "passed in <T>", text)
    text = re.sub(r"demo_\d{8}_\d{6}_[0-9a-f]{6}", "<SESSION>", text)
    text = re.sub(r"agent [0-9a-f]{8}", "agent <ID>", text)
    return text.splitlines()


def test_readme_shows_the_demos_real_output(runner: CliRunner) -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    first = re.search(r"```console\n(.*?)```", readme, re.S)
    assert first is not None
    command, _, shown = first.group(1).partition("\n")
    assert command == "$ uv run tac-bootstrap demo"

    result = runner.invoke(app, ["demo"])  # as the README runs it: in a folder removed after

    assert result.exit_code == 0, result.output
    assert normalised(result.stdout) == normalised(shown)
