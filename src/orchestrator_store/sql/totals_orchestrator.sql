-- Totals the reports read instead of scanning the history (schema version 3).
--
-- Derived data: every row here is a sum over the store's tables, kept by the triggers
-- below in the same transaction as the writes it sums, so it is exact whenever those
-- rows are, whoever wrote them (this store, another process, raw SQL). The store
-- applies this file after the schema file; migration 3 applies it and fills the
-- tables from the rows already there.
--
-- * Costs are whole nano-dollars (round(cost_usd * 1e9)), so sums stay exact through
--   any number of updates and deletes; reports divide by 1e9.
-- * The cost rule: an agent's cost is its own cost (agents.cost_usd: tools and other
--   non-model spend) plus its prompts' costs. An agent's own cost counts on the UTC day
--   the agent started, under no model ('' here, NULL in reports).
-- * A session's activity: first = its earliest agent start; last = the latest of its
--   agents' start and end and its prompts' creation and completion.
-- * shard is always 0 on SQLite (one writer at a time); the PostgreSQL twin spreads
--   concurrent writers over shards so that they never wait for each other's row locks.

CREATE TABLE IF NOT EXISTS session_totals (
    session_id     TEXT PRIMARY KEY NOT NULL,
    agents         INTEGER NOT NULL DEFAULT 0,
    active_agents  INTEGER NOT NULL DEFAULT 0,
    failed_agents  INTEGER NOT NULL DEFAULT 0,
    prompts        INTEGER NOT NULL DEFAULT 0,
    failed_prompts INTEGER NOT NULL DEFAULT 0,
    tokens_input   INTEGER NOT NULL DEFAULT 0,
    tokens_output  INTEGER NOT NULL DEFAULT 0,
    cost_nano      INTEGER NOT NULL DEFAULT 0,
    first_activity TEXT,
    last_activity  TEXT
);

CREATE INDEX IF NOT EXISTS idx_session_totals_last_activity
    ON session_totals (last_activity, session_id);
CREATE INDEX IF NOT EXISTS idx_session_totals_cost
    ON session_totals (cost_nano, session_id);

-- Per UTC day, model and agent definition: costs by model, agent type and day.
CREATE TABLE IF NOT EXISTS daily_costs (
    day                   TEXT NOT NULL,
    model_used            TEXT NOT NULL,
    orchestrator_agent_id TEXT NOT NULL,
    shard                 INTEGER NOT NULL DEFAULT 0,
    prompts               INTEGER NOT NULL DEFAULT 0,
    tokens_input          INTEGER NOT NULL DEFAULT 0,
    tokens_output         INTEGER NOT NULL DEFAULT 0,
    cost_nano             INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, model_used, orchestrator_agent_id, shard)
);

-- The day sums added up over all days: costs by model, agent type or in total over the
-- whole history, read at once however many days it spans. Kept from daily_costs by the
-- triggers on it below, so every writer of the day sums keeps these too.
CREATE TABLE IF NOT EXISTS model_costs (
    model_used            TEXT NOT NULL,
    orchestrator_agent_id TEXT NOT NULL,
    shard                 INTEGER NOT NULL DEFAULT 0,
    prompts               INTEGER NOT NULL DEFAULT 0,
    tokens_input          INTEGER NOT NULL DEFAULT 0,
    tokens_output         INTEGER NOT NULL DEFAULT 0,
    cost_nano             INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (model_used, orchestrator_agent_id, shard)
);

-- Per session and UTC day: costs by session since a day.
CREATE TABLE IF NOT EXISTS session_daily_costs (
    session_id    TEXT NOT NULL,
    day           TEXT NOT NULL,
    shard         INTEGER NOT NULL DEFAULT 0,
    prompts       INTEGER NOT NULL DEFAULT 0,
    tokens_input  INTEGER NOT NULL DEFAULT 0,
    tokens_output INTEGER NOT NULL DEFAULT 0,
    cost_nano     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (session_id, day, shard)
);

CREATE INDEX IF NOT EXISTS idx_session_daily_costs_day
    ON session_daily_costs (day, session_id);

CREATE TABLE IF NOT EXISTS row_counts (
    table_name TEXT NOT NULL,
    shard      INTEGER NOT NULL DEFAULT 0,
    row_count  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (table_name, shard)
);

-- --- the day sums, added up ---------------------------------------------------------------

