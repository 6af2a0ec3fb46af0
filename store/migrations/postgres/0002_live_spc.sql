-- Live SPC (times: Unix microseconds on both backends, so the SQL is shared).

-- Baselines with history: the current one has valid_to IS NULL.
CREATE TABLE baselines (
    id            BIGSERIAL PRIMARY KEY,
    scope         text NOT NULL,           -- series | site | global | bucket
    site          text NOT NULL,           -- '' for global
    host          text NOT NULL,           -- '' unless scope = series
    provider      text NOT NULL,
    model         text NOT NULL,
    metric        text NOT NULL,
    center        double precision NOT NULL,
    sigma         double precision NOT NULL,
    k             double precision NOT NULL,
    method        text NOT NULL,
    transform     text NOT NULL,
    points        bigint NOT NULL,
    window_from   bigint NOT NULL,
    window_to     bigint NOT NULL,
    mode          text NOT NULL,           -- auto | rolling | manual
    reason        text NOT NULL DEFAULT '',
    created_by    text NOT NULL DEFAULT '',
    valid_from    bigint NOT NULL,
    valid_to      bigint
);
CREATE INDEX baselines_current ON baselines (scope, site, host, provider, model, metric, valid_to);

-- Rule configuration: global (scope_value ''), per model, per site; most specific wins.
CREATE TABLE rule_configs (
    scope_kind  text NOT NULL,             -- global | model | site
    scope_value text NOT NULL,
    settings    text NOT NULL,             -- JSON object of parameter overrides
    updated_by  text NOT NULL DEFAULT '',
    updated_at  bigint NOT NULL,
    PRIMARY KEY (scope_kind, scope_value)
);
CREATE TABLE rule_config_history (
    id          BIGSERIAL PRIMARY KEY,
    scope_kind  text NOT NULL,
    scope_value text NOT NULL,
    settings    text NOT NULL,
    updated_by  text NOT NULL DEFAULT '',
    updated_at  bigint NOT NULL
);

-- Violations as episodes. id is derived from the unique key, so every replica computes the
-- same id and only the first insert wins.
CREATE TABLE violations (
    id              text NOT NULL PRIMARY KEY,
    series_key      text NOT NULL,
    scope           text NOT NULL,         -- series | site | global
    site            text NOT NULL,
    host            text NOT NULL,
    provider        text NOT NULL,
    model           text NOT NULL,
    metric          text NOT NULL,
    rule            bigint NOT NULL,
    opened_at       bigint NOT NULL,         -- first flagged point
    last_point_at   bigint NOT NULL,         -- last flagged point
    resolved_at     bigint,
    status          text NOT NULL,         -- open | resolved
    points          text NOT NULL,         -- JSON [{id, ts, value}] of the qualifying windows
    baseline        text NOT NULL,         -- JSON frozen copy
    context         text NOT NULL,         -- JSON: ±10 points and nearest telemetry
    acked_by        text,
    acked_at        bigint,
    ack_note        text,
    UNIQUE (series_key, rule, opened_at)
);
CREATE INDEX violations_status ON violations (status, opened_at);
CREATE INDEX violations_series ON violations (series_key, status);

-- Transactional outbox drained by the alert dispatcher.
CREATE TABLE outbox (
    id           BIGSERIAL PRIMARY KEY,
    violation_id text NOT NULL,
    event        text NOT NULL,            -- opened | resolved
    payload      text NOT NULL,
    created_at   bigint NOT NULL,
    state        text NOT NULL DEFAULT 'pending',
    attempts     bigint NOT NULL DEFAULT 0,
    next_attempt_at bigint NOT NULL DEFAULT 0,
    UNIQUE (violation_id, event)
);

-- Per-series counters (late points, failed calls).
CREATE TABLE series_counters (
    series_key  text NOT NULL PRIMARY KEY,
    late_points bigint NOT NULL DEFAULT 0,
    errors      bigint NOT NULL DEFAULT 0,
    ok          bigint NOT NULL DEFAULT 0,
    last_evaluated bigint NOT NULL DEFAULT 0   -- ts of the newest point the engine has evaluated
);

-- State of the site/global bucket charts (one job holder at a time).
CREATE TABLE bucket_charts (
    chart_key   text NOT NULL PRIMARY KEY,
    state       text NOT NULL,             -- JSON
    updated_at  bigint NOT NULL
);

CREATE TABLE leases (
    name       text NOT NULL PRIMARY KEY,
    holder     text NOT NULL,
    expires_at bigint NOT NULL
);
