-- Totals the reports read instead of scanning the history (schema version 3): the
-- PostgreSQL twin of totals_orchestrator.sql, whose header gives the rules (costs in
-- whole nano-dollars, an agent's own cost on its start day under no model, a session's
-- first and last activity).
--
-- Costs are NUMERIC here: whole nano-dollars, summed without overflow (a BIGINT would
-- overflow past $9.2e9).
--
-- Locks. Concurrent writers must not queue behind each other's row locks on a shared
-- sum, nor hold one while they wait for a row another writer holds (a deadlock): so the
-- day, session-day and row-count sums are kept per server process (shard =
-- pg_backend_pid(), a row no other transaction writes at the same time) and readers add
-- the shards up. A session's row is shared by the writers of that session; every trigger
-- locks the agent row first and the session's row after it, in that one order (a
-- prompt's trigger takes its agent's row lock before the session's), so that writers of
-- one agent never wait for each other in a cycle.

CREATE TABLE IF NOT EXISTS session_totals (
    session_id     TEXT PRIMARY KEY,
    agents         BIGINT NOT NULL DEFAULT 0,
    active_agents  BIGINT NOT NULL DEFAULT 0,
    failed_agents  BIGINT NOT NULL DEFAULT 0,
    prompts        BIGINT NOT NULL DEFAULT 0,
    failed_prompts BIGINT NOT NULL DEFAULT 0,
    tokens_input   BIGINT NOT NULL DEFAULT 0,
    tokens_output  BIGINT NOT NULL DEFAULT 0,
    cost_nano      NUMERIC NOT NULL DEFAULT 0,
    first_activity TIMESTAMPTZ,
    last_activity  TIMESTAMPTZ
);

CREATE INDEX IF NOT EXISTS idx_session_totals_last_activity
    ON session_totals (last_activity, session_id);
CREATE INDEX IF NOT EXISTS idx_session_totals_cost
    ON session_totals (cost_nano, session_id);

CREATE TABLE IF NOT EXISTS daily_costs (
    day                   TEXT NOT NULL,
    model_used            TEXT NOT NULL,
    orchestrator_agent_id UUID NOT NULL,
    shard                 INTEGER NOT NULL DEFAULT 0,
    prompts               BIGINT NOT NULL DEFAULT 0,
    tokens_input          BIGINT NOT NULL DEFAULT 0,
    tokens_output         BIGINT NOT NULL DEFAULT 0,
    cost_nano             NUMERIC NOT NULL DEFAULT 0,
    PRIMARY KEY (day, model_used, orchestrator_agent_id, shard)
);

CREATE TABLE IF NOT EXISTS model_costs (
    model_used            TEXT NOT NULL,
    orchestrator_agent_id UUID NOT NULL,
    shard                 INTEGER NOT NULL DEFAULT 0,
    prompts               BIGINT NOT NULL DEFAULT 0,
    tokens_input          BIGINT NOT NULL DEFAULT 0,
    tokens_output         BIGINT NOT NULL DEFAULT 0,
    cost_nano             NUMERIC NOT NULL DEFAULT 0,
    PRIMARY KEY (model_used, orchestrator_agent_id, shard)
);

CREATE TABLE IF NOT EXISTS session_daily_costs (
    session_id    TEXT NOT NULL,
    day           TEXT NOT NULL,
    shard         INTEGER NOT NULL DEFAULT 0,
    prompts       BIGINT NOT NULL DEFAULT 0,
    tokens_input  BIGINT NOT NULL DEFAULT 0,
    tokens_output BIGINT NOT NULL DEFAULT 0,
    cost_nano     NUMERIC NOT NULL DEFAULT 0,
    PRIMARY KEY (session_id, day, shard)
);

CREATE INDEX IF NOT EXISTS idx_session_daily_costs_day
    ON session_daily_costs (day, session_id);

CREATE TABLE IF NOT EXISTS row_counts (
    table_name TEXT NOT NULL,
    shard      INTEGER NOT NULL DEFAULT 0,
    row_count  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (table_name, shard)
);

-- --- helpers ----------------------------------------------------------------------------

-- Half away from zero, as SQLite's round().
CREATE OR REPLACE FUNCTION adw_nano(cost DOUBLE PRECISION) RETURNS BIGINT
LANGUAGE sql IMMUTABLE AS $$ SELECT round((cost * 1e9::float8)::numeric)::bigint $$;

