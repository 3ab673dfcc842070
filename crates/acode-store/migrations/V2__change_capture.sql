-- Change capture (DESIGN.md §4, §15 rules 7, 11, 12).
--
-- Every write to a synced table leaves one sync_outbox entry in the same
-- transaction, and nothing else: one B-tree row is the whole cost of
-- capture on the write path (each further table or index written there
-- measured +15-40 % per commit). The entry records what changed (entity, id,
-- op), when (HLC) and the delivery state; the payload is read from the row
-- when the batch is built, redacted by the row's effective privacy at that
-- moment, and frozen on the entry when first sent. Per-row sync state is
-- derived (the sync_row_state view) from the outbox and from what the sync
-- engine records when it settles or applies (sync_row_remote).
--
-- In insert and update triggers a child's parent must exist
-- (acode_present raises otherwise, e.g. a child written first under
-- deferred foreign keys); in delete triggers a missing parent means the
-- child goes with it by cascade, which the parent's delete covers.
--
-- The triggers call functions that only a connection opened by acode
-- registers (acode_capture, acode_key, acode_hlc, ...): a write from any
-- other connection fails with "no such function" instead of going
-- uncaptured. acode_capture() is 0 while the engine applies remote changes
-- and while migrations run.

-- Key/value state of the device and the engine: device_id, hlc_floor (the
-- latest HLC observed from the remote), cursor, paused, last_push_at, ...
CREATE TABLE sync_state (
    key    TEXT PRIMARY KEY NOT NULL,
    value  TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE sync_outbox (
    -- The local order of changes (rule 12), never the ULID's clock. Entries
    -- are referred to by key, never by seq; seq only orders those present.
    seq            INTEGER PRIMARY KEY,
    -- The change's idempotency key (ULID, from a monotonic generator). Not
    -- indexed: every capture would pay for it. The engine finds entries by
    -- seq, by batch, or by scanning the (short) queue of unsettled ones.
    key            TEXT NOT NULL,
    entity         TEXT NOT NULL,
    entity_id      TEXT NOT NULL,
    op             TEXT NOT NULL CHECK (op IN ('create', 'update', 'delete')),
    hlc            TEXT NOT NULL,
    status         TEXT NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'in_flight', 'synced', 'failed', 'superseded')),
    attempts       INTEGER NOT NULL DEFAULT 0,
    -- Unix milliseconds; NULL means due now.
    next_retry_at  INTEGER,
    last_error     TEXT,
    -- Set when the entry is first sent (frozen batch, rule 1).
    batch_key      TEXT,
    base_version   INTEGER,
    payload        TEXT,
    created_at     INTEGER NOT NULL,
    settled_at     INTEGER
);

-- The newest entry is never deleted (pruning skips it), so seq is never
-- reused and the HLC floor read from it survives any pruning (rule 12).
CREATE TRIGGER sync_outbox_keep_newest BEFORE DELETE ON sync_outbox
WHEN OLD.seq = (SELECT max(seq) FROM sync_outbox)
BEGIN
    SELECT RAISE(IGNORE);
END;

-- What the remote knows of each row, written by the sync engine when it
-- settles an upload or applies a download, never by capture.
CREATE TABLE sync_row_remote (
    entity          TEXT NOT NULL,
    entity_id       TEXT NOT NULL,
    -- The server's version of the row as last seen (0: never reached it).
    server_version  INTEGER NOT NULL DEFAULT 0,
    -- The outcome of the row's last settled change.
    status          TEXT NOT NULL CHECK (status IN ('synced', 'conflict', 'failed')),
    last_error      TEXT,
    -- The seq of the last local change the remote has settled (0: none).
    settled_seq     INTEGER NOT NULL DEFAULT 0,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (entity, entity_id)
) WITHOUT ROWID;

-- The sync state of every row that was ever captured or synced:
-- local_version is the seq of the row's latest local change; status is
-- 'pending' while a change of the row waits or is on its way, 'failed' when
-- its latest change failed, else what the remote said (synced, conflict,
-- failed). A conflict shows until the engine records that the user has
-- seen it (DESIGN.md §8), even over newer local changes.
CREATE VIEW sync_row_state
    (entity, entity_id, local_version, server_version, status, last_error, updated_at) AS
