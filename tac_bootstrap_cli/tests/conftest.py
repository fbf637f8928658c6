"""Shared fixtures for tac-bootstrap's tests: real folders under tmp_path, no mocks."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An empty folder to scaffold into."""
    folder = tmp_path / "project"
    folder.mkdir()
    return folder