CREATE OR REPLACE FUNCTION adw_day(moment TIMESTAMPTZ) RETURNS TEXT
LANGUAGE sql IMMUTABLE AS $$ SELECT to_char(moment AT TIME ZONE 'UTC', 'YYYY-MM-DD') $$;

CREATE OR REPLACE FUNCTION adw_shard() RETURNS INTEGER
LANGUAGE sql VOLATILE AS $$ SELECT pg_backend_pid() $$;

CREATE OR REPLACE FUNCTION adw_is_active(status TEXT, completed_at TIMESTAMPTZ) RETURNS INTEGER
LANGUAGE sql IMMUTABLE AS $$
    SELECT (completed_at IS NULL AND status NOT IN ('completed', 'failed', 'cancelled'))::int
$$;

-- Adds (sign 1) or takes away (sign -1) amounts on a day and a session's day.
CREATE OR REPLACE FUNCTION adw_add_costs(
    v_session TEXT, v_definition UUID, v_day TEXT, v_model TEXT, v_prompts BIGINT,
    v_tokens_input BIGINT, v_tokens_output BIGINT, v_cost NUMERIC
) RETURNS void LANGUAGE sql AS $$
    INSERT INTO daily_costs AS d (day, model_used, orchestrator_agent_id, shard, prompts,
                                  tokens_input, tokens_output, cost_nano)
    VALUES (v_day, v_model, v_definition, adw_shard(), v_prompts, v_tokens_input,
            v_tokens_output, v_cost)
    ON CONFLICT (day, model_used, orchestrator_agent_id, shard) DO UPDATE SET
        prompts = d.prompts + excluded.prompts,
        tokens_input = d.tokens_input + excluded.tokens_input,
        tokens_output = d.tokens_output + excluded.tokens_output,
        cost_nano = d.cost_nano + excluded.cost_nano;
    INSERT INTO session_daily_costs AS s (session_id, day, shard, prompts, tokens_input,
                                          tokens_output, cost_nano)
    VALUES (v_session, v_day, adw_shard(), v_prompts, v_tokens_input, v_tokens_output, v_cost)
    ON CONFLICT (session_id, day, shard) DO UPDATE SET
        prompts = s.prompts + excluded.prompts,
        tokens_input = s.tokens_input + excluded.tokens_input,
        tokens_output = s.tokens_output + excluded.tokens_output,
        cost_nano = s.cost_nano + excluded.cost_nano;
$$;

-- One agent's prompts, counted (sign 1) or taken away (sign -1) under a session and definition.
CREATE OR REPLACE FUNCTION adw_add_agent_prompts(
    v_agent UUID, v_session TEXT, v_definition UUID, v_sign INTEGER
) RETURNS void LANGUAGE sql AS $$
    SELECT adw_add_costs(v_session, v_definition, day, model, v_sign * count(*),
                         (v_sign * sum(tokens_input))::bigint,
                         (v_sign * sum(tokens_output))::bigint,
                         v_sign * sum(adw_nano(cost_usd)))
    FROM (SELECT adw_day(created_at) AS day, coalesce(model_used, '') AS model, tokens_input,
                 tokens_output, cost_usd
          FROM prompts WHERE agent_id = v_agent) p
    GROUP BY day, model;
$$;

-- A session's first and last activity counted again, leaving out one agent (or none).
CREATE OR REPLACE FUNCTION adw_session_bounds(v_session TEXT, v_without UUID) RETURNS void
LANGUAGE sql AS $$
    UPDATE session_totals SET
        first_activity = (SELECT min(started_at) FROM agents
                          WHERE session_id = v_session AND id IS DISTINCT FROM v_without),
        last_activity = (
            SELECT max(greatest(a.started_at, a.completed_at,
                                (SELECT max(greatest(p.created_at, p.completed_at))
                                 FROM prompts p WHERE p.agent_id = a.id)))
            FROM agents a WHERE a.session_id = v_session AND a.id IS DISTINCT FROM v_without)
    WHERE session_id = v_session;
$$;

