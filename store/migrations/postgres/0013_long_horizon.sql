-- Long horizon, SLOs and cost (issue 18; times: Unix µs). These tables keep their own
-- retention (`rollup_retention`, 400 days by default), whatever the samples' retention.
-- They are filled by the rollup job's second pass (watermark `long` on received_at).

-- Hourly and daily rollups of every series metric: count, sum, extremes and quantiles from a
-- mergeable logarithmic sketch (0.5 % relative error). An hour's sketch is dropped once the
-- hour is two days old (its quantiles stay); a day keeps its sketch.
CREATE TABLE rollup_1h (
    series_key text             NOT NULL,
    hour       bigint           NOT NULL,
    n          bigint           NOT NULL,
    sum        double precision NOT NULL,
    min        double precision NOT NULL,
    max        double precision NOT NULL,
    p50        double precision NOT NULL,
    p95        double precision NOT NULL,
    p99        double precision NOT NULL,
    sketch     text,
    PRIMARY KEY (series_key, hour)
);
CREATE INDEX rollup_1h_hour ON rollup_1h (hour);

CREATE TABLE rollup_1d (
    series_key text             NOT NULL,
    day        bigint           NOT NULL,
    n          bigint           NOT NULL,
    sum        double precision NOT NULL,
    min        double precision NOT NULL,
    max        double precision NOT NULL,
    p50        double precision NOT NULL,
    p95        double precision NOT NULL,
    p99        double precision NOT NULL,
    sketch     text             NOT NULL,
    PRIMARY KEY (series_key, day)
);
CREATE INDEX rollup_1d_day ON rollup_1d (day);

-- Calls and tokens per model, host, source and hour (cost, capacity).
CREATE TABLE usage_1h (
    site       text   NOT NULL,
    host       text   NOT NULL,
    provider   text   NOT NULL,
    model      text   NOT NULL,
    source     text   NOT NULL,
    hour       bigint NOT NULL,
    calls      bigint NOT NULL,
    errors     bigint NOT NULL,
    tokens_in  bigint NOT NULL,
    tokens_out bigint NOT NULL,
    PRIMARY KEY (site, host, provider, model, source, hour)
);
CREATE INDEX usage_1h_hour ON usage_1h (hour);

-- Service level objectives: `metric` is a time metric (good = at most `threshold` ms) or
-- `errors` (good = a successful call); `objective` is the fraction of good calls.
CREATE TABLE slos (
    id         text             NOT NULL PRIMARY KEY,
    name       text             NOT NULL UNIQUE,
    site       text             NOT NULL DEFAULT '',
    model      text             NOT NULL DEFAULT '',
    source     text             NOT NULL DEFAULT '',
    metric     text             NOT NULL,
    threshold  double precision,
    objective  double precision NOT NULL,
    window_s   bigint           NOT NULL,
    origin     text             NOT NULL,
    created_at bigint           NOT NULL
);

-- Good and bad calls per SLO and minute.
CREATE TABLE slo_minutes (
    slo_id text   NOT NULL,
    minute bigint NOT NULL,
    total  bigint NOT NULL,
    bad    bigint NOT NULL,
    PRIMARY KEY (slo_id, minute)
);

-- Prices per provider and model: per million input / output tokens, or (self-hosted) a GPU
-- hour price times the GPUs a serving host uses.
CREATE TABLE prices (
    provider     text             NOT NULL,
    model        text             NOT NULL,
    input_per_m  double precision NOT NULL DEFAULT 0,
    output_per_m double precision NOT NULL DEFAULT 0,
    gpu_hour     double precision NOT NULL DEFAULT 0,
    gpus         integer          NOT NULL DEFAULT 0,
    origin       text             NOT NULL,
    PRIMARY KEY (provider, model)
);

-- Monthly budgets per site and/or model ('' = all).
CREATE TABLE budgets (
    id         text             NOT NULL PRIMARY KEY,
    name       text             NOT NULL UNIQUE,
    site       text             NOT NULL DEFAULT '',
    model      text             NOT NULL DEFAULT '',
    monthly    double precision NOT NULL,
    origin     text             NOT NULL,
    created_at bigint           NOT NULL
);
