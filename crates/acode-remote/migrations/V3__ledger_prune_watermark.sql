-- Where each device's ledger was last pruned: the next prune deletes only
-- from there up to the device's oldest unsettled key, so it never walks the
-- dead index entries of earlier prunes (which grew its cost with history).
ALTER TABLE sync_devices ADD COLUMN ledger_pruned_below text NOT NULL DEFAULT '';