CREATE TRIGGER IF NOT EXISTS daily_costs_insert AFTER INSERT ON daily_costs
BEGIN
    INSERT INTO model_costs (model_used, orchestrator_agent_id, shard, prompts, tokens_input,
                             tokens_output, cost_nano)
    VALUES (NEW.model_used, NEW.orchestrator_agent_id, NEW.shard, NEW.prompts,
            NEW.tokens_input, NEW.tokens_output, NEW.cost_nano)
    ON CONFLICT DO UPDATE SET
        prompts = prompts + excluded.prompts,
        tokens_input = tokens_input + excluded.tokens_input,
        tokens_output = tokens_output + excluded.tokens_output,
        cost_nano = cost_nano + excluded.cost_nano;
END;

CREATE TRIGGER IF NOT EXISTS daily_costs_update AFTER UPDATE ON daily_costs
BEGIN
    UPDATE model_costs SET
        prompts = prompts - OLD.prompts,
        tokens_input = tokens_input - OLD.tokens_input,
        tokens_output = tokens_output - OLD.tokens_output,
        cost_nano = cost_nano - OLD.cost_nano
    WHERE model_used = OLD.model_used AND orchestrator_agent_id = OLD.orchestrator_agent_id
      AND shard = OLD.shard;
    INSERT INTO model_costs (model_used, orchestrator_agent_id, shard, prompts, tokens_input,
                             tokens_output, cost_nano)
    VALUES (NEW.model_used, NEW.orchestrator_agent_id, NEW.shard, NEW.prompts,
            NEW.tokens_input, NEW.tokens_output, NEW.cost_nano)
    ON CONFLICT DO UPDATE SET
        prompts = prompts + excluded.prompts,
        tokens_input = tokens_input + excluded.tokens_input,
        tokens_output = tokens_output + excluded.tokens_output,
        cost_nano = cost_nano + excluded.cost_nano;
END;

CREATE TRIGGER IF NOT EXISTS daily_costs_delete AFTER DELETE ON daily_costs
BEGIN
    UPDATE model_costs SET
        prompts = prompts - OLD.prompts,
        tokens_input = tokens_input - OLD.tokens_input,
        tokens_output = tokens_output - OLD.tokens_output,
        cost_nano = cost_nano - OLD.cost_nano
    WHERE model_used = OLD.model_used AND orchestrator_agent_id = OLD.orchestrator_agent_id
      AND shard = OLD.shard;
END;

-- --- agents ----------------------------------------------------------------------------

CREATE TRIGGER IF NOT EXISTS agents_totals_insert AFTER INSERT ON agents
BEGIN
    INSERT INTO session_totals (session_id, agents, active_agents, failed_agents, cost_nano,
                                first_activity, last_activity)
    VALUES (NEW.session_id, 1,
            NEW.completed_at IS NULL AND NEW.status NOT IN ('completed', 'failed', 'cancelled'),
            NEW.status = 'failed', CAST(round(NEW.cost_usd * 1e9) AS INTEGER), NEW.started_at,
            max(NEW.started_at, coalesce(NEW.completed_at, NEW.started_at)))
    ON CONFLICT (session_id) DO UPDATE SET
        agents = agents + 1,
        active_agents = active_agents + excluded.active_agents,
        failed_agents = failed_agents + excluded.failed_agents,
        cost_nano = cost_nano + excluded.cost_nano,
        first_activity = min(coalesce(first_activity, excluded.first_activity),
                             excluded.first_activity),
        last_activity = max(coalesce(last_activity, excluded.last_activity),
                            excluded.last_activity);
    INSERT INTO daily_costs (day, model_used, orchestrator_agent_id, cost_nano)
    SELECT substr(NEW.started_at, 1, 10), '', NEW.orchestrator_agent_id,
           CAST(round(NEW.cost_usd * 1e9) AS INTEGER)
    WHERE NEW.cost_usd <> 0
    ON CONFLICT DO UPDATE SET cost_nano = cost_nano + excluded.cost_nano;
    INSERT INTO session_daily_costs (session_id, day, cost_nano)
    SELECT NEW.session_id, substr(NEW.started_at, 1, 10),
           CAST(round(NEW.cost_usd * 1e9) AS INTEGER)
    WHERE NEW.cost_usd <> 0
    ON CONFLICT DO UPDATE SET cost_nano = cost_nano + excluded.cost_nano;
END;

