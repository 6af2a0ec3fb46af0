-- Who may see and change what (issue 15): users, sessions, personal tokens, the audit log and
-- pending OpenID Connect sign-ins. Times are Unix µs.
CREATE TABLE users (
    id                  TEXT    NOT NULL PRIMARY KEY,
    email               TEXT    NOT NULL UNIQUE,
    name                TEXT    NOT NULL DEFAULT '',
    role                TEXT    NOT NULL,
    sites               TEXT,
    password_hash       TEXT,
    oidc_subject        TEXT    UNIQUE,
    disabled_at         INTEGER,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    last_login_at       INTEGER,
    password_changed_at INTEGER
);

CREATE TABLE sessions (
    id          TEXT    NOT NULL PRIMARY KEY,
    user_id     TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    seen_at     INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    client      TEXT    NOT NULL DEFAULT '',
    user_agent  TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user ON sessions (user_id);

-- personal API tokens act as their user
ALTER TABLE tokens ADD COLUMN user_id TEXT REFERENCES users (id) ON DELETE CASCADE;
CREATE INDEX tokens_user ON tokens (user_id);

CREATE TABLE audit (
    id      INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    actor   TEXT    NOT NULL,
    role    TEXT    NOT NULL,
    client  TEXT    NOT NULL DEFAULT '',
    action  TEXT    NOT NULL,
    target  TEXT    NOT NULL DEFAULT '',
    before  TEXT,
    after   TEXT
);
CREATE INDEX audit_at ON audit (at);

-- append-only: rows are never changed (the retention job deletes whole old rows)
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TABLE oidc_pending (
    state         TEXT    NOT NULL PRIMARY KEY,
    nonce         TEXT    NOT NULL,
    pkce_verifier TEXT    NOT NULL,
    return_to     TEXT    NOT NULL DEFAULT '/',
    created_at    INTEGER NOT NULL
);
