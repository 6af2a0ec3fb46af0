-- Ingest tables (SQLite). Times are Unix microseconds (INTEGER).
CREATE TABLE samples (
    id          TEXT    NOT NULL PRIMARY KEY,   -- canonical UUID, the idempotency key
    ts          INTEGER NOT NULL,               -- call start, unix µs
    site        TEXT    NOT NULL,
    host        TEXT    NOT NULL,
    provider    TEXT    NOT NULL,
    model       TEXT    NOT NULL,
    source      TEXT    NOT NULL,               -- probe | proxy | client
    latency_ms  REAL    NOT NULL,
    ttft_ms     REAL,
    tokens_in   INTEGER,
    tokens_out  INTEGER,
    status      TEXT    NOT NULL,               -- ok | error | timeout
    http_status INTEGER,
    error       TEXT,
    labels      TEXT    NOT NULL DEFAULT '{}',  -- JSON object
    received_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX samples_series_ts ON samples (site, host, provider, model, ts);
CREATE INDEX samples_ts ON samples (ts);

CREATE TABLE telemetry (
    site            TEXT    NOT NULL,
    host            TEXT    NOT NULL,
    ts              INTEGER NOT NULL,
    cpu_pct         REAL    NOT NULL,
    mem_used_bytes  INTEGER NOT NULL,
    mem_total_bytes INTEGER NOT NULL,
    load1           REAL    NOT NULL,
    PRIMARY KEY (site, host, ts)
) WITHOUT ROWID;
CREATE INDEX telemetry_ts ON telemetry (ts);

CREATE TABLE gpu_telemetry (
    site             TEXT    NOT NULL,
    host             TEXT    NOT NULL,
    ts               INTEGER NOT NULL,
    gpu_index        INTEGER NOT NULL,
    uuid             TEXT    NOT NULL,
    name             TEXT    NOT NULL,
    util_pct         REAL    NOT NULL,
    mem_used_bytes   INTEGER NOT NULL,
    mem_total_bytes  INTEGER NOT NULL,
    temp_c           REAL    NOT NULL,
    power_w          REAL    NOT NULL,
    sm_clock_mhz     INTEGER NOT NULL,
    throttle_reasons INTEGER NOT NULL,
    PRIMARY KEY (site, host, ts, gpu_index)
) WITHOUT ROWID;
CREATE INDEX gpu_telemetry_ts ON gpu_telemetry (ts);

CREATE TABLE sites (
    name       TEXT    NOT NULL PRIMARY KEY,
    created_at INTEGER NOT NULL
);

CREATE TABLE tokens (
    id         TEXT    NOT NULL PRIMARY KEY,    -- public part of the token, shown in lists
    hash       TEXT    NOT NULL UNIQUE,         -- sha256 of the whole token, hex
    site       TEXT,                            -- the only site it may write (NULL for admin)
    role       TEXT    NOT NULL,                -- ingest | admin
    name       TEXT    NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
