//! Which rows go into the next batch (DESIGN.md §7; §15 rules 1 and 3).
//! Pure: it sees the unsettled queue and the time, nothing else.
//!
//! A row is one change in a batch however many entries it has (coalescing:
//! the latest state is sent and all its entries settle together). A row
//! with a change in flight waits for its answer (one unacknowledged change
//! per row), as does a row whose batch is backing off. A row whose entries
//! have all failed stays failed until a newer change or `sync retry`; a
//! newer change carries its failed entries along and supersedes them.

use std::collections::HashMap;

use acode_protocol::{Entity, Id};
use acode_store::OutboxEntry;
use acode_store::outbox::{ChangeOp, EntryStatus};

/// One row to send: its entries, and the key, op and HLC of its latest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowPlan {
    pub entity: Entity,
    pub id: Id,
    pub seqs: Vec<i64>,
    pub key: Id,
    pub op: ChangeOp,
    pub hlc: String,
}

/// The rows that may be sent now, in the order of their first unsettled
/// entry (so a parent created before its child goes first).
pub fn plan(queue: &[OutboxEntry], now: i64) -> Vec<RowPlan> {
    let mut order: Vec<(Entity, Id)> = Vec::new();
    let mut rows: HashMap<(Entity, Id), Vec<&OutboxEntry>> = HashMap::new();
    for e in queue {
        let row = (e.entity, e.entity_id);
        rows.entry(row)
            .or_insert_with(|| {
                order.push(row);
                Vec::new()
            })
            .push(e);
    }
    order
        .into_iter()
        .filter_map(|row| {
            let entries = rows.remove(&row)?;
            let blocked = entries.iter().any(|e| {
                e.status == EntryStatus::InFlight || e.next_retry_at.is_some_and(|t| t > now)
            });
            let has_new = entries.iter().any(|e| e.status == EntryStatus::Pending);
            if blocked || !has_new {
                return None;
            }
            let latest = entries.last()?;
            Some(RowPlan {
                entity: row.0,
                id: row.1,
                seqs: entries.iter().map(|e| e.seq).collect(),
                key: latest.key,
                op: latest.op,
                hlc: latest.hlc.clone(),
            })
        })
        .collect()
}

/// Whether a change of `size` bytes still fits a batch holding `count`
/// changes of `bytes`. A change larger than the byte limit goes alone.
pub fn fits(count: usize, bytes: usize, size: usize, max_count: usize, max_bytes: usize) -> bool {
    count < max_count && (count == 0 || bytes + size <= max_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: i64, entity: Entity, id: Id, status: EntryStatus) -> OutboxEntry {
        OutboxEntry {
            seq,
            key: Id::new(),
            entity,
            entity_id: id,
            op: ChangeOp::Update,
            hlc: format!("h{seq}"),
            status,
            attempts: 0,
            next_retry_at: None,
            batch_key: None,
            last_error: None,
            created_at: 0,
        }
    }

    #[test]
    fn entries_of_a_row_coalesce_into_its_latest() {
        let (a, b) = (Id::new(), Id::new());
        let q = vec![
            entry(1, Entity::Chat, a, EntryStatus::Pending),
            entry(2, Entity::Message, b, EntryStatus::Pending),
            entry(3, Entity::Chat, a, EntryStatus::Pending),
        ];
        let p = plan(&q, 0);
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].id, p[0].seqs.clone(), p[0].key),
            (a, vec![1, 3], q[2].key)
        );
        assert_eq!(p[1].id, b);
    }

    #[test]
    fn a_row_in_flight_or_backing_off_waits() {
        let (a, b, c) = (Id::new(), Id::new(), Id::new());
        let mut backing_off = entry(3, Entity::Chat, b, EntryStatus::Pending);
        backing_off.next_retry_at = Some(100);
        let q = vec![
            entry(1, Entity::Chat, a, EntryStatus::InFlight),
            entry(2, Entity::Chat, a, EntryStatus::Pending),
            backing_off,
            entry(4, Entity::Chat, c, EntryStatus::Pending),
        ];
        let ids: Vec<Id> = plan(&q, 50).iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![c]);
        let later: Vec<Id> = plan(&q, 100).iter().map(|r| r.id).collect();
        assert_eq!(later, vec![b, c]);
    }

    #[test]
    fn failed_entries_wait_for_a_newer_change_and_go_with_it() {
        let (a, b) = (Id::new(), Id::new());
        let q = vec![
            entry(1, Entity::Chat, a, EntryStatus::Failed),
            entry(2, Entity::Chat, b, EntryStatus::Failed),
            entry(3, Entity::Chat, b, EntryStatus::Pending),
        ];
        let p = plan(&q, 0);
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].id, p[0].seqs.clone()), (b, vec![2, 3]));
    }

    #[test]
    fn batches_respect_count_and_bytes_and_a_big_change_goes_alone() {
        assert!(fits(0, 0, 5000, 50, 1000), "alone even when too big");
        assert!(!fits(1, 10, 5000, 50, 1000));
        assert!(fits(49, 900, 100, 50, 1000));
        assert!(!fits(50, 0, 1, 50, 1000));
        assert!(!fits(2, 950, 100, 50, 1000));
    }
}
