-- OTLP GenAI histograms (issue 16): one row per export interval, data point and series, with
-- the interval's count, sum, mean and quantiles estimated from its buckets; charted as an
-- X̄ chart of the interval means. Values are in ms for durations, tokens for token usage.
CREATE TABLE otlp_intervals (
    id          TEXT NOT NULL PRIMARY KEY,
    site        TEXT NOT NULL,
    host        TEXT NOT NULL,
    provider    TEXT NOT NULL,
    model       TEXT NOT NULL,
    operation   TEXT NOT NULL,
    instrument  TEXT NOT NULL,
    token_type  TEXT NOT NULL,
    error_type  TEXT NOT NULL,
    start_us    INTEGER NOT NULL,
    end_us      INTEGER NOT NULL,
    count       INTEGER NOT NULL,
    sum         REAL NOT NULL,
    min         REAL,
    max         REAL,
    p50         REAL,
    p90         REAL,
    p95         REAL,
    p99         REAL,
    temporality TEXT NOT NULL,
    kind        TEXT NOT NULL,
    received_us INTEGER NOT NULL
);
CREATE INDEX otlp_intervals_series ON otlp_intervals (site, host, provider, model, operation, instrument, token_type, end_us);
CREATE INDEX otlp_intervals_end ON otlp_intervals (end_us);

-- The last cumulative point of each OTLP stream, to turn the next one into a delta; kept in
-- the database so a restart (or another replica) continues where the last export left off.
CREATE TABLE otlp_streams (
    stream      TEXT NOT NULL PRIMARY KEY,
    state       TEXT NOT NULL,
    updated_us  INTEGER NOT NULL
);
