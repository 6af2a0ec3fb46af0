-- Read model for the REST API and dashboard (times: Unix µs).
-- Per-minute rollups of every series metric, maintained from samples by a leader-elected job
-- (watermark on received_at), so a 30-day chart reads ~43 k rows instead of 2.6 M.
CREATE TABLE rollup_1m (
    series_key text NOT NULL,
    minute     bigint NOT NULL,
    n          bigint NOT NULL,
    sum        double precision NOT NULL,
    min        double precision NOT NULL,
    max        double precision NOT NULL,
    PRIMARY KEY (series_key, minute)
);

-- Every series seen, for inventory, the overview and the series list.
CREATE TABLE series_catalog (
    series_key text NOT NULL PRIMARY KEY,
    site       text NOT NULL,
    host       text NOT NULL,
    provider   text NOT NULL,
    model      text NOT NULL,
    metric     text NOT NULL,
    first_ts   bigint NOT NULL,
    last_ts    bigint NOT NULL,
    last_value double precision NOT NULL
);
CREATE INDEX series_catalog_site ON series_catalog (site, model);

CREATE TABLE rollup_state (
    name      text NOT NULL PRIMARY KEY,
    watermark bigint NOT NULL
);

-- the rollup job reads samples by arrival
CREATE INDEX samples_received ON samples (received_at);
