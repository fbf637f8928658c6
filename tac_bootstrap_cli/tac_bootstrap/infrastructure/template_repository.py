"""The Jinja2 templates (only files that take a value from ``config.yml``) and the one
environment that renders them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from tac_bootstrap.domain.errors import TacBootstrapError
from tac_bootstrap.infrastructure.template_filters import FILTERS

__all__ = ["TEMPLATES_DIR", "TEMPLATE_SUFFIX", "TemplateRepository"]

TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "templates"
TEMPLATE_SUFFIX = ".j2"


class TemplateRepository:
    """Renders templates by their path under ``templates/`` (e.g. ``adws/schema/x.sql.j2``)."""

    def __init__(self, root: Path = TEMPLATES_DIR) -> None:
        self.root = root
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(root),
            undefined=jinja2.StrictUndefined,  # a missing value is an error, never ""
            keep_trailing_newline=True,  # files end exactly as the BASE does
            autoescape=False,  # the output is code, not HTML
        )
        self._env.filters.update(FILTERS)

    def render(self, name: str, **context: Any) -> str:
        try:
            return self._env.get_template(name).render(**context)
        except jinja2.TemplateNotFound as exc:
            raise TacBootstrapError(f"template not found: {name} (under {self.root})") from exc
        except jinja2.UndefinedError as exc:
            raise TacBootstrapError(f"template {name}: {exc.message}") from exc