-- Status, end and own cost: the common updates, applied as differences.
CREATE TRIGGER IF NOT EXISTS agents_totals_update AFTER UPDATE OF status, completed_at, cost_usd
ON agents
WHEN OLD.session_id = NEW.session_id
 AND OLD.orchestrator_agent_id = NEW.orchestrator_agent_id
 AND OLD.started_at = NEW.started_at
BEGIN
    UPDATE session_totals SET
        active_agents = active_agents
            + (NEW.completed_at IS NULL AND NEW.status NOT IN ('completed', 'failed', 'cancelled'))
            - (OLD.completed_at IS NULL AND OLD.status NOT IN ('completed', 'failed', 'cancelled')),
        failed_agents = failed_agents + (NEW.status = 'failed') - (OLD.status = 'failed'),
        cost_nano = cost_nano + CAST(round(NEW.cost_usd * 1e9) AS INTEGER)
                              - CAST(round(OLD.cost_usd * 1e9) AS INTEGER),
        last_activity = max(last_activity,
                            max(NEW.started_at, coalesce(NEW.completed_at, NEW.started_at)))
    WHERE session_id = NEW.session_id;
    INSERT INTO daily_costs (day, model_used, orchestrator_agent_id, cost_nano)
    SELECT substr(NEW.started_at, 1, 10), '', NEW.orchestrator_agent_id,
           CAST(round(NEW.cost_usd * 1e9) AS INTEGER) - CAST(round(OLD.cost_usd * 1e9) AS INTEGER)
    WHERE NEW.cost_usd <> OLD.cost_usd
    ON CONFLICT DO UPDATE SET cost_nano = cost_nano + excluded.cost_nano;
    INSERT INTO session_daily_costs (session_id, day, cost_nano)
    SELECT NEW.session_id, substr(NEW.started_at, 1, 10),
           CAST(round(NEW.cost_usd * 1e9) AS INTEGER) - CAST(round(OLD.cost_usd * 1e9) AS INTEGER)
    WHERE NEW.cost_usd <> OLD.cost_usd
    ON CONFLICT DO UPDATE SET cost_nano = cost_nano + excluded.cost_nano;
    -- An end moved earlier may have been the session's last activity: count it again.
    UPDATE session_totals SET last_activity = (
        SELECT max(max(a.started_at, coalesce(a.completed_at, a.started_at),
                       coalesce((SELECT max(max(p.created_at, coalesce(p.completed_at, p.created_at)))
                                 FROM prompts p WHERE p.agent_id = a.id), a.started_at)))
        FROM agents a WHERE a.session_id = NEW.session_id)
    WHERE session_id = NEW.session_id
      AND max(OLD.started_at, coalesce(OLD.completed_at, OLD.started_at))
          > max(NEW.started_at, coalesce(NEW.completed_at, NEW.started_at))
      AND last_activity <= max(OLD.started_at, coalesce(OLD.completed_at, OLD.started_at));
END;

-- A change of session, definition or start (rare) moves the agent and its prompts:
-- the day and session sums get the differences, the sessions are counted again.
CREATE TRIGGER IF NOT EXISTS agents_totals_move
AFTER UPDATE OF session_id, orchestrator_agent_id, started_at ON agents
WHEN OLD.session_id <> NEW.session_id
  OR OLD.orchestrator_agent_id <> NEW.orchestrator_agent_id
  OR OLD.started_at <> NEW.started_at
