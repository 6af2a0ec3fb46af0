-- Issue 17: GPU readings a device does not support are absent (NULL), never 0; volatile ECC
-- counts and the XID errors reported since the previous snapshot; MIG instances in a table of
-- their own; gauges read from the host's model servers. SQLite cannot drop NOT NULL in place:
-- the GPU table is rebuilt.
CREATE TABLE gpu_telemetry_new (
    site                     TEXT    NOT NULL,
    host                     TEXT    NOT NULL,
    ts                       INTEGER NOT NULL,
    gpu_index                INTEGER NOT NULL,
    uuid                     TEXT    NOT NULL,
    name                     TEXT    NOT NULL,
    util_pct                 REAL,
    mem_used_bytes           INTEGER,
    mem_total_bytes          INTEGER,
    temp_c                   REAL,
    power_w                  REAL,
    sm_clock_mhz             INTEGER,
    throttle_reasons         INTEGER,
    ecc_corrected_volatile   INTEGER,
    ecc_uncorrected_volatile INTEGER,
    xid_errors               TEXT,
    PRIMARY KEY (site, host, ts, gpu_index)
) WITHOUT ROWID;
INSERT INTO gpu_telemetry_new (site, host, ts, gpu_index, uuid, name, util_pct, mem_used_bytes,
    mem_total_bytes, temp_c, power_w, sm_clock_mhz, throttle_reasons)
SELECT site, host, ts, gpu_index, uuid, name, util_pct, mem_used_bytes, mem_total_bytes, temp_c,
    power_w, sm_clock_mhz, throttle_reasons FROM gpu_telemetry;
DROP TABLE gpu_telemetry;
ALTER TABLE gpu_telemetry_new RENAME TO gpu_telemetry;
CREATE INDEX gpu_telemetry_ts ON gpu_telemetry (ts);

CREATE TABLE mig_telemetry (
    site            TEXT    NOT NULL,
    host            TEXT    NOT NULL,
    ts              INTEGER NOT NULL,
    gpu_index       INTEGER NOT NULL,
    mig_index       INTEGER NOT NULL,
    uuid            TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    mem_used_bytes  INTEGER,
    mem_total_bytes INTEGER,
    PRIMARY KEY (site, host, ts, gpu_index, mig_index)
) WITHOUT ROWID;
CREATE INDEX mig_telemetry_ts ON mig_telemetry (ts);

CREATE TABLE server_metrics (
    site   TEXT    NOT NULL,
    host   TEXT    NOT NULL,
    ts     INTEGER NOT NULL,
    target TEXT    NOT NULL,
    model  TEXT    NOT NULL,
    metric TEXT    NOT NULL,
    value  REAL    NOT NULL,
    PRIMARY KEY (site, host, ts, target, model, metric)
) WITHOUT ROWID;
CREATE INDEX server_metrics_ts ON server_metrics (ts);
