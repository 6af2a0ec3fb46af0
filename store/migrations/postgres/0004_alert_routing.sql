-- Grouping, routing and silences (times: Unix µs).
-- A notification now carries the group it is delivered in and the labels routing and
-- silences matched; state gains 'suppressed' (silenced: recorded, never sent).
ALTER TABLE notifications ADD COLUMN group_key text NOT NULL DEFAULT '';
ALTER TABLE notifications ADD COLUMN violation_id text NOT NULL DEFAULT '';
ALTER TABLE notifications ADD COLUMN labels text NOT NULL DEFAULT '{}';
ALTER TABLE notifications ADD COLUMN created_at bigint NOT NULL DEFAULT 0;
CREATE INDEX notifications_group ON notifications (channel, group_key, state);

-- One row per (channel, group): when it last went out and when it is next due.
CREATE TABLE alert_groups (
    channel       text NOT NULL,
    group_key     text NOT NULL,
    last_sent_at  bigint NOT NULL DEFAULT 0,
    next_due      bigint NOT NULL,            -- 9223372036854775807 = nothing due
    claimed_until bigint NOT NULL DEFAULT 0,
    attempts      bigint NOT NULL DEFAULT 0,  -- failed repeat sends in a row
    PRIMARY KEY (channel, group_key)
);
CREATE INDEX alert_groups_due ON alert_groups (next_due);

CREATE TABLE routes (
    id          BIGSERIAL PRIMARY KEY,
    position    bigint NOT NULL,
    matchers    text NOT NULL,                 -- JSON {label: value | "~regex"}
    channels    text NOT NULL,                 -- JSON array of channel names
    continue_matching bigint NOT NULL DEFAULT 0,
    source      text NOT NULL DEFAULT 'api',   -- config | api
    created_at  bigint NOT NULL
);

CREATE TABLE silences (
    id          text NOT NULL PRIMARY KEY,
    matchers    text NOT NULL,                 -- JSON {label: value | "~regex"}
    starts_at   bigint NOT NULL,
    ends_at     bigint NOT NULL,
    comment     text NOT NULL,
    created_by  text NOT NULL,
    created_at  bigint NOT NULL,
    source      text NOT NULL DEFAULT 'api'
);
CREATE INDEX silences_ends ON silences (ends_at);
