-- Paging detectors, incidents and the source as part of a series' identity (issue 13).

ALTER TABLE baselines ADD COLUMN source TEXT NOT NULL DEFAULT 'probe';
ALTER TABLE baselines ADD COLUMN phi REAL NOT NULL DEFAULT 0;
DROP INDEX baselines_current;
CREATE INDEX baselines_current ON baselines (scope, site, host, provider, model, metric, source, valid_to);

-- SQLite cannot drop the old UNIQUE (series_key, rule, opened_at): the table is rebuilt
CREATE TABLE violations_new (
    id              TEXT NOT NULL PRIMARY KEY,
    series_key      TEXT NOT NULL,
    scope           TEXT NOT NULL,
    site            TEXT NOT NULL,
    host            TEXT NOT NULL,
    provider        TEXT NOT NULL,
    model           TEXT NOT NULL,
    metric          TEXT NOT NULL,
    rule            INTEGER NOT NULL,
    opened_at       INTEGER NOT NULL,
    last_point_at   INTEGER NOT NULL,
    resolved_at     INTEGER,
    status          TEXT NOT NULL,
    points          TEXT NOT NULL,
    baseline        TEXT NOT NULL,
    context         TEXT NOT NULL,
    acked_by        TEXT,
    acked_at        INTEGER,
    ack_note        TEXT,
    source          TEXT NOT NULL DEFAULT 'probe',
    detector        TEXT NOT NULL DEFAULT 'nelson',
    severity        TEXT NOT NULL DEFAULT '',
    incident_id     TEXT,
    quiet_at        INTEGER
);
INSERT INTO violations_new (id, series_key, scope, site, host, provider, model, metric, rule, opened_at, last_point_at, resolved_at, status, points, baseline, context, acked_by, acked_at, ack_note)
    SELECT id, series_key, scope, site, host, provider, model, metric, rule, opened_at, last_point_at, resolved_at, status, points, baseline, context, acked_by, acked_at, ack_note FROM violations;
DROP TABLE violations;
ALTER TABLE violations_new RENAME TO violations;
CREATE INDEX violations_status ON violations (status, opened_at);
CREATE INDEX violations_series ON violations (series_key, status);
-- one row per episode: the id is a UUIDv5 of (series, detector, rule, opened_at), so the
-- primary key is the unique key (no second unique index to maintain on every insert)
CREATE INDEX violations_incident ON violations (incident_id) WHERE incident_id IS NOT NULL;
CREATE INDEX violations_host_open ON violations (site, host, provider, model) WHERE status = 'open';

ALTER TABLE series_catalog ADD COLUMN source TEXT NOT NULL DEFAULT 'probe';

ALTER TABLE series_counters ADD COLUMN last_seen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE series_counters ADD COLUMN last_received INTEGER NOT NULL DEFAULT 0;
ALTER TABLE series_counters ADD COLUMN interval_us INTEGER NOT NULL DEFAULT 0;
CREATE INDEX series_counters_seen ON series_counters (last_seen) WHERE last_seen > 0;

-- agents' liveness: their newest telemetry snapshot and when it was received (engine clock),
-- which the `agent_silent` check reads (an agent replaying old telemetry is alive)
CREATE TABLE agents (
    site          TEXT NOT NULL,
    host          TEXT NOT NULL,
    last_seen     INTEGER NOT NULL,
    last_received INTEGER NOT NULL,
    PRIMARY KEY (site, host)
);
CREATE INDEX agents_received ON agents (last_received);