WITH unsettled AS (
    SELECT entity, entity_id, max(seq) AS seq
    FROM sync_outbox
    WHERE status IN ('pending', 'in_flight', 'failed')
    GROUP BY entity, entity_id
),
keys AS (
    SELECT entity, entity_id FROM unsettled
    UNION
    SELECT entity, entity_id FROM sync_row_remote
)
SELECT k.entity, k.entity_id,
       coalesce(u.seq, r.settled_seq),
       coalesce(r.server_version, 0),
       CASE WHEN r.status = 'conflict' THEN 'conflict'
            WHEN u.seq IS NULL THEN r.status
            WHEN o.status = 'failed' THEN 'failed'
            ELSE 'pending' END,
       CASE WHEN u.seq IS NULL THEN r.last_error ELSE o.last_error END,
       coalesce(o.created_at, r.updated_at)
FROM keys k
LEFT JOIN unsettled u ON u.entity = k.entity AND u.entity_id = k.entity_id
LEFT JOIN sync_outbox o ON o.seq = u.seq
LEFT JOIN sync_row_remote r ON r.entity = k.entity AND r.entity_id = k.entity_id;

-- The losing side of every conflict (DESIGN.md §8).
CREATE TABLE sync_conflicts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    entity          TEXT NOT NULL,
    entity_id       TEXT NOT NULL,
    local_version   INTEGER NOT NULL,
    remote_version  INTEGER NOT NULL,
    resolution      TEXT NOT NULL,
    loser           TEXT NOT NULL,
    preserved_path  TEXT,
    created_at      INTEGER NOT NULL,
    acked_at        INTEGER
);

-- What the engine did, for `sync status` and diagnosis.
CREATE TABLE sync_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    count   INTEGER NOT NULL DEFAULT 0,
    detail  TEXT
);
CREATE INDEX sync_log_at ON sync_log (at);

-- The one place where an entry is made: every capture trigger inserts
-- (entity, entity_id, op) here, and this trigger fills in the key, the HLC
-- (never behind the last entry nor the remote floor) and the time.
CREATE VIEW sync_capture (entity, entity_id, op) AS
    SELECT entity, entity_id, op FROM sync_outbox WHERE 0;

CREATE TRIGGER sync_capture_insert INSTEAD OF INSERT ON sync_capture
BEGIN
    INSERT INTO sync_outbox (key, entity, entity_id, op, hlc, created_at)
    VALUES (acode_key(), NEW.entity, NEW.entity_id, NEW.op,
            acode_hlc((SELECT hlc FROM sync_outbox ORDER BY seq DESC LIMIT 1),
                      (SELECT value FROM sync_state WHERE key = 'hlc_floor')),
            acode_now());
END;

-- Ids and parents never change: a row moved to another id or parent would
-- need its old place deleted remotely and its descendants re-evaluated.
-- The API never does it; any other UPDATE that tries is refused. These
-- fire only for UPDATEs that name such a column, so they cost nothing else.
CREATE TRIGGER chats_keys_fixed BEFORE UPDATE OF id ON chats
WHEN OLD.id IS NOT NEW.id
BEGIN SELECT RAISE(ABORT, 'acode: a row''s id and parent cannot change'); END;
CREATE TRIGGER messages_keys_fixed BEFORE UPDATE OF id, chat_id ON messages
WHEN OLD.id IS NOT NEW.id OR OLD.chat_id IS NOT NEW.chat_id
BEGIN SELECT RAISE(ABORT, 'acode: a row''s id and parent cannot change'); END;
CREATE TRIGGER sessions_keys_fixed BEFORE UPDATE OF id ON sessions
WHEN OLD.id IS NOT NEW.id
BEGIN SELECT RAISE(ABORT, 'acode: a row''s id and parent cannot change'); END;
CREATE TRIGGER tasks_keys_fixed BEFORE UPDATE OF id, session_id ON tasks
WHEN OLD.id IS NOT NEW.id OR OLD.session_id IS NOT NEW.session_id
BEGIN SELECT RAISE(ABORT, 'acode: a row''s id and parent cannot change'); END;
CREATE TRIGGER steps_keys_fixed BEFORE UPDATE OF id, task_id ON steps
WHEN OLD.id IS NOT NEW.id OR OLD.task_id IS NOT NEW.task_id
BEGIN SELECT RAISE(ABORT, 'acode: a row''s id and parent cannot change'); END;
CREATE TRIGGER tool_calls_keys_fixed BEFORE UPDATE OF id, step_id ON tool_calls
WHEN OLD.id IS NOT NEW.id OR OLD.step_id IS NOT NEW.step_id
BEGIN SELECT RAISE(ABORT, 'acode: a row''s id and parent cannot change'); END;
CREATE TRIGGER artifacts_keys_fixed BEFORE UPDATE OF id, session_id, step_id ON artifacts
WHEN OLD.id IS NOT NEW.id OR OLD.session_id IS NOT NEW.session_id OR OLD.step_id IS NOT NEW.step_id
BEGIN SELECT RAISE(ABORT, 'acode: a row''s id and parent cannot change'); END;

