-- Read model for the REST API and dashboard (times: Unix µs).
-- Per-minute rollups of every series metric, maintained from samples by a leader-elected job
-- (watermark on received_at), so a 30-day chart reads ~43 k rows instead of 2.6 M.
CREATE TABLE rollup_1m (
    series_key TEXT NOT NULL,
    minute     INTEGER NOT NULL,
    n          INTEGER NOT NULL,
    sum        REAL NOT NULL,
    min        REAL NOT NULL,
    max        REAL NOT NULL,
    PRIMARY KEY (series_key, minute)
);

-- Every series seen, for inventory, the overview and the series list.
CREATE TABLE series_catalog (
    series_key TEXT NOT NULL PRIMARY KEY,
    site       TEXT NOT NULL,
    host       TEXT NOT NULL,
    provider   TEXT NOT NULL,
    model      TEXT NOT NULL,
    metric     TEXT NOT NULL,
    first_ts   INTEGER NOT NULL,
    last_ts    INTEGER NOT NULL,
    last_value REAL NOT NULL
);
CREATE INDEX series_catalog_site ON series_catalog (site, model);

CREATE TABLE rollup_state (
    name      TEXT NOT NULL PRIMARY KEY,
    watermark INTEGER NOT NULL
);

-- the rollup job reads samples by arrival
CREATE INDEX samples_received ON samples (received_at);
