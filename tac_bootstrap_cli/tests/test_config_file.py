"""config.yml: defaults, and one clear message naming the file and key for every fault."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tac_bootstrap.domain.config import DEFAULT_DB_PATH, ProjectConfig
from tac_bootstrap.domain.errors import ConfigError
from tac_bootstrap.infrastructure.config_file import dump_config, load_config, parse_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("text", ["", "# only a comment\n", "database: {}\n"])
def test_missing_sections_and_values_take_the_defaults(tmp_path: Path, text: str) -> None:
    assert load_config(write(tmp_path, text)).database.path == DEFAULT_DB_PATH


def test_an_empty_section_is_null_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config\.yml: database: Input should be"):
        load_config(write(tmp_path, "database:\n"))


def test_a_configured_path_is_read(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "database:\n  path: data/agents.db\n"))
    assert config.database.path == "data/agents.db"


def test_dump_then_load_round_trips(tmp_path: Path) -> None:
    config = ProjectConfig.model_validate({"database": {"path": "a 'quoted' \"path\".db"}})
    assert load_config(write(tmp_path, dump_config(config))) == config


def test_unknown_top_level_key_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "databse:\n  path: x.db\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: databse: unknown key"
    assert caught.value.key == "databse"


def test_unknown_nested_key_is_named_with_its_section(tmp_path: Path) -> None:
    path = write(tmp_path, "database:\n  pth: x.db\n")
    with pytest.raises(ConfigError, match=r"config\.yml: database\.pth: unknown key$"):
        load_config(path)


def test_wrong_type_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, "database:\n  path: [a, b]\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.key == "database.path"
    assert str(caught.value).startswith(f"{path}: database.path: Input should be a valid string")


def test_yaml_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "database:\n  path: [unclosed\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: invalid YAML: ")
    assert "line " in message
    assert "\n" not in message


def test_a_list_is_not_a_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected a mapping of sections, got a list"):
        load_config(write(tmp_path, "- database\n"))


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read: No such file"):
        load_config(tmp_path / "missing.yml")
    (tmp_path / "binary.yml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "binary.yml")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "must not be empty"),
        ("/etc/orchestrator.db", "not absolute"),
        ("C:\\data\\orchestrator.db", "not absolute"),
        ("../outside.db", "no '..'"),
        ("data/../../outside.db", "no '..'"),
        ("data\\..\\..\\outside.db", "no '..'"),
        ("data/", "must name a file"),
        ("line\nbreak.db", "control characters"),
        ("\ud800.db", "U\\+D800 is a lone surrogate"),
        ("nul\0.db", "control characters \\(U\\+0000\\)"),
        (".", "must name a file"),
        ("data/.", "must name a file"),
    ],
)
def test_database_path_must_stay_inside_the_project(value: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=rf"database\.path: Value error, .*{reason}"):
        parse_config(f"database:\n  path: {json.dumps(value)}\n", source="config.yml")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("sqlite:///\ud800.db", "U\\+D800 is a lone surrogate"),
        ("postgresql://h/db\0", "control characters"),
        ("sqlite:///data/..", "must name a file"),
    ],
)
def test_database_url_must_be_usable(value: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=rf"database\.url: Value error, .*{reason}"):
        parse_config(f"database:\n  url: {json.dumps(value)}\n", source="config.yml")