-- Chats --------------------------------------------------------------------

CREATE TRIGGER chats_capture_insert AFTER INSERT ON chats
WHEN acode_capture() AND NEW.privacy != 'local_only'
BEGIN
    INSERT INTO sync_capture VALUES ('chat', NEW.id, 'create');
END;

-- A privacy change reaches every message whose effective level it changes,
-- in the same transaction (rule 7).
CREATE TRIGGER chats_capture_update AFTER UPDATE ON chats
WHEN acode_capture() AND NOT (OLD.privacy = 'local_only' AND NEW.privacy = 'local_only')
BEGIN
    INSERT INTO sync_capture VALUES ('chat', NEW.id, acode_op(OLD.privacy, NEW.privacy));
    INSERT INTO sync_capture
        SELECT 'message', m.id,
               acode_op(acode_stricter(OLD.privacy, m.privacy), acode_stricter(NEW.privacy, m.privacy))
        FROM messages m
        WHERE OLD.privacy != NEW.privacy
          AND m.chat_id = NEW.id
          AND acode_stricter(OLD.privacy, m.privacy) != acode_stricter(NEW.privacy, m.privacy)
        ORDER BY m.id;
END;

-- Messages deleted with their chat are not captured: the chat's delete
-- covers them (the server cascades, rule 6).
CREATE TRIGGER chats_capture_delete AFTER DELETE ON chats
WHEN acode_capture() AND OLD.privacy != 'local_only'
BEGIN
    INSERT INTO sync_capture VALUES ('chat', OLD.id, 'delete');
END;

-- Messages -----------------------------------------------------------------

CREATE TRIGGER messages_capture_insert AFTER INSERT ON messages
WHEN acode_capture()
 AND acode_stricter(NEW.privacy, acode_present((SELECT privacy FROM chats WHERE id = NEW.chat_id))) != 'local_only'
BEGIN
    INSERT INTO sync_capture VALUES ('message', NEW.id, 'create');
END;

CREATE TRIGGER messages_capture_update AFTER UPDATE ON messages
WHEN acode_capture()
BEGIN
    INSERT INTO sync_capture
        SELECT 'message', NEW.id, acode_op(o, n)
        FROM (SELECT acode_stricter(OLD.privacy, acode_present((SELECT privacy FROM chats WHERE id = OLD.chat_id))) AS o,
                     acode_stricter(NEW.privacy, acode_present((SELECT privacy FROM chats WHERE id = NEW.chat_id))) AS n)
        WHERE o IS NOT NULL AND n IS NOT NULL AND NOT (o = 'local_only' AND n = 'local_only');
END;

-- When the chat is gone this is a cascade: the stricter-of is NULL and
-- nothing is captured.
CREATE TRIGGER messages_capture_delete AFTER DELETE ON messages
WHEN acode_capture()
 AND acode_stricter(OLD.privacy, (SELECT privacy FROM chats WHERE id = OLD.chat_id)) != 'local_only'
