-- Orchestrator store: the SQLite schema (source of truth for the latest version).
--
-- Conventions
--   * ids of definitions, agents, prompts, chat messages and workflows are time-ordered
--     UUID (version 7) text; log ids are integers.
--   * timestamps are TEXT written by the store only, always in one fixed format:
--     UTC, ISO 8601, microseconds, explicit offset: 2026-01-31T12:00:00.000000+00:00.
--     The fixed width makes text order equal time order. The CHECKs below refuse
--     any other format, so no default or trigger can slip a second format in.
--   * JSON columns hold text that json_valid() accepts, or NULL.
--   * every enumeration is a CHECK, mirrored by a Literal in models.py.

CREATE TABLE IF NOT EXISTS orchestrator_agents (
    id            TEXT PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL UNIQUE CHECK (length(trim(name)) > 0),
    description   TEXT,
    agent_type    TEXT NOT NULL CHECK (agent_type IN
                      ('planner', 'builder', 'reviewer', 'tester', 'orchestrator', 'utility')),
    capabilities  TEXT,
    default_model TEXT,
    created_at    TEXT NOT NULL CHECK (created_at GLOB
                      '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00'),
    updated_at    TEXT NOT NULL CHECK (updated_at GLOB
                      '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00')
);

CREATE INDEX IF NOT EXISTS idx_orchestrator_agents_created_at
    ON orchestrator_agents (created_at);

CREATE TABLE IF NOT EXISTS agents (
    id                    TEXT PRIMARY KEY NOT NULL,
    orchestrator_agent_id TEXT NOT NULL
                              REFERENCES orchestrator_agents (id) ON DELETE CASCADE,
    session_id            TEXT NOT NULL CHECK (length(trim(session_id)) > 0),
    parent_agent_id       TEXT REFERENCES agents (id) ON DELETE SET NULL,
    status                TEXT NOT NULL DEFAULT 'initializing' CHECK (status IN
                              ('initializing', 'planning', 'executing', 'reviewing',
                               'completed', 'failed', 'cancelled')),
    context               TEXT CHECK (context IS NULL OR json_valid(context)),
    config                TEXT CHECK (config IS NULL OR json_valid(config)),
    started_at            TEXT NOT NULL CHECK (started_at GLOB
                              '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00'),
    completed_at          TEXT CHECK (completed_at IS NULL OR completed_at GLOB
                              '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00'),
    cost_usd              REAL NOT NULL DEFAULT 0 CHECK (cost_usd >= 0),
    error_message         TEXT
);

CREATE INDEX IF NOT EXISTS idx_agents_session_started
    ON agents (session_id, started_at);
CREATE INDEX IF NOT EXISTS idx_agents_orchestrator_agent_started
    ON agents (orchestrator_agent_id, started_at);
CREATE INDEX IF NOT EXISTS idx_agents_status_started
    ON agents (status, started_at);
CREATE INDEX IF NOT EXISTS idx_agents_started_at
    ON agents (started_at);
-- ON DELETE SET NULL looks children up by parent.
CREATE INDEX IF NOT EXISTS idx_agents_parent_agent
    ON agents (parent_agent_id);

CREATE TABLE IF NOT EXISTS prompts (
    id            TEXT PRIMARY KEY NOT NULL,
    agent_id      TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    prompt_type   TEXT NOT NULL CHECK (prompt_type IN
                      ('adw', 'command', 'followup', 'correction', 'tool_call')),
    prompt_name   TEXT,
    prompt_text   TEXT NOT NULL CHECK (length(trim(prompt_text)) > 0),
    response_text TEXT,
    status        TEXT NOT NULL DEFAULT 'pending' CHECK (status IN
                      ('pending', 'streaming', 'completed', 'failed', 'cancelled')),
    model_used    TEXT,
    tokens_input  INTEGER NOT NULL DEFAULT 0 CHECK (tokens_input >= 0),
    tokens_output INTEGER NOT NULL DEFAULT 0 CHECK (tokens_output >= 0),
    cost_usd      REAL NOT NULL DEFAULT 0 CHECK (cost_usd >= 0),
    latency_ms    INTEGER CHECK (latency_ms IS NULL OR latency_ms >= 0),
    created_at    TEXT NOT NULL CHECK (created_at GLOB
                      '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00'),
    completed_at  TEXT CHECK (completed_at IS NULL OR completed_at GLOB
                      '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00'),
    error_message TEXT
);

-- An agent's prompts in order, with what their sums read: those sums never touch the table.
CREATE INDEX IF NOT EXISTS idx_prompts_agent_totals
    ON prompts (agent_id, created_at, status, tokens_input, tokens_output, cost_usd);
CREATE INDEX IF NOT EXISTS idx_prompts_status_created
    ON prompts (status, created_at);
CREATE INDEX IF NOT EXISTS idx_prompts_created_at
    ON prompts (created_at);

CREATE TABLE IF NOT EXISTS agent_logs (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id   TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    log_level  TEXT NOT NULL DEFAULT 'INFO' CHECK (log_level IN
                   ('DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL')),
    log_type   TEXT NOT NULL CHECK (log_type IN
                   ('state_change', 'milestone', 'error', 'performance', 'tool_call',
                    'cost_update')),
    message    TEXT NOT NULL CHECK (length(trim(message)) > 0),
    details    TEXT CHECK (details IS NULL OR json_valid(details)),
    created_at TEXT NOT NULL CHECK (created_at GLOB
                   '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00')
);

