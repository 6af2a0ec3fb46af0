-- Grouping, routing and silences (times: Unix µs).
-- A notification now carries the group it is delivered in and the labels routing and
-- silences matched; state gains 'suppressed' (silenced: recorded, never sent).
ALTER TABLE notifications ADD COLUMN group_key TEXT NOT NULL DEFAULT '';
ALTER TABLE notifications ADD COLUMN violation_id TEXT NOT NULL DEFAULT '';
ALTER TABLE notifications ADD COLUMN labels TEXT NOT NULL DEFAULT '{}';
ALTER TABLE notifications ADD COLUMN created_at INTEGER NOT NULL DEFAULT 0;
CREATE INDEX notifications_group ON notifications (channel, group_key, state);

-- One row per (channel, group): when it last went out and when it is next due.
CREATE TABLE alert_groups (
    channel       TEXT NOT NULL,
    group_key     TEXT NOT NULL,
    last_sent_at  INTEGER NOT NULL DEFAULT 0,
    next_due      INTEGER NOT NULL,            -- 9223372036854775807 = nothing due
    claimed_until INTEGER NOT NULL DEFAULT 0,
    attempts      INTEGER NOT NULL DEFAULT 0,  -- failed repeat sends in a row
    PRIMARY KEY (channel, group_key)
);
CREATE INDEX alert_groups_due ON alert_groups (next_due);

CREATE TABLE routes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    position    INTEGER NOT NULL,
    matchers    TEXT NOT NULL,                 -- JSON {label: value | "~regex"}
    channels    TEXT NOT NULL,                 -- JSON array of channel names
    continue_matching INTEGER NOT NULL DEFAULT 0,
    source      TEXT NOT NULL DEFAULT 'api',   -- config | api
    created_at  INTEGER NOT NULL
);

CREATE TABLE silences (
    id          TEXT NOT NULL PRIMARY KEY,
    matchers    TEXT NOT NULL,                 -- JSON {label: value | "~regex"}
    starts_at   INTEGER NOT NULL,
    ends_at     INTEGER NOT NULL,
    comment     TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    source      TEXT NOT NULL DEFAULT 'api'
);
CREATE INDEX silences_ends ON silences (ends_at);