BEGIN
    INSERT INTO sync_capture VALUES ('message', OLD.id, 'delete');
END;

-- Sessions -----------------------------------------------------------------

CREATE TRIGGER sessions_capture_insert AFTER INSERT ON sessions
WHEN acode_capture() AND NEW.privacy != 'local_only'
BEGIN
    INSERT INTO sync_capture VALUES ('session', NEW.id, 'create');
END;

-- Everything under a session inherits its level: a privacy change reaches
-- all of it, parents before children.
CREATE TRIGGER sessions_capture_update AFTER UPDATE ON sessions
WHEN acode_capture() AND NOT (OLD.privacy = 'local_only' AND NEW.privacy = 'local_only')
BEGIN
    INSERT INTO sync_capture VALUES ('session', NEW.id, acode_op(OLD.privacy, NEW.privacy));
    INSERT INTO sync_capture
        SELECT 'task', t.id, acode_op(OLD.privacy, NEW.privacy)
        FROM tasks t
        WHERE OLD.privacy != NEW.privacy AND t.session_id = NEW.id
        ORDER BY t.id;
    INSERT INTO sync_capture
        SELECT 'step', st.id, acode_op(OLD.privacy, NEW.privacy)
        FROM steps st JOIN tasks t ON t.id = st.task_id
        WHERE OLD.privacy != NEW.privacy AND t.session_id = NEW.id
        ORDER BY st.id;
    INSERT INTO sync_capture
        SELECT 'tool_call', tc.id, acode_op(OLD.privacy, NEW.privacy)
        FROM tool_calls tc JOIN steps st ON st.id = tc.step_id JOIN tasks t ON t.id = st.task_id
        WHERE OLD.privacy != NEW.privacy AND t.session_id = NEW.id
        ORDER BY tc.id;
    INSERT INTO sync_capture
        SELECT 'artifact', a.id, acode_op(OLD.privacy, NEW.privacy)
        FROM artifacts a
        WHERE OLD.privacy != NEW.privacy AND a.session_id = NEW.id
        ORDER BY a.id;
END;

CREATE TRIGGER sessions_capture_delete AFTER DELETE ON sessions
WHEN acode_capture() AND OLD.privacy != 'local_only'
BEGIN
    INSERT INTO sync_capture VALUES ('session', OLD.id, 'delete');
END;

-- Tasks, steps, tool calls, artifacts: the level is the session's ----------

CREATE TRIGGER tasks_capture_insert AFTER INSERT ON tasks
WHEN acode_capture()
 AND acode_present((SELECT privacy FROM sessions WHERE id = NEW.session_id)) != 'local_only'
BEGIN
    INSERT INTO sync_capture VALUES ('task', NEW.id, 'create');
END;

CREATE TRIGGER tasks_capture_update AFTER UPDATE ON tasks
WHEN acode_capture()
BEGIN
    INSERT INTO sync_capture
        SELECT 'task', NEW.id, acode_op(o, n)
        FROM (SELECT acode_present((SELECT privacy FROM sessions WHERE id = OLD.session_id)) AS o,
                     acode_present((SELECT privacy FROM sessions WHERE id = NEW.session_id)) AS n)
        WHERE o IS NOT NULL AND n IS NOT NULL AND NOT (o = 'local_only' AND n = 'local_only');
END;

CREATE TRIGGER tasks_capture_delete AFTER DELETE ON tasks
WHEN acode_capture()
 AND (SELECT privacy FROM sessions WHERE id = OLD.session_id) != 'local_only'
BEGIN
    INSERT INTO sync_capture VALUES ('task', OLD.id, 'delete');
END;

CREATE TRIGGER steps_capture_insert AFTER INSERT ON steps
WHEN acode_capture()
 AND acode_present((SELECT s.privacy FROM tasks t JOIN sessions s ON s.id = t.session_id
      WHERE t.id = NEW.task_id)) != 'local_only'
BEGIN
    INSERT INTO sync_capture VALUES ('step', NEW.id, 'create');
END;

