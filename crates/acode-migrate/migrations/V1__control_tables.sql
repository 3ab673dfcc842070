-- Control tables of `acode migrate`, in their own schema so they never
-- clash with migrated tables (created before this runs, see control.rs).

CREATE TABLE acode_migrate.migration_checkpoints (
    table_name     text PRIMARY KEY,
    source         text NOT NULL,
    -- The run this pass belongs to: a run killed and started again keeps
    -- its id, skips the tables it finished and resumes the one it was in.
    run_id         text NOT NULL,
    status         text NOT NULL CHECK (status IN ('running', 'done')),
    -- Source key of the last committed chunk of the running pass.
    last_key       jsonb,
    chunks_done    bigint NOT NULL DEFAULT 0,
    rows_inserted  bigint NOT NULL DEFAULT 0,
    rows_updated   bigint NOT NULL DEFAULT 0,
    rows_deleted   bigint NOT NULL DEFAULT 0,
    started_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Runs of `acode migrate run`: one not finished is continued by the next.
CREATE TABLE acode_migrate.migration_runs (
    run_id       text PRIMARY KEY,
    source       text NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);

CREATE TABLE acode_migrate.migration_mappings (
    table_name   text NOT NULL,
    column_name  text NOT NULL,
    legacy_key   bigint NOT NULL,
    uuid         uuid NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_name, column_name, legacy_key)
);
CREATE INDEX migration_mappings_uuid ON acode_migrate.migration_mappings (table_name, column_name, uuid);

CREATE TABLE acode_migrate.data_differentials (
    id           bigserial PRIMARY KEY,
    analyzed_at  timestamptz NOT NULL DEFAULT now(),
    source       text NOT NULL,
    table_name   text NOT NULL,
    source_rows  bigint NOT NULL,
    target_rows  bigint NOT NULL,
    missing      bigint NOT NULL,
    changed      bigint NOT NULL,
    extra        bigint NOT NULL,
    problems     jsonb NOT NULL,
    mapping      jsonb NOT NULL
);

CREATE TABLE acode_migrate.migration_validation_reports (
    id          bigserial PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now(),
    source      text NOT NULL,
    ok          boolean NOT NULL,
    report      jsonb NOT NULL,
    markdown    text NOT NULL
);

CREATE TABLE acode_migrate.synchronization_jobs (
    name        text PRIMARY KEY,
    schedule    text NOT NULL,
    source      text NOT NULL,
    options     jsonb NOT NULL,
    log_path    text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE acode_migrate.sync_run_history (
    id             bigserial PRIMARY KEY,
    job_name       text NOT NULL,
    started_at     timestamptz NOT NULL,
    finished_at    timestamptz NOT NULL,
    duration_ms    bigint NOT NULL,
    status         text NOT NULL CHECK (status IN ('ok', 'failed', 'skipped')),
    rows_inserted  bigint NOT NULL DEFAULT 0,
    rows_updated   bigint NOT NULL DEFAULT 0,
    rows_deleted   bigint NOT NULL DEFAULT 0,
    tables         jsonb NOT NULL DEFAULT '[]',
    error          text
);
CREATE INDEX sync_run_history_job ON acode_migrate.sync_run_history (job_name, started_at);

-- `--uuid-map TABLE.COL` declarations, so later runs, analyses and
-- validations map the same columns without being told again.
CREATE TABLE acode_migrate.uuid_maps (
    table_name   text NOT NULL,
    column_name  text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_name, column_name)
);
