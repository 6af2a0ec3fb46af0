-- Issue 17: GPU readings a device does not support are absent (NULL), never 0; volatile ECC
-- counts and the XID errors reported since the previous snapshot; MIG instances in a table of
-- their own (keyed by their GPU's index and the instance index); gauges read from the host's
-- model servers (vLLM /metrics, Ollama /api/ps).
ALTER TABLE gpu_telemetry
    ALTER COLUMN util_pct DROP NOT NULL,
    ALTER COLUMN mem_used_bytes DROP NOT NULL,
    ALTER COLUMN mem_total_bytes DROP NOT NULL,
    ALTER COLUMN temp_c DROP NOT NULL,
    ALTER COLUMN power_w DROP NOT NULL,
    ALTER COLUMN sm_clock_mhz DROP NOT NULL,
    ALTER COLUMN throttle_reasons DROP NOT NULL,
    ADD COLUMN ecc_corrected_volatile bigint,
    ADD COLUMN ecc_uncorrected_volatile bigint,
    ADD COLUMN xid_errors text;

CREATE TABLE mig_telemetry (
    site            text        NOT NULL,
    host            text        NOT NULL,
    ts              timestamptz NOT NULL,
    gpu_index       integer     NOT NULL,
    mig_index       integer     NOT NULL,
    uuid            text        NOT NULL,
    name            text        NOT NULL,
    mem_used_bytes  bigint,
    mem_total_bytes bigint,
    PRIMARY KEY (site, host, ts, gpu_index, mig_index)
);

CREATE TABLE server_metrics (
    site   text             NOT NULL,
    host   text             NOT NULL,
    ts     timestamptz      NOT NULL,
    target text             NOT NULL,
    model  text             NOT NULL,
    metric text             NOT NULL,
    value  double precision NOT NULL,
    PRIMARY KEY (site, host, ts, target, model, metric)
);