-- Sessions' rows counted again from their agents and prompts (all sessions when NULL).
CREATE OR REPLACE FUNCTION adw_recount_sessions(v_sessions TEXT[]) RETURNS void
LANGUAGE sql AS $$
    DELETE FROM session_totals WHERE v_sessions IS NULL OR session_id = ANY (v_sessions);
    INSERT INTO session_totals (session_id, agents, active_agents, failed_agents, prompts,
                                failed_prompts, tokens_input, tokens_output, cost_nano,
                                first_activity, last_activity)
    SELECT a.session_id, count(*), sum(adw_is_active(a.status, a.completed_at)),
           sum((a.status = 'failed')::int), coalesce(sum(p.prompts), 0),
           coalesce(sum(p.failed_prompts), 0), coalesce(sum(p.tokens_input), 0),
           coalesce(sum(p.tokens_output), 0),
           sum(adw_nano(a.cost_usd)) + coalesce(sum(p.cost_nano), 0),
           min(a.started_at), max(greatest(a.started_at, a.completed_at, p.last_activity))
    FROM agents a
    LEFT JOIN (
        SELECT agent_id, count(*) AS prompts, sum((status = 'failed')::int) AS failed_prompts,
               sum(tokens_input) AS tokens_input, sum(tokens_output) AS tokens_output,
               sum(adw_nano(cost_usd)) AS cost_nano,
               max(greatest(created_at, completed_at)) AS last_activity
        FROM prompts
        WHERE v_sessions IS NULL
           OR agent_id IN (SELECT id FROM agents WHERE session_id = ANY (v_sessions))
        GROUP BY agent_id
    ) p ON p.agent_id = a.id
    WHERE v_sessions IS NULL OR a.session_id = ANY (v_sessions)
    GROUP BY a.session_id;
$$;

-- --- the day sums, added up ---------------------------------------------------------------

