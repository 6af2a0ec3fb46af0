-- OTLP GenAI histograms (issue 16): one row per export interval, data point and series, with
-- the interval's count, sum, mean and quantiles estimated from its buckets; charted as an
-- X̄ chart of the interval means. Values are in ms for durations, tokens for token usage.
CREATE TABLE otlp_intervals (
    id          text NOT NULL PRIMARY KEY,
    site        text NOT NULL,
    host        text NOT NULL,
    provider    text NOT NULL,
    model       text NOT NULL,
    operation   text NOT NULL,
    instrument  text NOT NULL,
    token_type  text NOT NULL,
    error_type  text NOT NULL,
    start_us    bigint NOT NULL,
    end_us      bigint NOT NULL,
    count       bigint NOT NULL,
    sum         double precision NOT NULL,
    min         double precision,
    max         double precision,
    p50         double precision,
    p90         double precision,
    p95         double precision,
    p99         double precision,
    temporality text NOT NULL,
    kind        text NOT NULL,
    received_us bigint NOT NULL
);
CREATE INDEX otlp_intervals_series ON otlp_intervals (site, host, provider, model, operation, instrument, token_type, end_us);
CREATE INDEX otlp_intervals_end ON otlp_intervals (end_us);

-- The last cumulative point of each OTLP stream, to turn the next one into a delta; kept in
-- the database so a restart (or another replica) continues where the last export left off.
CREATE TABLE otlp_streams (
    stream      text NOT NULL PRIMARY KEY,
    state       text NOT NULL,
    updated_us  bigint NOT NULL
);
