-- Alert delivery: channels, one notification per (outbox row, channel), and the delivery log.
CREATE TABLE channels (
    name         text NOT NULL PRIMARY KEY,
    kind         text NOT NULL,              -- webhook (slack, pagerduty, email: later)
    config       text NOT NULL,              -- JSON without secrets
    secret       text NOT NULL DEFAULT '',   -- never returned by the API nor logged
    max_attempts bigint NOT NULL DEFAULT 8,
    source       text NOT NULL DEFAULT 'api', -- config | api
    created_at   bigint NOT NULL
);

CREATE TABLE notifications (
    outbox_id       bigint NOT NULL,
    channel         text NOT NULL,
    state           text NOT NULL DEFAULT 'pending', -- pending | delivered | dead
    attempts        bigint NOT NULL DEFAULT 0,
    next_attempt_at bigint NOT NULL DEFAULT 0,
    claimed_until   bigint NOT NULL DEFAULT 0,
    delivered_at    bigint,
    last_error      text,
    PRIMARY KEY (outbox_id, channel)
);
CREATE INDEX notifications_due ON notifications (state, next_attempt_at);

CREATE TABLE deliveries (
    id          BIGSERIAL PRIMARY KEY,
    outbox_id   bigint NOT NULL,
    channel     text NOT NULL,
    attempt     bigint NOT NULL,
    at          bigint NOT NULL,
    status_code bigint,
    error       text,
    duration_ms double precision NOT NULL,
    outcome     text NOT NULL                -- delivered | retry | dead
);
