-- A cheaper ingest, each part measured (docs/BENCHMARKS.md, sync-drain).
--
-- Mirror rows take their tenant from the authenticated device, and tenants
-- are never deleted: the foreign key to sync_tenants only added a check,
-- and a lock on the tenant's row, to every row written.
ALTER TABLE chats DROP CONSTRAINT chats_tenant_id_fkey;
ALTER TABLE messages DROP CONSTRAINT messages_tenant_id_fkey;
ALTER TABLE sessions DROP CONSTRAINT sessions_tenant_id_fkey;
ALTER TABLE tasks DROP CONSTRAINT tasks_tenant_id_fkey;
ALTER TABLE steps DROP CONSTRAINT steps_tenant_id_fkey;
ALTER TABLE tool_calls DROP CONSTRAINT tool_calls_tenant_id_fkey;
ALTER TABLE artifacts DROP CONSTRAINT artifacts_tenant_id_fkey;

-- The feed and the stored batch answers are only written and served, never
-- queried inside: kept as the JSON text written (json), not decomposed.
ALTER TABLE sync_changes ALTER COLUMN data TYPE json USING data::json;
ALTER TABLE sync_push_batches ALTER COLUMN response TYPE json USING response::json;

-- The ledger keeps an applied change's answer as two numbers; the JSON
-- document only for the other answers (conflicts, rejections).
ALTER TABLE sync_idempotency
    ALTER COLUMN result DROP NOT NULL,
    ADD COLUMN applied_version bigint,
    ADD COLUMN applied_seq bigint,
    ADD CONSTRAINT sync_idempotency_answer
        CHECK (result IS NOT NULL OR (applied_version IS NOT NULL AND applied_seq IS NOT NULL));