BEGIN
    INSERT INTO daily_costs (day, model_used, orchestrator_agent_id, prompts, tokens_input,
                             tokens_output, cost_nano)
    SELECT day, model_used, definition, sum(prompts), sum(tokens_input), sum(tokens_output),
           sum(cost_nano)
    FROM (
        SELECT substr(p.created_at, 1, 10) AS day, coalesce(p.model_used, '') AS model_used,
               OLD.orchestrator_agent_id AS definition, -1 AS prompts,
               -p.tokens_input AS tokens_input, -p.tokens_output AS tokens_output,
               -CAST(round(p.cost_usd * 1e9) AS INTEGER) AS cost_nano
        FROM prompts p WHERE p.agent_id = NEW.id
        UNION ALL
        SELECT substr(p.created_at, 1, 10), coalesce(p.model_used, ''), NEW.orchestrator_agent_id,
               1, p.tokens_input, p.tokens_output, CAST(round(p.cost_usd * 1e9) AS INTEGER)
        FROM prompts p WHERE p.agent_id = NEW.id
        UNION ALL
        SELECT substr(OLD.started_at, 1, 10), '', OLD.orchestrator_agent_id, 0, 0, 0,
               -CAST(round(OLD.cost_usd * 1e9) AS INTEGER)
        UNION ALL
        SELECT substr(NEW.started_at, 1, 10), '', NEW.orchestrator_agent_id, 0, 0, 0,
               CAST(round(NEW.cost_usd * 1e9) AS INTEGER)
    )
    WHERE true
    GROUP BY day, model_used, definition
    ON CONFLICT DO UPDATE SET
        prompts = prompts + excluded.prompts,
        tokens_input = tokens_input + excluded.tokens_input,
        tokens_output = tokens_output + excluded.tokens_output,
        cost_nano = cost_nano + excluded.cost_nano;
    INSERT INTO session_daily_costs (session_id, day, prompts, tokens_input, tokens_output,
                                     cost_nano)
    SELECT session_id, day, sum(prompts), sum(tokens_input), sum(tokens_output), sum(cost_nano)
    FROM (
        SELECT OLD.session_id AS session_id, substr(p.created_at, 1, 10) AS day, -1 AS prompts,
               -p.tokens_input AS tokens_input, -p.tokens_output AS tokens_output,
               -CAST(round(p.cost_usd * 1e9) AS INTEGER) AS cost_nano
        FROM prompts p WHERE p.agent_id = NEW.id
        UNION ALL
        SELECT NEW.session_id, substr(p.created_at, 1, 10), 1, p.tokens_input, p.tokens_output,
               CAST(round(p.cost_usd * 1e9) AS INTEGER)
        FROM prompts p WHERE p.agent_id = NEW.id
        UNION ALL
        SELECT OLD.session_id, substr(OLD.started_at, 1, 10), 0, 0, 0,
               -CAST(round(OLD.cost_usd * 1e9) AS INTEGER)
        UNION ALL
        SELECT NEW.session_id, substr(NEW.started_at, 1, 10), 0, 0, 0,
               CAST(round(NEW.cost_usd * 1e9) AS INTEGER)
    )
    WHERE true
    GROUP BY session_id, day
    ON CONFLICT DO UPDATE SET
        prompts = prompts + excluded.prompts,
        tokens_input = tokens_input + excluded.tokens_input,
        tokens_output = tokens_output + excluded.tokens_output,
        cost_nano = cost_nano + excluded.cost_nano;
    DELETE FROM session_totals WHERE session_id IN (OLD.session_id, NEW.session_id);
    INSERT INTO session_totals (session_id, agents, active_agents, failed_agents, prompts,
                                failed_prompts, tokens_input, tokens_output, cost_nano,
                                first_activity, last_activity)
    SELECT a.session_id, count(*),
           sum(a.completed_at IS NULL AND a.status NOT IN ('completed', 'failed', 'cancelled')),
           sum(a.status = 'failed'), coalesce(sum(p.prompts), 0),
           coalesce(sum(p.failed_prompts), 0), coalesce(sum(p.tokens_input), 0),
           coalesce(sum(p.tokens_output), 0),
           sum(CAST(round(a.cost_usd * 1e9) AS INTEGER)) + coalesce(sum(p.cost_nano), 0),
           min(a.started_at),
           max(max(a.started_at, coalesce(a.completed_at, a.started_at),
                   coalesce(p.last_activity, a.started_at)))
    FROM agents a
    LEFT JOIN (
        SELECT agent_id, count(*) AS prompts, sum(status = 'failed') AS failed_prompts,
               sum(tokens_input) AS tokens_input, sum(tokens_output) AS tokens_output,
               sum(CAST(round(cost_usd * 1e9) AS INTEGER)) AS cost_nano,
               max(max(created_at, coalesce(completed_at, created_at))) AS last_activity
        FROM prompts
        WHERE agent_id IN (SELECT id FROM agents
                           WHERE session_id IN (OLD.session_id, NEW.session_id))
        GROUP BY agent_id
    ) p ON p.agent_id = a.id
    WHERE a.session_id IN (OLD.session_id, NEW.session_id)
    GROUP BY a.session_id;
END;

