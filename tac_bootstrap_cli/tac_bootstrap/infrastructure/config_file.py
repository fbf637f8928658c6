"""Read and write ``config.yml``, turning every fault into one ``ConfigError``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydantic
import yaml

from tac_bootstrap.domain.config import ProjectConfig
from tac_bootstrap.domain.errors import ConfigError

__all__ = ["CONFIG_FILE_NAME", "dump_config", "load_config", "parse_config"]

CONFIG_FILE_NAME = "config.yml"

_HEADER = (
    "# tac-bootstrap settings for this project; `tac-bootstrap render` re-renders from them.\n"
)


def load_config(path: Path) -> ProjectConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), None, f"cannot read: {_reason(exc)}") from exc
    return parse_config(text, source=str(path))


def parse_config(text: str, *, source: str) -> ProjectConfig:
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(source, None, f"invalid YAML: {_yaml_reason(exc)}") from exc
    if data is None:  # an empty file is the default configuration
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, None, f"expected a mapping of sections, got {_kind(data)}")
    try:
        return ProjectConfig.model_validate(data)
    except pydantic.ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"]) or None
        if error["type"] == "extra_forbidden":
            raise ConfigError(source, key, "unknown key") from exc
        raise ConfigError(source, key, error["msg"]) from exc


def dump_config(config: ProjectConfig) -> str:
    # Unset optional values (database.url) are left out rather than written as null.
    data = config.model_dump(mode="json", exclude_none=True)
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    return _HEADER + body


def _yaml_reason(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"{exc.problem} (line {mark.line + 1}, column {mark.column + 1})"
    return str(exc).replace("\n", " ")


def _reason(exc: Exception) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def _kind(value: object) -> str:
    return "a list" if isinstance(value, list) else type(value).__name__
