//! The push and pull messages of PROTOCOL.md. Both transports (HTTP and
//! direct PostgreSQL) exchange exactly these types.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{ChangeKey, Entity, Id};

/// The schema version a client sends as `Acode-Schema`.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Upsert,
    Delete,
}

/// One change in a push.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    pub key: ChangeKey,
    pub entity: Entity,
    pub id: Id,
    pub op: Op,
    /// The server version this change was made on; 0 for a row the server has never seen.
    pub base_version: i64,
    pub hlc: String,
    /// Application columns only; a column left out keeps its value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Map<String, Value>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PushRequest {
    /// The device's oldest unsettled key: the server prunes its ledger below it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_oldest_unsettled: Option<ChangeKey>,
    pub policy: crate::Policy,
    pub changes: Vec<Change>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    LocalApplied,
    RemoteKept,
}

/// The outcome of one change, in the order of the request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ItemResult {
    Applied {
        key: ChangeKey,
        version: i64,
        seq: i64,
    },
    Duplicate {
        key: ChangeKey,
        version: i64,
        seq: i64,
    },
    Conflict {
        key: ChangeKey,
        version: i64,
        resolution: Resolution,
        /// The row as it stands after the conflict: `{version, hlc, deleted, data}`.
        winner: Value,
        /// The version that lost, as the server had it (`local_applied`
        /// only: for `remote_kept` the loser is the device's own change).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        loser: Option<Value>,
    },
    Rejected {
        key: ChangeKey,
        code: String,
        message: String,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PushResponse {
    pub results: Vec<ItemResult>,
    pub server_time: String,
}

/// One change as served by the feed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PullChange {
    pub seq: i64,
    pub key: ChangeKey,
    pub entity: Entity,
    pub id: Id,
    pub op: Op,
    pub version: i64,
    pub hlc: String,
    pub origin_device: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Map<String, Value>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PullPage {
    pub changes: Vec<PullChange>,
    pub next_cursor: String,
    pub has_more: bool,
    pub server_time: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_md_push_example_parses() {
        let body = r#"{
          "device_oldest_unsettled": "01JD3Q0000000000000000000A",
          "policy": "last_write_wins",
          "changes": [
            {"key": "01JD3Q5M2K7Y8V3C4B5N6M7P8Q", "entity": "chat", "id": "01JD3Q5M2K7Y8V3C4B5N6M7P80",
             "op": "upsert", "base_version": 3, "hlc": "2026-11-22T01:02:03.123Z-0001-dev7",
             "data": {"title": "Feature: Auth", "privacy": "full"}},
            {"key": "01JD3Q5M2K7Y8V3C4B5N6M7P8R", "entity": "message", "id": "01JD3Q5M2K7Y8V3C4B5N6M7P81",
             "op": "delete", "base_version": 1, "hlc": "2026-11-22T01:02:03.124Z-0000-dev7"}
          ]
        }"#;
        let req: PushRequest = serde_json::from_str(body).unwrap();
        assert_eq!(req.changes.len(), 2);
        assert_eq!(req.changes[1].op, Op::Delete);
        assert_eq!(req.changes[0].entity, Entity::Chat);
    }

    #[test]
    fn results_are_tagged_by_status() {
        let r = ItemResult::Rejected {
            key: Id::new(),
            code: "ACODE-SYNC-005".into(),
            message: "title too long".into(),
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["status"], "rejected");
        assert_eq!(serde_json::from_value::<ItemResult>(v).unwrap(), r);
    }
}