-- Before the row goes (its prompts go after it, by the cascade, and then find no agent):
-- the agent and all its prompts leave the sums together.
CREATE TRIGGER IF NOT EXISTS agents_totals_delete BEFORE DELETE ON agents
BEGIN
    INSERT INTO daily_costs (day, model_used, orchestrator_agent_id, prompts, tokens_input,
                             tokens_output, cost_nano)
    SELECT day, model_used, OLD.orchestrator_agent_id, sum(prompts), sum(tokens_input),
           sum(tokens_output), sum(cost_nano)
    FROM (
        SELECT substr(p.created_at, 1, 10) AS day, coalesce(p.model_used, '') AS model_used,
               -1 AS prompts, -p.tokens_input AS tokens_input,
               -p.tokens_output AS tokens_output,
               -CAST(round(p.cost_usd * 1e9) AS INTEGER) AS cost_nano
        FROM prompts p WHERE p.agent_id = OLD.id
        UNION ALL
        SELECT substr(OLD.started_at, 1, 10), '', 0, 0, 0,
               -CAST(round(OLD.cost_usd * 1e9) AS INTEGER)
    )
    WHERE true
    GROUP BY day, model_used
    ON CONFLICT DO UPDATE SET
        prompts = prompts + excluded.prompts,
        tokens_input = tokens_input + excluded.tokens_input,
        tokens_output = tokens_output + excluded.tokens_output,
        cost_nano = cost_nano + excluded.cost_nano;
    INSERT INTO session_daily_costs (session_id, day, prompts, tokens_input, tokens_output,
                                     cost_nano)
    SELECT OLD.session_id, day, sum(prompts), sum(tokens_input), sum(tokens_output),
           sum(cost_nano)
    FROM (
        SELECT substr(p.created_at, 1, 10) AS day, -1 AS prompts,
               -p.tokens_input AS tokens_input, -p.tokens_output AS tokens_output,
               -CAST(round(p.cost_usd * 1e9) AS INTEGER) AS cost_nano
        FROM prompts p WHERE p.agent_id = OLD.id
        UNION ALL
        SELECT substr(OLD.started_at, 1, 10), 0, 0, 0, -CAST(round(OLD.cost_usd * 1e9) AS INTEGER)
    )
    WHERE true
    GROUP BY day
    ON CONFLICT DO UPDATE SET
        prompts = prompts + excluded.prompts,
        tokens_input = tokens_input + excluded.tokens_input,
        tokens_output = tokens_output + excluded.tokens_output,
        cost_nano = cost_nano + excluded.cost_nano;
    UPDATE session_totals SET
        agents = agents - 1,
        active_agents = active_agents
            - (OLD.completed_at IS NULL AND OLD.status NOT IN ('completed', 'failed', 'cancelled')),
        failed_agents = failed_agents - (OLD.status = 'failed'),
        prompts = prompts - (SELECT count(*) FROM prompts WHERE agent_id = OLD.id),
        failed_prompts = failed_prompts
            - (SELECT count(*) FROM prompts WHERE agent_id = OLD.id AND status = 'failed'),
        tokens_input = tokens_input
            - (SELECT coalesce(sum(tokens_input), 0) FROM prompts WHERE agent_id = OLD.id),
        tokens_output = tokens_output
            - (SELECT coalesce(sum(tokens_output), 0) FROM prompts WHERE agent_id = OLD.id),
        cost_nano = cost_nano - CAST(round(OLD.cost_usd * 1e9) AS INTEGER)
            - (SELECT coalesce(sum(CAST(round(cost_usd * 1e9) AS INTEGER)), 0)
               FROM prompts WHERE agent_id = OLD.id),
        first_activity = (SELECT min(started_at) FROM agents
                          WHERE session_id = OLD.session_id AND id <> OLD.id),
        last_activity = (
            SELECT max(max(a.started_at, coalesce(a.completed_at, a.started_at),
                           coalesce((SELECT max(max(p.created_at,
                                                    coalesce(p.completed_at, p.created_at)))
                                     FROM prompts p WHERE p.agent_id = a.id), a.started_at)))
            FROM agents a WHERE a.session_id = OLD.session_id AND a.id <> OLD.id)
    WHERE session_id = OLD.session_id;
    DELETE FROM session_totals WHERE session_id = OLD.session_id AND agents = 0;
END;

-- --- prompts ---------------------------------------------------------------------------

