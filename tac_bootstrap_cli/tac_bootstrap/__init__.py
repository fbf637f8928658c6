"""tac-bootstrap: render the orchestrator store into any project from Jinja2 templates."""

from importlib.metadata import version

__all__ = ["__version__"]

__version__ = version("tac-bootstrap")
