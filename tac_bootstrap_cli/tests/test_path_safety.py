"""Nothing is written outside the output folder: '..', absolute paths, escaping symlinks."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest
from tac_bootstrap.application.scaffold_service import apply_plan, build_plan
from tac_bootstrap.domain.config import ProjectConfig
from tac_bootstrap.domain.errors import UnsafePathError
from tac_bootstrap.infrastructure.safe_paths import resolve_inside


@pytest.mark.parametrize("target", ["../evil.py", "adws/../../evil.py", "/etc/passwd", ""])
def test_spelled_escapes_are_refused(tmp_path: Path, target: str) -> None:
    with pytest.raises(UnsafePathError, match="refusing"):
        resolve_inside(tmp_path, PurePosixPath(target))


def test_a_path_inside_is_resolved(tmp_path: Path) -> None:
    assert resolve_inside(tmp_path, PurePosixPath("a/b.py")) == tmp_path.resolve() / "a" / "b.py"


def test_symlinked_folder_leading_outside_is_refused_and_nothing_written(
    tmp_path: Path, project: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (project / "adws").symlink_to(outside, target_is_directory=True)

    with pytest.raises(UnsafePathError, match="leads outside the output folder"):
        build_plan(ProjectConfig(), project)
    assert list(outside.iterdir()) == []


def test_symlinked_file_leading_outside_is_refused(tmp_path: Path, project: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("keep me\n")
    (project / ".gitignore").symlink_to(secret)

    with pytest.raises(UnsafePathError, match=r"\.gitignore: leads outside"):
        build_plan(ProjectConfig(), project)
    assert secret.read_text() == "keep me\n"


def test_symlink_inside_the_output_folder_is_followed(project: Path) -> None:
    (project / "real_adws").mkdir()
    (project / "adws").symlink_to(project / "real_adws", target_is_directory=True)

    apply_plan(build_plan(ProjectConfig(), project))

    assert (project / "real_adws" / "adw_modules" / "adw_database.py").is_file()


def test_symlink_planted_after_planning_is_refused_at_apply(tmp_path: Path, project: Path) -> None:
    plan = build_plan(ProjectConfig(), project)
    outside = tmp_path / "outside"
    outside.mkdir()
    (project / "adws").symlink_to(outside, target_is_directory=True)

    with pytest.raises(UnsafePathError):
        apply_plan(plan)
    assert list(outside.iterdir()) == []