CREATE INDEX IF NOT EXISTS idx_agent_logs_agent_created
    ON agent_logs (agent_id, created_at);
CREATE INDEX IF NOT EXISTS idx_agent_logs_level_created
    ON agent_logs (log_level, created_at);
CREATE INDEX IF NOT EXISTS idx_agent_logs_type_created
    ON agent_logs (log_type, created_at);
CREATE INDEX IF NOT EXISTS idx_agent_logs_created_at
    ON agent_logs (created_at);

CREATE TABLE IF NOT EXISTS system_logs (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    log_level  TEXT NOT NULL DEFAULT 'INFO' CHECK (log_level IN
                   ('DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL')),
    component  TEXT NOT NULL CHECK (length(trim(component)) > 0),
    message    TEXT NOT NULL CHECK (length(trim(message)) > 0),
    details    TEXT CHECK (details IS NULL OR json_valid(details)),
    created_at TEXT NOT NULL CHECK (created_at GLOB
                   '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00')
);

CREATE INDEX IF NOT EXISTS idx_system_logs_level_created
    ON system_logs (log_level, created_at);
CREATE INDEX IF NOT EXISTS idx_system_logs_component_created
    ON system_logs (component, created_at);
CREATE INDEX IF NOT EXISTS idx_system_logs_created_at
    ON system_logs (created_at);

-- Schema version 2: the orchestrator's conversation and the AI developer workflows it runs.

CREATE TABLE IF NOT EXISTS orchestrator_chat (
    id                    TEXT PRIMARY KEY NOT NULL,
    orchestrator_agent_id TEXT NOT NULL
                              REFERENCES orchestrator_agents (id) ON DELETE CASCADE,
    sender_type           TEXT NOT NULL CHECK (sender_type IN ('user', 'orchestrator', 'agent')),
    receiver_type         TEXT NOT NULL CHECK (receiver_type IN ('user', 'orchestrator', 'agent')),
    message               TEXT NOT NULL CHECK (length(trim(message)) > 0),
    summary               TEXT,
    agent_id              TEXT REFERENCES agents (id) ON DELETE CASCADE,
    metadata              TEXT CHECK (metadata IS NULL OR json_valid(metadata)),
    created_at            TEXT NOT NULL CHECK (created_at GLOB
                              '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00'),
    updated_at            TEXT NOT NULL CHECK (updated_at GLOB
                              '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00')
);

CREATE INDEX IF NOT EXISTS idx_orchestrator_chat_orchestrator_agent_created
    ON orchestrator_chat (orchestrator_agent_id, created_at);
CREATE INDEX IF NOT EXISTS idx_orchestrator_chat_agent_created
    ON orchestrator_chat (agent_id, created_at);
CREATE INDEX IF NOT EXISTS idx_orchestrator_chat_created_at
    ON orchestrator_chat (created_at);

-- adw_id is the run's own id (an ADW id such as 'a1b2c3d4'), which tracking looks rows up by.
CREATE TABLE IF NOT EXISTS ai_developer_workflows (
    id                    TEXT PRIMARY KEY NOT NULL,
    orchestrator_agent_id TEXT REFERENCES orchestrator_agents (id) ON DELETE CASCADE,
    adw_id                TEXT UNIQUE,
    adw_name              TEXT NOT NULL CHECK (length(trim(adw_name)) > 0),
    workflow_type         TEXT NOT NULL CHECK (length(trim(workflow_type)) > 0),
    description           TEXT,
    status                TEXT NOT NULL DEFAULT 'pending' CHECK (status IN
                              ('pending', 'in_progress', 'completed', 'failed', 'cancelled')),
    current_step          TEXT,
    total_steps           INTEGER NOT NULL DEFAULT 0 CHECK (total_steps >= 0),
    completed_steps       INTEGER NOT NULL DEFAULT 0 CHECK (completed_steps >= 0),
    started_at            TEXT CHECK (started_at IS NULL OR started_at GLOB
                              '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00'),
    completed_at          TEXT CHECK (completed_at IS NULL OR completed_at GLOB
                              '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00'),
    duration_seconds      REAL CHECK (duration_seconds IS NULL OR duration_seconds >= 0),
    input_data            TEXT CHECK (input_data IS NULL OR json_valid(input_data)),
    output_data           TEXT CHECK (output_data IS NULL OR json_valid(output_data)),
    error_message         TEXT,
    error_step            TEXT,
    error_count           INTEGER NOT NULL DEFAULT 0 CHECK (error_count >= 0),
    metadata              TEXT CHECK (metadata IS NULL OR json_valid(metadata)),
    created_at            TEXT NOT NULL CHECK (created_at GLOB
                              '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00'),
    updated_at            TEXT NOT NULL CHECK (updated_at GLOB
                              '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]+00:00')
);

CREATE INDEX IF NOT EXISTS idx_ai_developer_workflows_status_created
    ON ai_developer_workflows (status, created_at);
CREATE INDEX IF NOT EXISTS idx_ai_developer_workflows_type_created
    ON ai_developer_workflows (workflow_type, created_at);
CREATE INDEX IF NOT EXISTS idx_ai_developer_workflows_orchestrator_agent_created
    ON ai_developer_workflows (orchestrator_agent_id, created_at);
CREATE INDEX IF NOT EXISTS idx_ai_developer_workflows_created_at
    ON ai_developer_workflows (created_at);
