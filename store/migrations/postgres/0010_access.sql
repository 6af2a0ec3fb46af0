-- Who may see and change what (issue 15): users, sessions, personal tokens, the audit log and
-- pending OpenID Connect sign-ins. Times are Unix µs.
CREATE TABLE users (
    id                  text   NOT NULL PRIMARY KEY,
    email               text   NOT NULL UNIQUE,
    name                text   NOT NULL DEFAULT '',
    role                text   NOT NULL,
    sites               text,
    password_hash       text,
    oidc_subject        text   UNIQUE,
    disabled_at         bigint,
    created_at          bigint NOT NULL,
    updated_at          bigint NOT NULL,
    last_login_at       bigint,
    password_changed_at bigint
);

CREATE TABLE sessions (
    id          text   NOT NULL PRIMARY KEY,
    user_id     text   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf        text   NOT NULL,
    created_at  bigint NOT NULL,
    seen_at     bigint NOT NULL,
    expires_at  bigint NOT NULL,
    client      text   NOT NULL DEFAULT '',
    user_agent  text   NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user ON sessions (user_id);

-- personal API tokens act as their user
ALTER TABLE tokens ADD COLUMN user_id text REFERENCES users (id) ON DELETE CASCADE;
CREATE INDEX tokens_user ON tokens (user_id);

CREATE TABLE audit (
    id      bigserial NOT NULL PRIMARY KEY,
    at      bigint    NOT NULL,
    actor   text      NOT NULL,
    role    text      NOT NULL,
    client  text      NOT NULL DEFAULT '',
    action  text      NOT NULL,
    target  text      NOT NULL DEFAULT '',
    before  text,
    after   text
);
CREATE INDEX audit_at ON audit (at);

-- append-only: rows are never changed (the retention job deletes whole old rows)
CREATE FUNCTION llmscope_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END
$$;
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    FOR EACH ROW EXECUTE FUNCTION llmscope_audit_append_only();

CREATE TABLE oidc_pending (
    state         text   NOT NULL PRIMARY KEY,
    nonce         text   NOT NULL,
    pkce_verifier text   NOT NULL,
    return_to     text   NOT NULL DEFAULT '/',
    created_at    bigint NOT NULL
);
