-- Live SPC (times: Unix microseconds on both backends, so the SQL is shared).

-- Baselines with history: the current one has valid_to IS NULL.
CREATE TABLE baselines (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    scope         TEXT NOT NULL,           -- series | site | global | bucket
    site          TEXT NOT NULL,           -- '' for global
    host          TEXT NOT NULL,           -- '' unless scope = series
    provider      TEXT NOT NULL,
    model         TEXT NOT NULL,
    metric        TEXT NOT NULL,
    center        REAL NOT NULL,
    sigma         REAL NOT NULL,
    k             REAL NOT NULL,
    method        TEXT NOT NULL,
    transform     TEXT NOT NULL,
    points        INTEGER NOT NULL,
    window_from   INTEGER NOT NULL,
    window_to     INTEGER NOT NULL,
    mode          TEXT NOT NULL,           -- auto | rolling | manual
    reason        TEXT NOT NULL DEFAULT '',
    created_by    TEXT NOT NULL DEFAULT '',
    valid_from    INTEGER NOT NULL,
    valid_to      INTEGER
);
CREATE INDEX baselines_current ON baselines (scope, site, host, provider, model, metric, valid_to);

-- Rule configuration: global (scope_value ''), per model, per site; most specific wins.
CREATE TABLE rule_configs (
    scope_kind  TEXT NOT NULL,             -- global | model | site
    scope_value TEXT NOT NULL,
    settings    TEXT NOT NULL,             -- JSON object of parameter overrides
    updated_by  TEXT NOT NULL DEFAULT '',
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (scope_kind, scope_value)
);
CREATE TABLE rule_config_history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    scope_kind  TEXT NOT NULL,
    scope_value TEXT NOT NULL,
    settings    TEXT NOT NULL,
    updated_by  TEXT NOT NULL DEFAULT '',
    updated_at  INTEGER NOT NULL
);

-- Violations as episodes. id is derived from the unique key, so every replica computes the
-- same id and only the first insert wins.
CREATE TABLE violations (
    id              TEXT NOT NULL PRIMARY KEY,
    series_key      TEXT NOT NULL,
    scope           TEXT NOT NULL,         -- series | site | global
    site            TEXT NOT NULL,
    host            TEXT NOT NULL,
    provider        TEXT NOT NULL,
    model           TEXT NOT NULL,
    metric          TEXT NOT NULL,
    rule            INTEGER NOT NULL,
    opened_at       INTEGER NOT NULL,         -- first flagged point
    last_point_at   INTEGER NOT NULL,         -- last flagged point
    resolved_at     INTEGER,
    status          TEXT NOT NULL,         -- open | resolved
    points          TEXT NOT NULL,         -- JSON [{id, ts, value}] of the qualifying windows
    baseline        TEXT NOT NULL,         -- JSON frozen copy
    context         TEXT NOT NULL,         -- JSON: ±10 points and nearest telemetry
    acked_by        TEXT,
    acked_at        INTEGER,
    ack_note        TEXT,
    UNIQUE (series_key, rule, opened_at)
);
CREATE INDEX violations_status ON violations (status, opened_at);
CREATE INDEX violations_series ON violations (series_key, status);

-- Transactional outbox drained by the alert dispatcher.
CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    violation_id TEXT NOT NULL,
    event        TEXT NOT NULL,            -- opened | resolved
    payload      TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    state        TEXT NOT NULL DEFAULT 'pending',
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    UNIQUE (violation_id, event)
);

-- Per-series counters (late points, failed calls).
CREATE TABLE series_counters (
    series_key  TEXT NOT NULL PRIMARY KEY,
    late_points INTEGER NOT NULL DEFAULT 0,
    errors      INTEGER NOT NULL DEFAULT 0,
    ok          INTEGER NOT NULL DEFAULT 0,
    last_evaluated INTEGER NOT NULL DEFAULT 0   -- ts of the newest point the engine has evaluated
);

-- State of the site/global bucket charts (one job holder at a time).
CREATE TABLE bucket_charts (
    chart_key   TEXT NOT NULL PRIMARY KEY,
    state       TEXT NOT NULL,             -- JSON
    updated_at  INTEGER NOT NULL
);

CREATE TABLE leases (
    name       TEXT NOT NULL PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
