-- The engine's lookups that must not scan the outbox: the batch in flight,
-- and a row's failed entries (carried along by its next change). Both
-- indexes are partial: capture inserts 'pending' entries, which neither
-- holds, so the write path pays nothing for them (DESIGN.md §4's cost
-- budget); only freezing a batch and failing an entry write to them.
CREATE INDEX sync_outbox_in_flight ON sync_outbox (batch_key) WHERE status = 'in_flight';
CREATE INDEX sync_outbox_failed ON sync_outbox (entity, entity_id) WHERE status = 'failed';
