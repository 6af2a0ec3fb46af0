-- Alert delivery: channels, one notification per (outbox row, channel), and the delivery log.
CREATE TABLE channels (
    name         TEXT NOT NULL PRIMARY KEY,
    kind         TEXT NOT NULL,              -- webhook (slack, pagerduty, email: later)
    config       TEXT NOT NULL,              -- JSON without secrets
    secret       TEXT NOT NULL DEFAULT '',   -- never returned by the API nor logged
    max_attempts INTEGER NOT NULL DEFAULT 8,
    source       TEXT NOT NULL DEFAULT 'api', -- config | api
    created_at   INTEGER NOT NULL
);

CREATE TABLE notifications (
    outbox_id       INTEGER NOT NULL,
    channel         TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending', -- pending | delivered | dead
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    claimed_until   INTEGER NOT NULL DEFAULT 0,
    delivered_at    INTEGER,
    last_error      TEXT,
    PRIMARY KEY (outbox_id, channel)
);
CREATE INDEX notifications_due ON notifications (state, next_attempt_at);

CREATE TABLE deliveries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    outbox_id   INTEGER NOT NULL,
    channel     TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    status_code INTEGER,
    error       TEXT,
    duration_ms REAL NOT NULL,
    outcome     TEXT NOT NULL                -- delivered | retry | dead
);