CREATE TRIGGER IF NOT EXISTS prompts_totals_insert AFTER INSERT ON prompts
BEGIN
    UPDATE session_totals SET
        prompts = prompts + 1,
        failed_prompts = failed_prompts + (NEW.status = 'failed'),
        tokens_input = tokens_input + NEW.tokens_input,
        tokens_output = tokens_output + NEW.tokens_output,
        cost_nano = cost_nano + CAST(round(NEW.cost_usd * 1e9) AS INTEGER),
        last_activity = max(last_activity,
                            max(NEW.created_at, coalesce(NEW.completed_at, NEW.created_at)))
    WHERE session_id = (SELECT session_id FROM agents WHERE id = NEW.agent_id);
    INSERT INTO daily_costs (day, model_used, orchestrator_agent_id, prompts, tokens_input,
                             tokens_output, cost_nano)
    SELECT substr(NEW.created_at, 1, 10), coalesce(NEW.model_used, ''), a.orchestrator_agent_id,
           1, NEW.tokens_input, NEW.tokens_output, CAST(round(NEW.cost_usd * 1e9) AS INTEGER)
    FROM agents a WHERE a.id = NEW.agent_id
    ON CONFLICT DO UPDATE SET
        prompts = prompts + excluded.prompts,
        tokens_input = tokens_input + excluded.tokens_input,
        tokens_output = tokens_output + excluded.tokens_output,
        cost_nano = cost_nano + excluded.cost_nano;
    INSERT INTO session_daily_costs (session_id, day, prompts, tokens_input, tokens_output,
                                     cost_nano)
    SELECT a.session_id, substr(NEW.created_at, 1, 10), 1, NEW.tokens_input, NEW.tokens_output,
           CAST(round(NEW.cost_usd * 1e9) AS INTEGER)
    FROM agents a WHERE a.id = NEW.agent_id
    ON CONFLICT DO UPDATE SET
        prompts = prompts + excluded.prompts,
        tokens_input = tokens_input + excluded.tokens_input,
        tokens_output = tokens_output + excluded.tokens_output,
        cost_nano = cost_nano + excluded.cost_nano;
END;

CREATE TRIGGER IF NOT EXISTS prompts_totals_update
AFTER UPDATE OF agent_id, status, model_used, tokens_input, tokens_output, cost_usd, created_at,
                completed_at
ON prompts
BEGIN
    UPDATE session_totals SET
        prompts = prompts - 1,
        failed_prompts = failed_prompts - (OLD.status = 'failed'),
        tokens_input = tokens_input - OLD.tokens_input,
        tokens_output = tokens_output - OLD.tokens_output,
        cost_nano = cost_nano - CAST(round(OLD.cost_usd * 1e9) AS INTEGER)
    WHERE session_id = (SELECT session_id FROM agents WHERE id = OLD.agent_id);
    UPDATE session_totals SET
        prompts = prompts + 1,
        failed_prompts = failed_prompts + (NEW.status = 'failed'),
        tokens_input = tokens_input + NEW.tokens_input,
        tokens_output = tokens_output + NEW.tokens_output,
        cost_nano = cost_nano + CAST(round(NEW.cost_usd * 1e9) AS INTEGER),
        last_activity = max(last_activity,
                            max(NEW.created_at, coalesce(NEW.completed_at, NEW.created_at)))
    WHERE session_id = (SELECT session_id FROM agents WHERE id = NEW.agent_id);
    INSERT INTO daily_costs (day, model_used, orchestrator_agent_id, prompts, tokens_input,
                             tokens_output, cost_nano)
    SELECT day, model_used, definition, sum(prompts), sum(tokens_input), sum(tokens_output),
           sum(cost_nano)
    FROM (
        SELECT substr(OLD.created_at, 1, 10) AS day, coalesce(OLD.model_used, '') AS model_used,
               a.orchestrator_agent_id AS definition, -1 AS prompts,
               -OLD.tokens_input AS tokens_input, -OLD.tokens_output AS tokens_output,
               -CAST(round(OLD.cost_usd * 1e9) AS INTEGER) AS cost_nano
        FROM agents a WHERE a.id = OLD.agent_id
        UNION ALL
        SELECT substr(NEW.created_at, 1, 10), coalesce(NEW.model_used, ''),
               a.orchestrator_agent_id, 1, NEW.tokens_input, NEW.tokens_output,
               CAST(round(NEW.cost_usd * 1e9) AS INTEGER)
        FROM agents a WHERE a.id = NEW.agent_id
    )
    WHERE true
    GROUP BY day, model_used, definition
    ON CONFLICT DO UPDATE SET
        prompts = prompts + excluded.prompts,
        tokens_input = tokens_input + excluded.tokens_input,
        tokens_output = tokens_output + excluded.tokens_output,
        cost_nano = cost_nano + excluded.cost_nano;
    INSERT INTO session_daily_costs (session_id, day, prompts, tokens_input, tokens_output,
                                     cost_nano)
    SELECT session_id, day, sum(prompts), sum(tokens_input), sum(tokens_output), sum(cost_nano)
    FROM (
        SELECT a.session_id AS session_id, substr(OLD.created_at, 1, 10) AS day, -1 AS prompts,
               -OLD.tokens_input AS tokens_input, -OLD.tokens_output AS tokens_output,
               -CAST(round(OLD.cost_usd * 1e9) AS INTEGER) AS cost_nano
        FROM agents a WHERE a.id = OLD.agent_id
        UNION ALL
        SELECT a.session_id, substr(NEW.created_at, 1, 10), 1, NEW.tokens_input,
               NEW.tokens_output, CAST(round(NEW.cost_usd * 1e9) AS INTEGER)
        FROM agents a WHERE a.id = NEW.agent_id
    )
    WHERE true
    GROUP BY session_id, day
    ON CONFLICT DO UPDATE SET
        prompts = prompts + excluded.prompts,
        tokens_input = tokens_input + excluded.tokens_input,
        tokens_output = tokens_output + excluded.tokens_output,
        cost_nano = cost_nano + excluded.cost_nano;
    -- Times moved earlier, or a prompt moved to another agent: count the last activity again.
    UPDATE session_totals SET last_activity = (
        SELECT max(max(a.started_at, coalesce(a.completed_at, a.started_at),
                       coalesce((SELECT max(max(p.created_at, coalesce(p.completed_at, p.created_at)))
                                 FROM prompts p WHERE p.agent_id = a.id), a.started_at)))
        FROM agents a WHERE a.session_id = session_totals.session_id)
    WHERE session_id = (SELECT session_id FROM agents WHERE id = OLD.agent_id)
      AND (OLD.agent_id <> NEW.agent_id
           OR max(OLD.created_at, coalesce(OLD.completed_at, OLD.created_at))
              > max(NEW.created_at, coalesce(NEW.completed_at, NEW.created_at)))
      AND last_activity <= max(OLD.created_at, coalesce(OLD.completed_at, OLD.created_at));
