-- The application data of a workspace. Ids are ULIDs; times are RFC 3339
-- UTC strings with milliseconds, which sort as text.

CREATE TABLE chats (
    id          TEXT PRIMARY KEY NOT NULL,
    title       TEXT NOT NULL CHECK (length(title) > 0),
    privacy     TEXT NOT NULL DEFAULT 'full' CHECK (privacy IN ('full', 'redacted', 'local_only')),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX chats_created ON chats (created_at, id);

CREATE TABLE messages (
    id          TEXT PRIMARY KEY NOT NULL,
    chat_id     TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'system', 'tool')),
    content     TEXT NOT NULL,
    privacy     TEXT NOT NULL DEFAULT 'full' CHECK (privacy IN ('full', 'redacted', 'local_only')),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX messages_chat ON messages (chat_id, created_at, id);

-- Run records: a session has tasks, a task has steps, a step has tool calls;
-- artifacts belong to a session and optionally to one of its steps. Privacy
-- is set on the session and inherited by everything under it.
CREATE TABLE sessions (
    id          TEXT PRIMARY KEY NOT NULL,
    title       TEXT NOT NULL CHECK (length(title) > 0),
    status      TEXT NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
    privacy     TEXT NOT NULL DEFAULT 'full' CHECK (privacy IN ('full', 'redacted', 'local_only')),
    started_at  TEXT NOT NULL,
    ended_at    TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX sessions_created ON sessions (created_at, id);

CREATE TABLE tasks (
    id          TEXT PRIMARY KEY NOT NULL,
    session_id  TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    title       TEXT NOT NULL CHECK (length(title) > 0),
    status      TEXT NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX tasks_session ON tasks (session_id, created_at, id);

CREATE TABLE steps (
    id          TEXT PRIMARY KEY NOT NULL,
    task_id     TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (length(kind) > 0),
    status      TEXT NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
    input       TEXT,
    output      TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX steps_task ON steps (task_id, created_at, id);

CREATE TABLE tool_calls (
    id          TEXT PRIMARY KEY NOT NULL,
    step_id     TEXT NOT NULL REFERENCES steps (id) ON DELETE CASCADE,
    tool        TEXT NOT NULL CHECK (length(tool) > 0),
    arguments   TEXT NOT NULL,
    result      TEXT,
    status      TEXT NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX tool_calls_step ON tool_calls (step_id, created_at, id);

CREATE TABLE artifacts (
    id          TEXT PRIMARY KEY NOT NULL,
    session_id  TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    step_id     TEXT REFERENCES steps (id) ON DELETE CASCADE,
    name        TEXT NOT NULL CHECK (length(name) > 0),
    media_type  TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX artifacts_session ON artifacts (session_id, created_at, id);
CREATE INDEX artifacts_step ON artifacts (step_id);
