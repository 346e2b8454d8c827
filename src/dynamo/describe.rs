//! `TableDescription` and `ContinuousBackupsDescription`, in the shapes boto3 reads.
//! Times are epoch seconds as JSON numbers (fractions carry the microseconds).

use serde::Serialize;

use super::error::DynamoError;
use super::item::SCHEMA_KEY;
use super::schema::{AttributeDefinition, KeySchemaElement, StoredSchema};
use super::store::{check_name, load_schema, no_schema};
use crate::catalog::TableStatus;
use crate::shard::{Db, Window};

/// DynamoDB's status for a rewind status: a restore in progress is `CREATING`, as DynamoDB
/// shows it; a failed restore keeps rewind's `FAILED`.
pub fn table_status(rewind: &str) -> &'static str {
    match rewind {
        "ACTIVE" => "ACTIVE",
        "RESTORING" => "CREATING",
        "DROPPED" => "DELETING",
        _ => "FAILED",
    }
}

pub fn arn(table: &str) -> String {
    format!("arn:aws:dynamodb:local:000000000000:table/{table}")
}

pub fn secs(us: u64) -> f64 {
    us as f64 / 1e6
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct BillingModeSummary {
    pub billing_mode: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RestoreSummary {
    pub source_table_arn: String,
    pub restore_date_time: f64,
    pub restore_in_progress: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TableDescription {
    pub table_name: String,
    pub table_status: &'static str,
    pub key_schema: Vec<KeySchemaElement>,
    pub attribute_definitions: Vec<AttributeDefinition>,
    pub creation_date_time: f64,
    pub item_count: u64,
    pub table_size_bytes: u64,
    pub table_arn: String,
    pub table_id: String,
    pub billing_mode_summary: BillingModeSummary,
    pub deletion_protection_enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_summary: Option<RestoreSummary>,
}

/// Describes table `name`. Without `require_schema`, a table with no DynamoDB schema (made
/// through the Redis protocol) is described with empty key lists instead of refused.
pub fn describe(
    db: &Db,
    name: &str,
    require_schema: bool,
) -> Result<TableDescription, DynamoError> {
    check_name(name)?;
    let meta = db.meta(name).ok_or_else(|| DynamoError::not_found(name))?;
    let live = db.table(name).filter(|t| t.meta.id == meta.id);
    // While a restore runs, the schema is the source's (the restore copies it).
    let source = (meta.restore_source_id != 0)
        .then(|| {
            db.pitr_source(&format!("id:{}", meta.restore_source_id))
                .ok()
        })
        .flatten()
        .map(|(m, _)| m);
    let schema_table = live.clone().or_else(|| {
        let s = source.as_ref()?;
        db.table(&s.name).filter(|t| t.meta.id == s.id)
    });
    let stored = match schema_table.as_deref().and_then(load_schema) {
        Some(Ok(s)) => Some(s),
        Some(Err(why)) => {
            return Err(DynamoError::Internal(format!(
                "the key schema of table {name} cannot be read: {why}"
            )))
        }
        None => None,
    };
    if stored.is_none() && require_schema && meta.status == TableStatus::Active {
        return Err(no_schema(name));
    }
    let stored = stored.unwrap_or(StoredSchema {
        key_schema: Vec::new(),
        attribute_definitions: Vec::new(),
    });
    let (items, bytes) = match &live {
        Some(t) => {
            let has_schema = t.map_for(SCHEMA_KEY).contains_key(SCHEMA_KEY);
            (
                t.len().saturating_sub(has_schema as usize) as u64,
                t.bytes(),
            )
        }
        None => (0, 0),
    };
    let restore_summary = (meta.restore_source_id != 0).then(|| RestoreSummary {
        source_table_arn: arn(
            &source.map_or_else(|| format!("id:{}", meta.restore_source_id), |s| s.name)
        ),
        restore_date_time: secs(meta.restore_at_us),
        restore_in_progress: meta.status == TableStatus::Restoring,
    });
    Ok(TableDescription {
        table_name: meta.name.clone(),
        table_status: table_status(meta.status.as_str()),
        key_schema: stored.key_schema,
        attribute_definitions: stored.attribute_definitions,
        creation_date_time: secs(meta.created_us),
        item_count: items,
        table_size_bytes: bytes,
        table_arn: arn(&meta.name),
        table_id: format!("00000000-0000-4000-8000-{:012x}", meta.id),
        billing_mode_summary: BillingModeSummary {
            billing_mode: "PAY_PER_REQUEST",
        },
        deletion_protection_enabled: false,
        restore_summary,
    })
}

/// `ContinuousBackupsDescription` for a table with (`Some`) or without PITR.
pub fn continuous_backups(days: u8, window: Option<Window>) -> serde_json::Value {
    let pitr = match window {
        Some(w) if days > 0 => serde_json::json!({
            "PointInTimeRecoveryStatus": "ENABLED",
            "RecoveryPeriodInDays": days,
            "EarliestRestorableDateTime": secs(w.earliest_us),
            "LatestRestorableDateTime": secs(w.latest_us),
        }),
        _ => serde_json::json!({ "PointInTimeRecoveryStatus": "DISABLED" }),
    };
    serde_json::json!({
        "ContinuousBackupsDescription": {
            "ContinuousBackupsStatus": "ENABLED",
            "PointInTimeRecoveryDescription": pitr,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_backups_in_dynamodbs_terms() {
        assert_eq!(table_status("RESTORING"), "CREATING");
        assert_eq!(table_status("ACTIVE"), "ACTIVE");
        let on = continuous_backups(
            7,
            Some(Window {
                earliest_us: 1_500_000,
                latest_us: 2_250_000,
            }),
        );
        let d = &on["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"];
        assert_eq!(d["PointInTimeRecoveryStatus"], "ENABLED");
        assert_eq!(d["RecoveryPeriodInDays"], 7);
        assert_eq!(d["EarliestRestorableDateTime"], 1.5);
        assert_eq!(d["LatestRestorableDateTime"], 2.25);
        let off = continuous_backups(0, None);
        assert_eq!(
            off["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
                ["PointInTimeRecoveryStatus"],
            "DISABLED"
        );
    }
}