END;

-- A prompt deleted on its own; deleted with its agent, the agent's trigger has counted it.
CREATE TRIGGER IF NOT EXISTS prompts_totals_delete AFTER DELETE ON prompts
WHEN EXISTS (SELECT 1 FROM agents WHERE id = OLD.agent_id)
BEGIN
    UPDATE session_totals SET
        prompts = prompts - 1,
        failed_prompts = failed_prompts - (OLD.status = 'failed'),
        tokens_input = tokens_input - OLD.tokens_input,
        tokens_output = tokens_output - OLD.tokens_output,
        cost_nano = cost_nano - CAST(round(OLD.cost_usd * 1e9) AS INTEGER)
    WHERE session_id = (SELECT session_id FROM agents WHERE id = OLD.agent_id);
    UPDATE daily_costs SET
        prompts = prompts - 1,
        tokens_input = tokens_input - OLD.tokens_input,
        tokens_output = tokens_output - OLD.tokens_output,
        cost_nano = cost_nano - CAST(round(OLD.cost_usd * 1e9) AS INTEGER)
    WHERE day = substr(OLD.created_at, 1, 10) AND model_used = coalesce(OLD.model_used, '')
      AND orchestrator_agent_id = (SELECT orchestrator_agent_id FROM agents WHERE id = OLD.agent_id)
      AND shard = 0;
    UPDATE session_daily_costs SET
        prompts = prompts - 1,
        tokens_input = tokens_input - OLD.tokens_input,
        tokens_output = tokens_output - OLD.tokens_output,
        cost_nano = cost_nano - CAST(round(OLD.cost_usd * 1e9) AS INTEGER)
    WHERE session_id = (SELECT session_id FROM agents WHERE id = OLD.agent_id)
      AND day = substr(OLD.created_at, 1, 10) AND shard = 0;
    UPDATE session_totals SET last_activity = (
        SELECT max(max(a.started_at, coalesce(a.completed_at, a.started_at),
                       coalesce((SELECT max(max(p.created_at, coalesce(p.completed_at, p.created_at)))
                                 FROM prompts p WHERE p.agent_id = a.id), a.started_at)))
        FROM agents a WHERE a.session_id = session_totals.session_id)
    WHERE session_id = (SELECT session_id FROM agents WHERE id = OLD.agent_id)
      AND last_activity <= max(OLD.created_at, coalesce(OLD.completed_at, OLD.created_at));
