-- A resync from zero (the server answered cursor_expired): rows pulled
-- during it are listed here; when it ends, a synced row the server no
-- longer has (its tombstone was purged) is deleted here too, unless it has
-- unsent local changes.
CREATE TABLE sync_resync_seen (
    entity     TEXT NOT NULL,
    entity_id  TEXT NOT NULL,
    PRIMARY KEY (entity, entity_id)
) WITHOUT ROWID;
