-- Tombstone purging (DESIGN.md §15 rule 10): deleted rows' feed entries are
-- removed once every active device has pulled past them. Each pull records
-- how far its device had applied; the tenant remembers below which sequence
-- number tombstones are gone, and a cursor older than that has expired.
ALTER TABLE sync_devices ADD COLUMN last_pulled_seq bigint NOT NULL DEFAULT 0;
ALTER TABLE sync_tenants ADD COLUMN purged_below bigint NOT NULL DEFAULT 0;
