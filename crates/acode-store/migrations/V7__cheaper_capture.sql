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
-- 2. The insert triggers of messages and run records read the inherited
--    privacy in plain SQL: acode_present() is called only when the parent is
--    missing (to refuse the write), acode_stricter() not at all. The entries
--    captured are the same.

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