END;

-- --- rows per table (the stats) -----------------------------------------------------------
-- One pair per table of the schema; tests/test_totals.py checks that none is missing.

CREATE TRIGGER IF NOT EXISTS orchestrator_agents_count_insert AFTER INSERT ON orchestrator_agents
BEGIN
    INSERT INTO row_counts (table_name, row_count) VALUES ('orchestrator_agents', 1)
    ON CONFLICT DO UPDATE SET row_count = row_count + 1;
END;

CREATE TRIGGER IF NOT EXISTS orchestrator_agents_count_delete AFTER DELETE ON orchestrator_agents
BEGIN
    UPDATE row_counts SET row_count = row_count - 1 WHERE table_name = 'orchestrator_agents' AND shard = 0;
END;

CREATE TRIGGER IF NOT EXISTS agents_count_insert AFTER INSERT ON agents
BEGIN
    INSERT INTO row_counts (table_name, row_count) VALUES ('agents', 1)
    ON CONFLICT DO UPDATE SET row_count = row_count + 1;
END;

CREATE TRIGGER IF NOT EXISTS agents_count_delete AFTER DELETE ON agents
BEGIN
    UPDATE row_counts SET row_count = row_count - 1 WHERE table_name = 'agents' AND shard = 0;
END;

CREATE TRIGGER IF NOT EXISTS prompts_count_insert AFTER INSERT ON prompts
BEGIN
    INSERT INTO row_counts (table_name, row_count) VALUES ('prompts', 1)
    ON CONFLICT DO UPDATE SET row_count = row_count + 1;
END;

CREATE TRIGGER IF NOT EXISTS prompts_count_delete AFTER DELETE ON prompts
BEGIN
    UPDATE row_counts SET row_count = row_count - 1 WHERE table_name = 'prompts' AND shard = 0;
END;

CREATE TRIGGER IF NOT EXISTS agent_logs_count_insert AFTER INSERT ON agent_logs
BEGIN
    INSERT INTO row_counts (table_name, row_count) VALUES ('agent_logs', 1)
    ON CONFLICT DO UPDATE SET row_count = row_count + 1;
END;

CREATE TRIGGER IF NOT EXISTS agent_logs_count_delete AFTER DELETE ON agent_logs
BEGIN
    UPDATE row_counts SET row_count = row_count - 1 WHERE table_name = 'agent_logs' AND shard = 0;
END;

CREATE TRIGGER IF NOT EXISTS system_logs_count_insert AFTER INSERT ON system_logs
BEGIN
    INSERT INTO row_counts (table_name, row_count) VALUES ('system_logs', 1)
    ON CONFLICT DO UPDATE SET row_count = row_count + 1;
END;

CREATE TRIGGER IF NOT EXISTS system_logs_count_delete AFTER DELETE ON system_logs
BEGIN
    UPDATE row_counts SET row_count = row_count - 1 WHERE table_name = 'system_logs' AND shard = 0;
END;

CREATE TRIGGER IF NOT EXISTS orchestrator_chat_count_insert AFTER INSERT ON orchestrator_chat
BEGIN
    INSERT INTO row_counts (table_name, row_count) VALUES ('orchestrator_chat', 1)
    ON CONFLICT DO UPDATE SET row_count = row_count + 1;
END;

CREATE TRIGGER IF NOT EXISTS orchestrator_chat_count_delete AFTER DELETE ON orchestrator_chat
BEGIN
    UPDATE row_counts SET row_count = row_count - 1 WHERE table_name = 'orchestrator_chat' AND shard = 0;
END;

CREATE TRIGGER IF NOT EXISTS ai_developer_workflows_count_insert AFTER INSERT ON ai_developer_workflows
BEGIN
    INSERT INTO row_counts (table_name, row_count) VALUES ('ai_developer_workflows', 1)
    ON CONFLICT DO UPDATE SET row_count = row_count + 1;
END;

CREATE TRIGGER IF NOT EXISTS ai_developer_workflows_count_delete AFTER DELETE ON ai_developer_workflows
BEGIN
    UPDATE row_counts SET row_count = row_count - 1 WHERE table_name = 'ai_developer_workflows' AND shard = 0;
END;
