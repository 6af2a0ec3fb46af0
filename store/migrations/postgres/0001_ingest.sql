-- Ingest tables (PostgreSQL). The primary keys include the time column so that the tables
-- can become TimescaleDB hypertables; a resend carries the same (id, ts), so it stays
-- idempotent.
CREATE TABLE samples (
    id          uuid             NOT NULL,
    ts          timestamptz      NOT NULL,
    site        text             NOT NULL,
    host        text             NOT NULL,
    provider    text             NOT NULL,
    model       text             NOT NULL,
    source      text             NOT NULL,
    latency_ms  double precision NOT NULL,
    ttft_ms     double precision,
    tokens_in   bigint,
    tokens_out  bigint,
    status      text             NOT NULL,
    http_status integer,
    error       text,
    labels      jsonb            NOT NULL DEFAULT '{}'::jsonb,
    received_at timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (id, ts)
);
CREATE INDEX samples_series_ts ON samples (site, host, provider, model, ts);

CREATE TABLE telemetry (
    site            text             NOT NULL,
    host            text             NOT NULL,
    ts              timestamptz      NOT NULL,
    cpu_pct         double precision NOT NULL,
    mem_used_bytes  bigint           NOT NULL,
    mem_total_bytes bigint           NOT NULL,
    load1           double precision NOT NULL,
    PRIMARY KEY (site, host, ts)
);

CREATE TABLE gpu_telemetry (
    site             text             NOT NULL,
    host             text             NOT NULL,
    ts               timestamptz      NOT NULL,
    gpu_index        integer          NOT NULL,
    uuid             text             NOT NULL,
    name             text             NOT NULL,
    util_pct         double precision NOT NULL,
    mem_used_bytes   bigint           NOT NULL,
    mem_total_bytes  bigint           NOT NULL,
    temp_c           double precision NOT NULL,
    power_w          double precision NOT NULL,
    sm_clock_mhz     integer          NOT NULL,
    throttle_reasons bigint           NOT NULL,
    PRIMARY KEY (site, host, ts, gpu_index)
);

CREATE TABLE sites (
    name       text        NOT NULL PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tokens (
    id         text        NOT NULL PRIMARY KEY,
    hash       text        NOT NULL UNIQUE,
    site       text,
    role       text        NOT NULL,
    name       text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
