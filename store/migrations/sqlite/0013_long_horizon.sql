-- Long horizon, SLOs and cost (issue 18; times: Unix µs). These tables keep their own
-- retention (`rollup_retention`, 400 days by default), whatever the samples' retention.
-- They are filled by the rollup job's second pass (watermark `long` on received_at).

-- Hourly and daily rollups of every series metric: count, sum, extremes and quantiles from a
-- mergeable logarithmic sketch (0.5 % relative error). An hour's sketch is dropped once the
-- hour is two days old (its quantiles stay); a day keeps its sketch.
CREATE TABLE rollup_1h (
    series_key TEXT             NOT NULL,
    hour       INTEGER          NOT NULL,
    n          INTEGER          NOT NULL,
    sum        REAL             NOT NULL,
    min        REAL             NOT NULL,
    max        REAL             NOT NULL,
    p50        REAL             NOT NULL,
    p95        REAL             NOT NULL,
    p99        REAL             NOT NULL,
    sketch     TEXT,
    PRIMARY KEY (series_key, hour)
);
CREATE INDEX rollup_1h_hour ON rollup_1h (hour);

CREATE TABLE rollup_1d (
    series_key TEXT             NOT NULL,
    day        INTEGER          NOT NULL,
    n          INTEGER          NOT NULL,
    sum        REAL             NOT NULL,
    min        REAL             NOT NULL,
    max        REAL             NOT NULL,
    p50        REAL             NOT NULL,
    p95        REAL             NOT NULL,
    p99        REAL             NOT NULL,
    sketch     TEXT             NOT NULL,
    PRIMARY KEY (series_key, day)
);
CREATE INDEX rollup_1d_day ON rollup_1d (day);

-- Calls and tokens per model, host, source and hour (cost, capacity).
CREATE TABLE usage_1h (
    site       TEXT   NOT NULL,
    host       TEXT   NOT NULL,
    provider   TEXT   NOT NULL,
    model      TEXT   NOT NULL,
    source     TEXT   NOT NULL,
    hour       INTEGER NOT NULL,
    calls      INTEGER NOT NULL,
    errors     INTEGER NOT NULL,
    tokens_in  INTEGER NOT NULL,
    tokens_out INTEGER NOT NULL,
    PRIMARY KEY (site, host, provider, model, source, hour)
);
CREATE INDEX usage_1h_hour ON usage_1h (hour);

-- Service level objectives: `metric` is a time metric (good = at most `threshold` ms) or
-- `errors` (good = a successful call); `objective` is the fraction of good calls.
CREATE TABLE slos (
    id         TEXT             NOT NULL PRIMARY KEY,
    name       TEXT             NOT NULL UNIQUE,
    site       TEXT             NOT NULL DEFAULT '',
    model      TEXT             NOT NULL DEFAULT '',
    source     TEXT             NOT NULL DEFAULT '',
    metric     TEXT             NOT NULL,
    threshold  REAL            ,
    objective  REAL             NOT NULL,
    window_s   INTEGER          NOT NULL,
    origin     TEXT             NOT NULL,
    created_at INTEGER          NOT NULL
);

-- Good and bad calls per SLO and minute.
CREATE TABLE slo_minutes (
    slo_id TEXT   NOT NULL,
    minute INTEGER NOT NULL,
    total  INTEGER NOT NULL,
    bad    INTEGER NOT NULL,
    PRIMARY KEY (slo_id, minute)
);

-- Prices per provider and model: per million input / output tokens, or (self-hosted) a GPU
-- hour price times the GPUs a serving host uses.
CREATE TABLE prices (
    provider     TEXT             NOT NULL,
    model        TEXT             NOT NULL,
    input_per_m  REAL             NOT NULL DEFAULT 0,
    output_per_m REAL             NOT NULL DEFAULT 0,
    gpu_hour     REAL             NOT NULL DEFAULT 0,
    gpus         INTEGER          NOT NULL DEFAULT 0,
    origin       TEXT             NOT NULL,
    PRIMARY KEY (provider, model)
);

-- Monthly budgets per site and/or model ('' = all).
CREATE TABLE budgets (
    id         TEXT             NOT NULL PRIMARY KEY,
    name       TEXT             NOT NULL UNIQUE,
    site       TEXT             NOT NULL DEFAULT '',
    model      TEXT             NOT NULL DEFAULT '',
    monthly    REAL             NOT NULL,
    origin     TEXT             NOT NULL,
    created_at INTEGER          NOT NULL
);
