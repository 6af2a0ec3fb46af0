-- Paging detectors, incidents and the source as part of a series' identity (issue 13).

-- a baseline belongs to one source (probe, proxy, client, otlp); phi: the Phase I lag-1
-- autocorrelation the paging CUSUM's residuals account for
ALTER TABLE baselines ADD COLUMN source text NOT NULL DEFAULT 'probe';
ALTER TABLE baselines ADD COLUMN phi double precision NOT NULL DEFAULT 0;
DROP INDEX baselines_current;
CREATE INDEX baselines_current ON baselines (scope, site, host, provider, model, metric, source, valid_to);

-- detector: nelson | cusum | down | error_rate | silent | agent_silent (rule 0 unless nelson);
-- severity: fixed when the violation opens ('' on older rows: the default of its rule);
-- incident_id: the lead violation of its incident (itself for the lead); quiet_at: when a
-- lead's own detector went quiet while other members kept its incident open.
ALTER TABLE violations ADD COLUMN source text NOT NULL DEFAULT 'probe';
ALTER TABLE violations ADD COLUMN detector text NOT NULL DEFAULT 'nelson';
ALTER TABLE violations ADD COLUMN severity text NOT NULL DEFAULT '';
ALTER TABLE violations ADD COLUMN incident_id text;
ALTER TABLE violations ADD COLUMN quiet_at bigint;
ALTER TABLE violations DROP CONSTRAINT IF EXISTS violations_series_key_rule_opened_at_key;
-- one row per episode: the id is a UUIDv5 of (series, detector, rule, opened_at), so the
-- primary key is the unique key (no second unique index to maintain on every insert)
CREATE INDEX violations_incident ON violations (incident_id) WHERE incident_id IS NOT NULL;
CREATE INDEX violations_host_open ON violations (site, host, provider, model) WHERE status = 'open';

ALTER TABLE series_catalog ADD COLUMN source text NOT NULL DEFAULT 'probe';

-- liveness of a model on a host (on its latency series' row): newest call of any outcome and
-- the median gap between calls, which the `silent` detector reads
ALTER TABLE series_counters ADD COLUMN last_seen bigint NOT NULL DEFAULT 0;
-- when the newest of them was received (engine clock): a model whose old samples are being
-- replayed (an agent catching up after an outage) is not silent
ALTER TABLE series_counters ADD COLUMN last_received bigint NOT NULL DEFAULT 0;
ALTER TABLE series_counters ADD COLUMN interval_us bigint NOT NULL DEFAULT 0;
CREATE INDEX series_counters_seen ON series_counters (last_seen) WHERE last_seen > 0;

-- agents' liveness: their newest telemetry snapshot and when it was received (engine clock),
-- which the `agent_silent` check reads (an agent replaying old telemetry is alive)
CREATE TABLE agents (
    site          TEXT NOT NULL,
    host          TEXT NOT NULL,
    last_seen     bigint NOT NULL,
    last_received bigint NOT NULL,
    PRIMARY KEY (site, host)
);
CREATE INDEX agents_received ON agents (last_received);