-- model_costs follows daily_costs: each change of a day sum, added to its model's sum
-- (in the same shard, so the row is as private to its writer as the day's). Both the
-- old amounts taken away and the new ones added are upserts: a fold may have moved the
-- model's row to shard 0 while the day's row stayed (a writer held it), and a plain
-- UPDATE of the gone row would drop the change.
CREATE OR REPLACE FUNCTION adw_add_model_costs(
    v_model TEXT, v_definition UUID, v_shard INTEGER, v_prompts BIGINT, v_tokens_input BIGINT,
    v_tokens_output BIGINT, v_cost NUMERIC
) RETURNS void LANGUAGE sql AS $$
    INSERT INTO model_costs AS m (model_used, orchestrator_agent_id, shard, prompts,
                                  tokens_input, tokens_output, cost_nano)
    VALUES (v_model, v_definition, v_shard, v_prompts, v_tokens_input, v_tokens_output, v_cost)
    ON CONFLICT (model_used, orchestrator_agent_id, shard) DO UPDATE SET
        prompts = m.prompts + excluded.prompts,
        tokens_input = m.tokens_input + excluded.tokens_input,
        tokens_output = m.tokens_output + excluded.tokens_output,
        cost_nano = m.cost_nano + excluded.cost_nano
$$;

CREATE OR REPLACE FUNCTION adw_daily_costs_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('adw.folding', true) = 'on' THEN
        RETURN NULL;  -- a fold moves day sums between shards: no model's sum changes
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM adw_add_model_costs(OLD.model_used, OLD.orchestrator_agent_id, OLD.shard,
            -OLD.prompts, -OLD.tokens_input, -OLD.tokens_output, -OLD.cost_nano);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM adw_add_model_costs(NEW.model_used, NEW.orchestrator_agent_id, NEW.shard,
            NEW.prompts, NEW.tokens_input, NEW.tokens_output, NEW.cost_nano);
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER daily_costs_follow AFTER INSERT OR UPDATE OR DELETE ON daily_costs
    FOR EACH ROW EXECUTE FUNCTION adw_daily_costs_follow();

-- --- agents ----------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION adw_agents_totals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO session_totals AS s (session_id, agents, active_agents, failed_agents,
                                         cost_nano, first_activity, last_activity)
        VALUES (NEW.session_id, 1, adw_is_active(NEW.status, NEW.completed_at),
                (NEW.status = 'failed')::int, adw_nano(NEW.cost_usd), NEW.started_at,
                greatest(NEW.started_at, NEW.completed_at))
        ON CONFLICT (session_id) DO UPDATE SET
            agents = s.agents + 1,
            active_agents = s.active_agents + excluded.active_agents,
            failed_agents = s.failed_agents + excluded.failed_agents,
            cost_nano = s.cost_nano + excluded.cost_nano,
            first_activity = least(s.first_activity, excluded.first_activity),
            last_activity = greatest(s.last_activity, excluded.last_activity);
        IF NEW.cost_usd <> 0 THEN
            PERFORM adw_add_costs(NEW.session_id, NEW.orchestrator_agent_id,
                                  adw_day(NEW.started_at), '', 0, 0, 0, adw_nano(NEW.cost_usd));
        END IF;
        RETURN NULL;
    ELSIF TG_OP = 'DELETE' THEN  -- before the row goes: its prompts go after it, by the cascade
        PERFORM adw_add_agent_prompts(OLD.id, OLD.session_id, OLD.orchestrator_agent_id, -1);
        IF OLD.cost_usd <> 0 THEN
            PERFORM adw_add_costs(OLD.session_id, OLD.orchestrator_agent_id,
                                  adw_day(OLD.started_at), '', 0, 0, 0, -adw_nano(OLD.cost_usd));
        END IF;
        UPDATE session_totals s SET
            agents = s.agents - 1,
            active_agents = s.active_agents - adw_is_active(OLD.status, OLD.completed_at),
            failed_agents = s.failed_agents - (OLD.status = 'failed')::int,
            prompts = s.prompts - p.prompts,
            failed_prompts = s.failed_prompts - p.failed_prompts,
            tokens_input = s.tokens_input - p.tokens_input,
            tokens_output = s.tokens_output - p.tokens_output,
            cost_nano = s.cost_nano - adw_nano(OLD.cost_usd) - p.cost_nano
        FROM (SELECT count(*) AS prompts,
                     coalesce(sum((status = 'failed')::int), 0) AS failed_prompts,
                     coalesce(sum(tokens_input), 0) AS tokens_input,
                     coalesce(sum(tokens_output), 0) AS tokens_output,
                     coalesce(sum(adw_nano(cost_usd)), 0) AS cost_nano
              FROM prompts WHERE agent_id = OLD.id) p
        WHERE s.session_id = OLD.session_id;
        DELETE FROM session_totals WHERE session_id = OLD.session_id AND agents = 0;
        PERFORM adw_session_bounds(OLD.session_id, OLD.id);
        RETURN OLD;
    END IF;
    -- UPDATE
    IF OLD.session_id <> NEW.session_id OR OLD.orchestrator_agent_id <> NEW.orchestrator_agent_id
       OR OLD.started_at <> NEW.started_at THEN
        -- a move (rare): the agent and its prompts leave the old sums and join the new ones
        PERFORM adw_add_agent_prompts(NEW.id, OLD.session_id, OLD.orchestrator_agent_id, -1);
        PERFORM adw_add_agent_prompts(NEW.id, NEW.session_id, NEW.orchestrator_agent_id, 1);
        PERFORM adw_add_costs(OLD.session_id, OLD.orchestrator_agent_id, adw_day(OLD.started_at),
                              '', 0, 0, 0, -adw_nano(OLD.cost_usd));
        PERFORM adw_add_costs(NEW.session_id, NEW.orchestrator_agent_id, adw_day(NEW.started_at),
                              '', 0, 0, 0, adw_nano(NEW.cost_usd));
        PERFORM adw_recount_sessions(ARRAY[OLD.session_id, NEW.session_id]);
        RETURN NULL;
    END IF;
    IF OLD.status IS DISTINCT FROM NEW.status OR OLD.completed_at IS DISTINCT FROM NEW.completed_at
       OR OLD.cost_usd <> NEW.cost_usd THEN
        UPDATE session_totals s SET
            active_agents = s.active_agents + adw_is_active(NEW.status, NEW.completed_at)
                                            - adw_is_active(OLD.status, OLD.completed_at),
            failed_agents = s.failed_agents + (NEW.status = 'failed')::int
                                            - (OLD.status = 'failed')::int,
            cost_nano = s.cost_nano + adw_nano(NEW.cost_usd) - adw_nano(OLD.cost_usd),
            last_activity = greatest(s.last_activity, NEW.started_at, NEW.completed_at)
        WHERE s.session_id = NEW.session_id;
        IF OLD.cost_usd <> NEW.cost_usd THEN
            PERFORM adw_add_costs(NEW.session_id, NEW.orchestrator_agent_id,
                                  adw_day(NEW.started_at), '', 0, 0, 0,
                                  adw_nano(NEW.cost_usd) - adw_nano(OLD.cost_usd));
        END IF;
        IF greatest(OLD.started_at, OLD.completed_at) > greatest(NEW.started_at, NEW.completed_at)
        THEN  -- an end moved earlier may have been the session's last activity
            PERFORM adw_session_bounds(NEW.session_id, NULL);
        END IF;
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER agents_totals_write AFTER INSERT OR UPDATE ON agents
    FOR EACH ROW EXECUTE FUNCTION adw_agents_totals();
CREATE OR REPLACE TRIGGER agents_totals_delete BEFORE DELETE ON agents
    FOR EACH ROW EXECUTE FUNCTION adw_agents_totals();

-- --- prompts ---------------------------------------------------------------------------

-- One prompt counted (sign 1) or taken away (sign -1); a prompt whose agent is gone was
-- taken away with it.
CREATE OR REPLACE FUNCTION adw_add_prompt(p prompts, v_sign INTEGER) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_session TEXT;
    v_definition UUID;
BEGIN
    SELECT session_id, orchestrator_agent_id INTO v_session, v_definition
    FROM agents WHERE id = p.agent_id FOR NO KEY UPDATE;  -- the agent's lock first
    IF NOT FOUND THEN
        RETURN;
    END IF;
    UPDATE session_totals SET
        prompts = prompts + v_sign,
        failed_prompts = failed_prompts + v_sign * (p.status = 'failed')::int,
        tokens_input = tokens_input + v_sign * p.tokens_input,
        tokens_output = tokens_output + v_sign * p.tokens_output,
        cost_nano = cost_nano + v_sign * adw_nano(p.cost_usd),
        last_activity = CASE WHEN v_sign > 0
                             THEN greatest(last_activity, p.created_at, p.completed_at)
                             ELSE last_activity END
    WHERE session_id = v_session;
    PERFORM adw_add_costs(v_session, v_definition, adw_day(p.created_at),
                          coalesce(p.model_used, ''), v_sign, v_sign * p.tokens_input,
                          v_sign * p.tokens_output, v_sign * adw_nano(p.cost_usd));
END $$;

CREATE OR REPLACE FUNCTION adw_prompts_totals() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_session TEXT;
    v_recount BOOLEAN := TG_OP = 'DELETE';
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM adw_add_prompt(NEW, 1);
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        IF NOT (OLD.agent_id <> NEW.agent_id OR OLD.status <> NEW.status
                OR OLD.model_used IS DISTINCT FROM NEW.model_used
                OR OLD.tokens_input <> NEW.tokens_input OR OLD.tokens_output <> NEW.tokens_output
                OR OLD.cost_usd <> NEW.cost_usd OR OLD.created_at <> NEW.created_at
                OR OLD.completed_at IS DISTINCT FROM NEW.completed_at) THEN
            RETURN NULL;
        END IF;
        v_recount := OLD.agent_id <> NEW.agent_id
            OR greatest(OLD.created_at, OLD.completed_at) > greatest(NEW.created_at, NEW.completed_at);
    END IF;
    PERFORM adw_add_prompt(OLD, -1);
    IF TG_OP = 'UPDATE' THEN
        PERFORM adw_add_prompt(NEW, 1);
    END IF;
    IF v_recount THEN  -- OLD may have been its session's last activity
        SELECT s.session_id INTO v_session
        FROM session_totals s JOIN agents a ON a.session_id = s.session_id
        WHERE a.id = OLD.agent_id AND s.last_activity <= greatest(OLD.created_at, OLD.completed_at);
        IF FOUND THEN
            PERFORM adw_session_bounds(v_session, NULL);
        END IF;
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER prompts_totals AFTER INSERT OR UPDATE OR DELETE ON prompts
    FOR EACH ROW EXECUTE FUNCTION adw_prompts_totals();

-- --- rows per table (the stats) -----------------------------------------------------------

CREATE OR REPLACE FUNCTION adw_count_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO row_counts AS r (table_name, shard, row_count)
    VALUES (TG_TABLE_NAME, adw_shard(), CASE TG_OP WHEN 'INSERT' THEN 1 ELSE -1 END)
    ON CONFLICT (table_name, shard) DO UPDATE SET row_count = r.row_count + excluded.row_count;
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER orchestrator_agents_count AFTER INSERT OR DELETE ON orchestrator_agents
    FOR EACH ROW EXECUTE FUNCTION adw_count_rows();
CREATE OR REPLACE TRIGGER agents_count AFTER INSERT OR DELETE ON agents
    FOR EACH ROW EXECUTE FUNCTION adw_count_rows();
CREATE OR REPLACE TRIGGER prompts_count AFTER INSERT OR DELETE ON prompts
    FOR EACH ROW EXECUTE FUNCTION adw_count_rows();
CREATE OR REPLACE TRIGGER agent_logs_count AFTER INSERT OR DELETE ON agent_logs
    FOR EACH ROW EXECUTE FUNCTION adw_count_rows();
CREATE OR REPLACE TRIGGER system_logs_count AFTER INSERT OR DELETE ON system_logs
    FOR EACH ROW EXECUTE FUNCTION adw_count_rows();
CREATE OR REPLACE TRIGGER orchestrator_chat_count AFTER INSERT OR DELETE ON orchestrator_chat
    FOR EACH ROW EXECUTE FUNCTION adw_count_rows();
CREATE OR REPLACE TRIGGER ai_developer_workflows_count AFTER INSERT OR DELETE ON ai_developer_workflows
    FOR EACH ROW EXECUTE FUNCTION adw_count_rows();

-- --- folding the shards ------------------------------------------------------------------

-- Each server process that writes keeps rows of its own (shard = its pid) in the day,
-- model, session-day and row-count sums. Processes come and go, so those rows would
-- grow without bound, and every report reads them all. A fold adds the rows of other
-- shards into shard 0 and deletes them, in one transaction, so that the sums per key are
-- the same in every snapshot. It never waits for a writer: a row a transaction holds now
-- is skipped (SKIP LOCKED) and folded next time. Writers never write shard 0, and one
-- fold runs at a time (a second one returns 0 at once), so nobody waits in a cycle.

-- Folds one table; v_keys are its key columns, v_sums its summed ones. The rows folded.
CREATE OR REPLACE FUNCTION adw_fold(v_table TEXT, v_keys TEXT, v_sums TEXT[]) RETURNS BIGINT
LANGUAGE plpgsql AS $$
DECLARE
    v_folded BIGINT;
BEGIN
    EXECUTE format(
        'WITH gone AS (DELETE FROM %1$I WHERE ctid = ANY (ARRAY(SELECT ctid FROM %1$I'
        ' WHERE shard <> 0 FOR UPDATE SKIP LOCKED)) RETURNING *),'
        ' kept AS (INSERT INTO %1$I AS t (%2$s, shard, %3$s)'
        ' SELECT %2$s, 0, %4$s FROM gone GROUP BY %2$s'
        ' ON CONFLICT (%2$s, shard) DO UPDATE SET %5$s RETURNING 1)'
        ' SELECT count(*) FROM gone',
        v_table, v_keys, array_to_string(v_sums, ', '),
        (SELECT string_agg(format('sum(%I)', s), ', ') FROM unnest(v_sums) s),
        (SELECT string_agg(format('%1$I = t.%1$I + excluded.%1$I', s), ', ')
         FROM unnest(v_sums) s))
    INTO v_folded;
    RETURN v_folded;
END $$;

-- Folds every sharded table; the rows folded (0 when another fold is running).
CREATE OR REPLACE FUNCTION adw_fold_shards() RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE
    v_sums CONSTANT TEXT[] := ARRAY['prompts', 'tokens_input', 'tokens_output', 'cost_nano'];
    v_folded BIGINT;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('adw_fold_shards')) THEN
        RETURN 0;
    END IF;
    PERFORM set_config('adw.folding', 'on', true);  -- model_costs is folded on its own
    v_folded := adw_fold('daily_costs', 'day, model_used, orchestrator_agent_id', v_sums)
        + adw_fold('model_costs', 'model_used, orchestrator_agent_id', v_sums)
        + adw_fold('session_daily_costs', 'session_id, day', v_sums)
        + adw_fold('row_counts', 'table_name', ARRAY['row_count']);
    PERFORM set_config('adw.folding', 'off', true);
    RETURN v_folded;
END $$;
