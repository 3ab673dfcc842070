-- Rows that arrived redacted hold placeholders where their content would
-- be ('(redacted)', '' or NULL). Listed here so the device never uploads a
-- placeholder as if it were content: the payload leaves such columns out
-- (a change's data names only what it knows), and the row leaves this list
-- when real content arrives.
CREATE TABLE sync_placeholders (
    entity     TEXT NOT NULL,
    entity_id  TEXT NOT NULL,
    PRIMARY KEY (entity, entity_id)
) WITHOUT ROWID;
