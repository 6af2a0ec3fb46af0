-- Collector replicas on this database and their heartbeats (issue 14): a replica without
-- cluster mode refuses to start next to another live one.
CREATE TABLE replicas (
    id          TEXT NOT NULL PRIMARY KEY,
    host        TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    grpc        TEXT NOT NULL,
    http        TEXT NOT NULL,
    cluster     TEXT,
    started_at  INTEGER NOT NULL,
    seen_at     INTEGER NOT NULL
);
