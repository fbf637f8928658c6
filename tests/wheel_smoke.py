"""Run against an installed orchestrator-store wheel, from outside the repository:
connect, write, read. ``python wheel_smoke.py DB_FILE`` prints what it read."""

import asyncio
import json
import sys

import orchestrator_store
from orchestrator_store import AGENT_STATUSES, DatabaseManager, IntegrityError


async def main(path: str) -> None:
    async with DatabaseManager(path) as db:
        definition = await db.create_orchestrator_agent("smoke", "From the wheel", "utility")
        agent = await db.create_agent(definition, "wheel-session", context={"wheel": True})
        await db.create_agent_log(agent, "INFO", "milestone", "written from the wheel")
        try:
            await db.create_orchestrator_agent("smoke", None, "utility")
        except IntegrityError:
            refused = True
        else:
            refused = False
        row = await db.get_agent(agent)
        assert row is not None
        print(
            json.dumps(
                {
                    "module": orchestrator_store.__file__,
                    "status": row["status"],
                    "context": row["context"],
                    "logs": [log["message"] for log in await db.get_agent_logs(agent)],
                    "duplicate_refused": refused,
                    "statuses": list(AGENT_STATUSES),
                    "schema_version": await db.schema_version(),
                }
            )
        )


asyncio.run(main(sys.argv[1]))
