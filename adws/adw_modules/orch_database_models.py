"""The store's Pydantic models, under the name this project's code imports.

They live in ``orchestrator_store.models``: one row model per table of
``adws/schema/schema_orchestrator.sql`` and the create, update and query models
the store validates input with.
"""

from orchestrator_store.models import *  # noqa: F403
from orchestrator_store.models import __all__ as __all__
