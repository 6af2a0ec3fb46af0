-- Collector replicas on this database and their heartbeats (issue 14): a replica without
-- cluster mode refuses to start next to another live one.
CREATE TABLE replicas (
    id          text NOT NULL PRIMARY KEY,
    host        text NOT NULL,
    pid         bigint NOT NULL,
    grpc        text NOT NULL,
    http        text NOT NULL,
    cluster     text,
    started_at  bigint NOT NULL,
    seen_at     bigint NOT NULL
);
