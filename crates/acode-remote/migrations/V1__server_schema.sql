-- The server side of acode (DESIGN.md §5): tenants and devices, one mirror
-- table per entity with typed columns, the idempotency ledger, the stored
-- answers of pushed batches, the compacted change feed and the conflict log.

CREATE TABLE sync_tenants (
    id          text PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    disabled    boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sync_devices (
    id            text PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES sync_tenants (id),
    name          text NOT NULL,
    -- sha256 of the device token; NULL for a device of the direct transport.
    token_hash    bytea UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    last_seen_at  timestamptz
);
CREATE INDEX sync_devices_tenant ON sync_devices (tenant_id);

-- Mirror tables: the local columns plus the system columns the server
-- alone sets. Content columns are NULL for redacted and deleted rows.
-- Deleted rows stay as tombstones, so a late update cannot resurrect them.
CREATE TABLE chats (
    tenant_id      text NOT NULL REFERENCES sync_tenants (id),
    id             text NOT NULL,
    title          text,
    privacy        text NOT NULL CHECK (privacy IN ('full', 'redacted')),
    created_at     timestamptz,
    updated_at     timestamptz,
    version        bigint NOT NULL,
    hlc            text NOT NULL,
    origin_device  text NOT NULL,
    deleted        boolean NOT NULL DEFAULT false,
    server_seq     bigint NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE messages (
    tenant_id      text NOT NULL REFERENCES sync_tenants (id),
    id             text NOT NULL,
    chat_id        text NOT NULL,
    role           text NOT NULL CHECK (role IN ('user', 'assistant', 'system', 'tool')),
    content        text,
    privacy        text NOT NULL CHECK (privacy IN ('full', 'redacted')),
    created_at     timestamptz,
    version        bigint NOT NULL,
    hlc            text NOT NULL,
    origin_device  text NOT NULL,
    deleted        boolean NOT NULL DEFAULT false,
    server_seq     bigint NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, chat_id) REFERENCES chats (tenant_id, id)
);
CREATE INDEX messages_chat ON messages (tenant_id, chat_id);

CREATE TABLE sessions (
    tenant_id      text NOT NULL REFERENCES sync_tenants (id),
    id             text NOT NULL,
    title          text,
    status         text NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
    privacy        text NOT NULL CHECK (privacy IN ('full', 'redacted')),
    started_at     timestamptz,
    ended_at       timestamptz,
    version        bigint NOT NULL,
    hlc            text NOT NULL,
    origin_device  text NOT NULL,
    deleted        boolean NOT NULL DEFAULT false,
    server_seq     bigint NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE tasks (
    tenant_id      text NOT NULL REFERENCES sync_tenants (id),
    id             text NOT NULL,
    session_id     text NOT NULL,
    title          text,
    status         text NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
    created_at     timestamptz,
    version        bigint NOT NULL,
    hlc            text NOT NULL,
    origin_device  text NOT NULL,
    deleted        boolean NOT NULL DEFAULT false,
    server_seq     bigint NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, session_id) REFERENCES sessions (tenant_id, id)
);
CREATE INDEX tasks_session ON tasks (tenant_id, session_id);

CREATE TABLE steps (
    tenant_id      text NOT NULL REFERENCES sync_tenants (id),
    id             text NOT NULL,
    task_id        text NOT NULL,
    kind           text NOT NULL,
    status         text NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
    input          text,
    output         text,
    created_at     timestamptz,
    version        bigint NOT NULL,
    hlc            text NOT NULL,
    origin_device  text NOT NULL,
    deleted        boolean NOT NULL DEFAULT false,
    server_seq     bigint NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, task_id) REFERENCES tasks (tenant_id, id)
);
CREATE INDEX steps_task ON steps (tenant_id, task_id);

CREATE TABLE tool_calls (
    tenant_id      text NOT NULL REFERENCES sync_tenants (id),
    id             text NOT NULL,
    step_id        text NOT NULL,
    tool           text NOT NULL,
    arguments      text,
    result         text,
    status         text NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
    created_at     timestamptz,
    version        bigint NOT NULL,
    hlc            text NOT NULL,
    origin_device  text NOT NULL,
    deleted        boolean NOT NULL DEFAULT false,
    server_seq     bigint NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, step_id) REFERENCES steps (tenant_id, id)
);
CREATE INDEX tool_calls_step ON tool_calls (tenant_id, step_id);

CREATE TABLE artifacts (
    tenant_id      text NOT NULL REFERENCES sync_tenants (id),
    id             text NOT NULL,
    session_id     text NOT NULL,
    step_id        text,
    name           text,
    media_type     text NOT NULL,
    body           text,
    created_at     timestamptz,
    version        bigint NOT NULL,
    hlc            text NOT NULL,
    origin_device  text NOT NULL,
    deleted        boolean NOT NULL DEFAULT false,
    server_seq     bigint NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, session_id) REFERENCES sessions (tenant_id, id),
    FOREIGN KEY (tenant_id, step_id) REFERENCES steps (tenant_id, id)
);
CREATE INDEX artifacts_session ON artifacts (tenant_id, session_id);
CREATE INDEX artifacts_step ON artifacts (tenant_id, step_id);

-- One row per change a device pushed (rule 8): a repeated key returns the
-- stored result and applies nothing; the same key with another payload is
-- rejected. Pruned per device below the device's oldest unsettled key.
CREATE TABLE sync_idempotency (
    tenant_id     text NOT NULL,
    device_id     text NOT NULL,
    key           text NOT NULL,
    payload_hash  bytea NOT NULL,
    result        jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, device_id, key)
);

-- The answer to each pushed batch, so a repeated Idempotency-Key with the
-- same body gets the same answer, and with another body is refused.
CREATE TABLE sync_push_batches (
    tenant_id   text NOT NULL,
    device_id   text NOT NULL,
    batch_key   text NOT NULL,
    body_hash   bytea NOT NULL,
    response    jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, device_id, batch_key)
);

-- The change feed, compacted to the latest entry per row (rule 10). seq is
-- drawn under the tenant's transaction-scoped advisory lock, so within a
-- tenant seq order is commit order and a puller never skips a change.
CREATE SEQUENCE sync_changes_seq;
CREATE TABLE sync_changes (
    seq            bigint PRIMARY KEY,
    tenant_id      text NOT NULL,
    entity         text NOT NULL,
    entity_id      text NOT NULL,
    key            text NOT NULL,
    version        bigint NOT NULL,
    op             text NOT NULL CHECK (op IN ('upsert', 'delete')),
    data           jsonb,
    origin_device  text NOT NULL,
    hlc            text NOT NULL,
    UNIQUE (tenant_id, entity, entity_id)
);
CREATE INDEX sync_changes_feed ON sync_changes (tenant_id, seq);

-- Every conflict the server resolved, with both sides.
CREATE TABLE sync_conflict_log (
    id          bigserial PRIMARY KEY,
    tenant_id   text NOT NULL,
    device_id   text NOT NULL,
    entity      text NOT NULL,
    entity_id   text NOT NULL,
    key         text NOT NULL,
    policy      text NOT NULL,
    resolution  text NOT NULL,
    winner      jsonb NOT NULL,
    loser       jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sync_conflict_log_row ON sync_conflict_log (tenant_id, entity, entity_id);