CREATE TRIGGER steps_capture_update AFTER UPDATE ON steps
WHEN acode_capture()
BEGIN
    INSERT INTO sync_capture
        SELECT 'step', NEW.id, acode_op(o, n)
        FROM (SELECT acode_present((SELECT s.privacy FROM tasks t JOIN sessions s ON s.id = t.session_id
                      WHERE t.id = OLD.task_id)) AS o,
                     acode_present((SELECT s.privacy FROM tasks t JOIN sessions s ON s.id = t.session_id
                      WHERE t.id = NEW.task_id)) AS n)
        WHERE o IS NOT NULL AND n IS NOT NULL AND NOT (o = 'local_only' AND n = 'local_only');
END;

CREATE TRIGGER steps_capture_delete AFTER DELETE ON steps
WHEN acode_capture()
 AND (SELECT s.privacy FROM tasks t JOIN sessions s ON s.id = t.session_id
      WHERE t.id = OLD.task_id) != 'local_only'
BEGIN
    INSERT INTO sync_capture VALUES ('step', OLD.id, 'delete');
END;

CREATE TRIGGER tool_calls_capture_insert AFTER INSERT ON tool_calls
WHEN acode_capture()
 AND acode_present((SELECT s.privacy FROM steps st JOIN tasks t ON t.id = st.task_id
      JOIN sessions s ON s.id = t.session_id WHERE st.id = NEW.step_id)) != 'local_only'
BEGIN
    INSERT INTO sync_capture VALUES ('tool_call', NEW.id, 'create');
END;

CREATE TRIGGER tool_calls_capture_update AFTER UPDATE ON tool_calls
WHEN acode_capture()
BEGIN
    INSERT INTO sync_capture
        SELECT 'tool_call', NEW.id, acode_op(o, n)
        FROM (SELECT acode_present((SELECT s.privacy FROM steps st JOIN tasks t ON t.id = st.task_id
                      JOIN sessions s ON s.id = t.session_id WHERE st.id = OLD.step_id)) AS o,
                     acode_present((SELECT s.privacy FROM steps st JOIN tasks t ON t.id = st.task_id
                      JOIN sessions s ON s.id = t.session_id WHERE st.id = NEW.step_id)) AS n)
        WHERE o IS NOT NULL AND n IS NOT NULL AND NOT (o = 'local_only' AND n = 'local_only');
END;

CREATE TRIGGER tool_calls_capture_delete AFTER DELETE ON tool_calls
WHEN acode_capture()
 AND (SELECT s.privacy FROM steps st JOIN tasks t ON t.id = st.task_id
      JOIN sessions s ON s.id = t.session_id WHERE st.id = OLD.step_id) != 'local_only'
BEGIN
    INSERT INTO sync_capture VALUES ('tool_call', OLD.id, 'delete');
END;

CREATE TRIGGER artifacts_capture_insert AFTER INSERT ON artifacts
WHEN acode_capture()
 AND acode_present((SELECT privacy FROM sessions WHERE id = NEW.session_id)) != 'local_only'
BEGIN
    INSERT INTO sync_capture VALUES ('artifact', NEW.id, 'create');
END;

CREATE TRIGGER artifacts_capture_update AFTER UPDATE ON artifacts
WHEN acode_capture()
BEGIN
    INSERT INTO sync_capture
        SELECT 'artifact', NEW.id, acode_op(o, n)
        FROM (SELECT acode_present((SELECT privacy FROM sessions WHERE id = OLD.session_id)) AS o,
                     acode_present((SELECT privacy FROM sessions WHERE id = NEW.session_id)) AS n)
        WHERE o IS NOT NULL AND n IS NOT NULL AND NOT (o = 'local_only' AND n = 'local_only');
END;

-- An artifact of a step deleted with the step is a cascade, like one deleted
-- with its session: not captured.
CREATE TRIGGER artifacts_capture_delete AFTER DELETE ON artifacts
WHEN acode_capture()
 AND (SELECT privacy FROM sessions WHERE id = OLD.session_id) != 'local_only'
 AND (OLD.step_id IS NULL OR EXISTS (SELECT 1 FROM steps WHERE id = OLD.step_id))
BEGIN
    INSERT INTO sync_capture VALUES ('artifact', OLD.id, 'delete');
END;
