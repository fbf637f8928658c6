"""Where every file tac-bootstrap writes comes from: each has one source.

- The store's package (``orchestrator_store``) is read from the installed package,
  the same files whether that is this repository's ``src/`` (a checkout) or a wheel.
- The BASE files a project receives as they are (``adws/...``) are read from this
  repository's ``adws/`` in a checkout, or from ``tac_bootstrap/base/``, where the
  wheel build copies them from that same folder (``pyproject.toml``'s force-include).
- Files that take a value from ``config.yml`` are Jinja2 templates (``templates/``).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path, PurePosixPath

from tac_bootstrap.domain.errors import TacBootstrapError

__all__ = ["STORE_DISTRIBUTION", "STORE_PACKAGE", "StoreMetadata", "base_file", "store_files"]

STORE_DISTRIBUTION = "orchestrator-store"
STORE_PACKAGE = "orchestrator_store"

_PACKAGE_DIR = Path(__file__).resolve().parents[1]
_BUNDLED_BASE = _PACKAGE_DIR / "base"  # present in the wheel only
_CHECKOUT_ROOT = _PACKAGE_DIR.parents[1]  # tac_bootstrap_cli/tac_bootstrap -> the repository


def base_file(relative: PurePosixPath) -> bytes:
    """The BASE file at ``relative`` (e.g. ``adws/adw_modules/orch_database_models.py``)."""
    for root in (_BUNDLED_BASE, _CHECKOUT_ROOT):
        candidate = root / relative
        if candidate.is_file():
            return candidate.read_bytes()
    raise TacBootstrapError(
        f"{relative}: not found in {_BUNDLED_BASE} or {_CHECKOUT_ROOT}; "
        "reinstall tac-bootstrap from a checkout or its wheel"
    )


def store_files() -> list[tuple[PurePosixPath, bytes]]:
    """Every file of the installed store package, relative to the folder holding it
    (``orchestrator_store/...``), in path order; caches and compiled files left out.
    The package is found, not imported: rendering runs none of its code."""
    spec = find_spec(STORE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise TacBootstrapError(f"{STORE_DISTRIBUTION} is not installed beside tac-bootstrap")
    folder = Path(next(iter(spec.submodule_search_locations)))
    found = []
    for path in folder.rglob("*"):
        if "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo") or not path.is_file():
            continue
        relative = PurePosixPath(STORE_PACKAGE, path.relative_to(folder).as_posix())
        found.append((relative, path.read_bytes()))
    return sorted(found)


@dataclass(frozen=True)
class StoreMetadata:
    """What the vendored copy's ``pyproject.toml`` says, from the installed package's
    metadata (which its own ``pyproject.toml`` produced)."""

    version: str
    requires_python: str
    dependencies: tuple[str, ...]
    extras: dict[str, tuple[str, ...]]
    scripts: dict[str, str]

    @classmethod
    def installed(cls) -> StoreMetadata:
        try:
            distribution = metadata.distribution(STORE_DISTRIBUTION)
        except metadata.PackageNotFoundError as exc:
            raise TacBootstrapError(
                f"{STORE_DISTRIBUTION} is not installed beside tac-bootstrap"
            ) from exc
        dependencies: list[str] = []
        extras: dict[str, list[str]] = {
            name: [] for name in distribution.metadata.get_all("Provides-Extra") or []
        }
        for requirement in distribution.requires or []:
            spec, _, marker = requirement.partition(";")
            extra = _extra_of(marker)
            (extras.setdefault(extra, []) if extra else dependencies).append(spec.strip())
        scripts = {
            entry.name: entry.value
            for entry in distribution.entry_points
            if entry.group == "console_scripts"
        }
        return cls(
            version=distribution.version,
            requires_python=distribution.metadata["Requires-Python"] or ">=3.11",
            dependencies=tuple(dependencies),
            extras={name: tuple(items) for name, items in extras.items()},
            scripts=scripts,
        )


def _extra_of(marker: str) -> str | None:
    """``extra == "postgres"`` -> ``postgres``; the store's extras carry no other marker."""
    marker = marker.strip()
    if not marker:
        return None
    name, _, value = marker.partition("==")
    if name.strip() != "extra" or not value.strip():
        raise TacBootstrapError(f"{STORE_DISTRIBUTION}: unexpected requirement marker {marker!r}")
    return value.strip().strip("'\"")
