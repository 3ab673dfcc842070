-- Cheaper capture: the same entries, fewer microseconds per captured write
-- (DESIGN.md §4's cost budget; measured in docs/BENCHMARKS.md).
--
-- 1. sync_outbox's CHECK constraints allowed values through `x IN (a, b, c)`.
--    SQLite evaluates an IN list of more than two constants by building a
--    temporary index of it each time the statement runs, so every captured
--    write built two of them: about 3 µs, 15 % of a whole plain commit at
--    durability normal. The same values are now allowed through `x = a OR
--    x = b ...`, which compares in place. The table is rebuilt to change its
--    CHECKs (SQLite cannot alter them); seq, and so the local order and the
--    newest entry, carry over unchanged.
-- 2. The insert and update triggers of messages and run records read the
--    inherited privacy in plain SQL: acode_present() is called only when the
--    parent is missing (to refuse the write), acode_stricter() and acode_op()
--    only on a privacy change. An update that leaves a row's privacy alone
--    runs only a one-row trigger. The entries captured are the same.

-- The views and the capture trigger name sync_outbox by text; with the
-- legacy rename they are not re-parsed while the table is briefly absent,
-- and they resolve to the rebuilt table afterwards.
PRAGMA legacy_alter_table = ON;

CREATE TABLE sync_outbox_v7 (
    seq            INTEGER PRIMARY KEY,
    key            TEXT NOT NULL,
    entity         TEXT NOT NULL,
    entity_id      TEXT NOT NULL,
    op             TEXT NOT NULL CHECK (op = 'create' OR op = 'update' OR op = 'delete'),
    hlc            TEXT NOT NULL,
    status         TEXT NOT NULL DEFAULT 'pending'
                   CHECK (status = 'pending' OR status = 'in_flight' OR status = 'synced'
                          OR status = 'failed' OR status = 'superseded'),
    attempts       INTEGER NOT NULL DEFAULT 0,
    next_retry_at  INTEGER,
    last_error     TEXT,
    batch_key      TEXT,
    base_version   INTEGER,
    payload        TEXT,
    created_at     INTEGER NOT NULL,
    settled_at     INTEGER
);

INSERT INTO sync_outbox_v7 (seq, key, entity, entity_id, op, hlc, status, attempts,
                            next_retry_at, last_error, batch_key, base_version, payload,
                            created_at, settled_at)
SELECT seq, key, entity, entity_id, op, hlc, status, attempts,
       next_retry_at, last_error, batch_key, base_version, payload,
       created_at, settled_at
FROM sync_outbox
ORDER BY seq;

DROP TABLE sync_outbox;
ALTER TABLE sync_outbox_v7 RENAME TO sync_outbox;
PRAGMA legacy_alter_table = OFF;

-- What went with the old table, as V2 and V5 made it.
CREATE INDEX sync_outbox_in_flight ON sync_outbox (batch_key) WHERE status = 'in_flight';
CREATE INDEX sync_outbox_failed ON sync_outbox (entity, entity_id) WHERE status = 'failed';

CREATE TRIGGER sync_outbox_keep_newest BEFORE DELETE ON sync_outbox
WHEN OLD.seq = (SELECT max(seq) FROM sync_outbox)
BEGIN
    SELECT RAISE(IGNORE);
END;

-- Insert triggers: the parent's level is looked up once; a missing parent
-- (a child written first under deferred foreign keys) is refused by
-- acode_present(NULL), as before. A local-only message is not captured
-- whatever its chat's level, so SQLite may test its own level first and
-- skip the lookup: such a message may now precede its chat within a
-- transaction (the foreign key still refuses the commit if the chat never
-- comes).

DROP TRIGGER messages_capture_insert;
CREATE TRIGGER messages_capture_insert AFTER INSERT ON messages
WHEN acode_capture()
 AND coalesce((SELECT privacy FROM chats WHERE id = NEW.chat_id), acode_present(NULL)) != 'local_only'
 AND NEW.privacy != 'local_only'
BEGIN
    INSERT INTO sync_capture VALUES ('message', NEW.id, 'create');
END;

DROP TRIGGER tasks_capture_insert;
CREATE TRIGGER tasks_capture_insert AFTER INSERT ON tasks
WHEN acode_capture()
 AND coalesce((SELECT privacy FROM sessions WHERE id = NEW.session_id), acode_present(NULL)) != 'local_only'
BEGIN
    INSERT INTO sync_capture VALUES ('task', NEW.id, 'create');
END;

DROP TRIGGER steps_capture_insert;
CREATE TRIGGER steps_capture_insert AFTER INSERT ON steps
WHEN acode_capture()
 AND coalesce((SELECT s.privacy FROM tasks t JOIN sessions s ON s.id = t.session_id
               WHERE t.id = NEW.task_id), acode_present(NULL)) != 'local_only'
BEGIN
    INSERT INTO sync_capture VALUES ('step', NEW.id, 'create');
END;

DROP TRIGGER tool_calls_capture_insert;
CREATE TRIGGER tool_calls_capture_insert AFTER INSERT ON tool_calls
WHEN acode_capture()
 AND coalesce((SELECT s.privacy FROM steps st JOIN tasks t ON t.id = st.task_id
               JOIN sessions s ON s.id = t.session_id WHERE st.id = NEW.step_id),
              acode_present(NULL)) != 'local_only'
BEGIN
    INSERT INTO sync_capture VALUES ('tool_call', NEW.id, 'create');
END;

DROP TRIGGER artifacts_capture_insert;
CREATE TRIGGER artifacts_capture_insert AFTER INSERT ON artifacts
WHEN acode_capture()
 AND coalesce((SELECT privacy FROM sessions WHERE id = NEW.session_id), acode_present(NULL)) != 'local_only'
BEGIN
    INSERT INTO sync_capture VALUES ('artifact', NEW.id, 'create');
END;

-- Update triggers. A row's parent never changes (the *_keys_fixed triggers
-- refuse it), so the parent's level is looked up once.
--
-- Chats, messages and sessions have two: the common update that leaves the
-- privacy alone (captured unless the row's effective level is local-only),
-- and a privacy change, `UPDATE OF privacy` so that SQLite leaves it out
-- of every statement that does not set the column (the typed API sets it
-- only when asked to). Before V7 one trigger did both, and every update of
-- a chat or a session ran its descendants' statements to find nothing.

DROP TRIGGER chats_capture_update;
CREATE TRIGGER chats_capture_update AFTER UPDATE ON chats
WHEN acode_capture() AND OLD.privacy = NEW.privacy AND NEW.privacy != 'local_only'
BEGIN
    INSERT INTO sync_capture VALUES ('chat', NEW.id, 'update');
END;

-- A privacy change reaches every message whose effective level it changes,
-- in the same transaction (rule 7); as V2 made it.
CREATE TRIGGER chats_capture_privacy_change AFTER UPDATE OF privacy ON chats
WHEN acode_capture() AND OLD.privacy != NEW.privacy
BEGIN
    INSERT INTO sync_capture VALUES ('chat', NEW.id, acode_op(OLD.privacy, NEW.privacy));
    INSERT INTO sync_capture
        SELECT 'message', m.id,
               acode_op(acode_stricter(OLD.privacy, m.privacy), acode_stricter(NEW.privacy, m.privacy))
        FROM messages m
        WHERE m.chat_id = NEW.id
          AND acode_stricter(OLD.privacy, m.privacy) != acode_stricter(NEW.privacy, m.privacy)
        ORDER BY m.id;
END;

-- For a message only whether each side is local-only matters: to
-- local-only captures a delete, from local-only a create, local-only on
-- both sides nothing.
DROP TRIGGER messages_capture_update;
CREATE TRIGGER messages_capture_update AFTER UPDATE ON messages
WHEN acode_capture() AND OLD.privacy = NEW.privacy AND NEW.privacy != 'local_only'
 AND coalesce((SELECT privacy FROM chats WHERE id = NEW.chat_id), acode_present(NULL)) != 'local_only'
BEGIN
    INSERT INTO sync_capture VALUES ('message', NEW.id, 'update');
END;

CREATE TRIGGER messages_capture_privacy_change AFTER UPDATE OF privacy ON messages
WHEN acode_capture() AND OLD.privacy != NEW.privacy
BEGIN
    INSERT INTO sync_capture
        SELECT 'message', NEW.id, CASE WHEN n THEN 'delete' WHEN o THEN 'create' ELSE 'update' END
        FROM (SELECT chat OR OLD.privacy = 'local_only' AS o,
                     chat OR NEW.privacy = 'local_only' AS n
              FROM (SELECT coalesce((SELECT privacy FROM chats WHERE id = NEW.chat_id),
                                    acode_present(NULL)) = 'local_only' AS chat))
        WHERE NOT (o AND n);
END;

DROP TRIGGER sessions_capture_update;
CREATE TRIGGER sessions_capture_update AFTER UPDATE ON sessions
WHEN acode_capture() AND OLD.privacy = NEW.privacy AND NEW.privacy != 'local_only'
BEGIN
    INSERT INTO sync_capture VALUES ('session', NEW.id, 'update');
END;

-- Everything under a session inherits its level: a privacy change reaches
-- all of it, parents before children; as V2 made it.
CREATE TRIGGER sessions_capture_privacy_change AFTER UPDATE OF privacy ON sessions
WHEN acode_capture() AND OLD.privacy != NEW.privacy
BEGIN
    INSERT INTO sync_capture VALUES ('session', NEW.id, acode_op(OLD.privacy, NEW.privacy));
    INSERT INTO sync_capture
        SELECT 'task', t.id, acode_op(OLD.privacy, NEW.privacy)
        FROM tasks t
        WHERE t.session_id = NEW.id
        ORDER BY t.id;
    INSERT INTO sync_capture
        SELECT 'step', st.id, acode_op(OLD.privacy, NEW.privacy)
        FROM steps st JOIN tasks t ON t.id = st.task_id
        WHERE t.session_id = NEW.id
        ORDER BY st.id;
    INSERT INTO sync_capture
        SELECT 'tool_call', tc.id, acode_op(OLD.privacy, NEW.privacy)
        FROM tool_calls tc JOIN steps st ON st.id = tc.step_id JOIN tasks t ON t.id = st.task_id
        WHERE t.session_id = NEW.id
        ORDER BY tc.id;
    INSERT INTO sync_capture
        SELECT 'artifact', a.id, acode_op(OLD.privacy, NEW.privacy)
        FROM artifacts a
        WHERE a.session_id = NEW.id
        ORDER BY a.id;
END;

-- Tasks, steps, tool calls and artifacts: the level is the session's.

DROP TRIGGER tasks_capture_update;
CREATE TRIGGER tasks_capture_update AFTER UPDATE ON tasks
WHEN acode_capture()
 AND coalesce((SELECT privacy FROM sessions WHERE id = NEW.session_id), acode_present(NULL)) != 'local_only'
BEGIN
    INSERT INTO sync_capture VALUES ('task', NEW.id, 'update');
END;

DROP TRIGGER steps_capture_update;
CREATE TRIGGER steps_capture_update AFTER UPDATE ON steps
WHEN acode_capture()
 AND coalesce((SELECT s.privacy FROM tasks t JOIN sessions s ON s.id = t.session_id
               WHERE t.id = NEW.task_id), acode_present(NULL)) != 'local_only'
BEGIN
    INSERT INTO sync_capture VALUES ('step', NEW.id, 'update');
END;

DROP TRIGGER tool_calls_capture_update;
CREATE TRIGGER tool_calls_capture_update AFTER UPDATE ON tool_calls
WHEN acode_capture()
 AND coalesce((SELECT s.privacy FROM steps st JOIN tasks t ON t.id = st.task_id
               JOIN sessions s ON s.id = t.session_id WHERE st.id = NEW.step_id),
              acode_present(NULL)) != 'local_only'
BEGIN
    INSERT INTO sync_capture VALUES ('tool_call', NEW.id, 'update');
END;

DROP TRIGGER artifacts_capture_update;
CREATE TRIGGER artifacts_capture_update AFTER UPDATE ON artifacts
WHEN acode_capture()
 AND coalesce((SELECT privacy FROM sessions WHERE id = NEW.session_id), acode_present(NULL)) != 'local_only'
BEGIN
    INSERT INTO sync_capture VALUES ('artifact', NEW.id, 'update');
END;
