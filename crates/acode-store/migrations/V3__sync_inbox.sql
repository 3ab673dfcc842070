-- Pulled changes that could not be applied yet (DESIGN.md §7, §15 rule 15).
--
-- A change whose parent has not arrived waits here ('waiting') and is
-- applied as soon as the parent is; one that fails for another reason (a
-- constraint) is set aside ('error') with its error, shown by
-- `sync queue --errors`. Either way the cursor moves on. Both are retried
-- after every pulled page; a newer pulled change of the row replaces its
-- entry here.
CREATE TABLE sync_inbox (
    entity      TEXT NOT NULL,
    entity_id   TEXT NOT NULL,
    -- The feed sequence number of the change.
    seq         INTEGER NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('waiting', 'error')),
    -- The pulled change as JSON (a PullChange).
    change      TEXT NOT NULL,
    error       TEXT,
    attempts    INTEGER NOT NULL DEFAULT 1,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (entity, entity_id)
) WITHOUT ROWID;
