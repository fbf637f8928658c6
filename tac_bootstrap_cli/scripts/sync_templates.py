"""Regenerate tac-bootstrap's templates from the BASE (this repository's adws/).

Run after changing anything under adws/adw_modules, adws/schema or adws/adw_tests:

    uv run python tac_bootstrap_cli/scripts/sync_templates.py

It rewrites the .j2 files, removes templates whose BASE file is gone and updates the list of
BASE templates in scaffold_service.py. The drift test fails until this has been run.
"""

from __future__ import annotations

from pathlib import Path

from tac_bootstrap.application import scaffold_service
from tac_bootstrap.application.template_sync import sync_templates
from tac_bootstrap.infrastructure.template_repository import TEMPLATES_DIR

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    registry_file = Path(scaffold_service.__file__)
    result = sync_templates(PROJECT_ROOT, TEMPLATES_DIR, registry_file)
    for name in result.written:
        print(f"template written  {name}")
    for name in result.removed:
        print(f"template removed  {name}")
    if result.registry_changed:
        print(f"registry updated  {registry_file.relative_to(PROJECT_ROOT)}")
    if not (result.written or result.removed or result.registry_changed):
        print("templates already match the BASE")


if __name__ == "__main__":
    main()
