-- How far each target table holds a tracked source's changes (see
-- track.rs): entries of the source's change log up to `seq` of this
-- `generation` are applied. `ready` is false while the full pass that
-- establishes the cursor runs (`seq` is then the log's position before
-- that pass read its first row).
CREATE TABLE acode_migrate.change_cursors (
    source         text NOT NULL,
    target_schema  text NOT NULL,
    table_name     text NOT NULL,
    generation     text NOT NULL,
    seq            bigint NOT NULL,
    ready          boolean NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, target_schema, table_name)
);
