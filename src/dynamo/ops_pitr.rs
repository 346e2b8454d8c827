//! `UpdateContinuousBackups`, `DescribeContinuousBackups` and `RestoreTableToPointInTime`,
//! on rewind's PITR (`PITR.ENABLE`, `PITR.DESCRIBE`, `PITR.RESTORE`). A restore copies every
//! key of the source, the reserved schema key included, so the target has the same key
//! schema with no special handling. These operations name missing tables as DynamoDB's
//! backup API does: `TableNotFoundException`.

use std::sync::Arc;

use serde_json::{json, Value};

use super::blocking::off_listener;
use super::describe::{continuous_backups, describe};
use super::error::DynamoError;
use super::store::check_name;
use super::wire::{parse, RestoreInput, TableNameInput, UpdateContinuousBackupsInput};
use crate::restore::parse_time;
use crate::shard::{Db, RestoreAt, MAX_DAYS};

fn backups(db: &Db, name: &str) -> Result<Value, DynamoError> {
    check_name(name)?;
    let meta = db
        .meta(name)
        .ok_or_else(|| DynamoError::TableNotFound(format!("Table not found: {name}")))?;
    let (_, window) = db.pitr_source(name).map_err(DynamoError::from_db_backup)?;
    Ok(continuous_backups(meta.pitr_days, window))
}

pub fn describe_continuous_backups(db: &Db, body: &[u8]) -> Result<Value, DynamoError> {
    let req: TableNameInput = parse(body)?;
    backups(db, &req.table_name)
}

pub async fn update_continuous_backups(db: &Arc<Db>, body: &[u8]) -> Result<Value, DynamoError> {
    let req: UpdateContinuousBackupsInput = parse(body)?;
    let name = &req.table_name;
    check_name(name)?;
    if db.meta(name).is_none() {
        return Err(DynamoError::TableNotFound(format!(
            "Table not found: {name}"
        )));
    }
    let spec = req.point_in_time_recovery_specification;
    if spec.point_in_time_recovery_enabled {
        let days = match spec.recovery_period_in_days {
            None => MAX_DAYS,
            Some(d @ 1..=35) => d as u64,
            Some(d) => {
                return Err(DynamoError::Validation(format!(
                    "RecoveryPeriodInDays must be between 1 and 35 (got {d})"
                )))
            }
        };
        let (d, n) = (db.clone(), name.clone());
        off_listener(move || d.pitr_enable(n.as_bytes(), days))
            .await?
            .map_err(DynamoError::from_db_backup)?;
    } else {
        let (d, n) = (db.clone(), name.clone());
        off_listener(move || d.pitr_disable(n.as_bytes()))
            .await?
            .map_err(DynamoError::from_db_backup)?;
    }
    backups(db, name)
}

/// A `RestoreDateTime`: epoch seconds as a JSON number (what the SDKs send; boto3 sends
/// whole seconds), or a string in RFC 3339 or epoch seconds.
fn restore_time(v: &Value) -> Result<u64, DynamoError> {
    let bad = || {
        DynamoError::Serialization(format!(
            "RestoreDateTime {v} is not a timestamp (epoch seconds or RFC 3339)"
        ))
    };
    if let Some(s) = v.as_u64() {
        return s.checked_mul(1_000_000).ok_or_else(bad);
    }
    if let Some(f) = v.as_f64() {
        if !f.is_finite() || !(0.0..1e11).contains(&f) {
            return Err(bad());
        }
        return Ok((f * 1e6).round() as u64);
    }
    match v.as_str() {
        Some(s) => parse_time(s).map_err(|_| bad()),
        None => Err(bad()),
    }
}

fn source_name(req: &RestoreInput) -> Result<String, DynamoError> {
    let invalid = |m: &str| Err(DynamoError::Validation(m.into()));
    match (&req.source_table_name, &req.source_table_arn) {
        (Some(n), None) => Ok(n.clone()),
        (None, Some(arn)) => match arn.rsplit_once(":table/") {
            Some((_, n)) => Ok(n.to_string()),
            None => {
                invalid("SourceTableArn must look like arn:aws:dynamodb:REGION:ACCOUNT:table/NAME")
            }
        },
        (Some(_), Some(_)) => {
            invalid("Only one of SourceTableArn or SourceTableName can be specified")
        }
        (None, None) => invalid("Either SourceTableArn or SourceTableName must be specified"),
    }
}

pub async fn restore_table_to_point_in_time(
    db: &Arc<Db>,
    body: &[u8],
) -> Result<Value, DynamoError> {
    let req: RestoreInput = parse(body)?;
    let source = source_name(&req)?;
    check_name(&source)?;
    check_name(&req.target_table_name)?;
    for (o, name) in [
        (
            &req.global_secondary_index_override,
            "GlobalSecondaryIndexOverride",
        ),
        (
            &req.local_secondary_index_override,
            "LocalSecondaryIndexOverride",
        ),
    ] {
        if o.as_ref().is_some_and(|v| !v.is_empty()) {
            return Err(DynamoError::Validation(format!(
                "{name} is not supported by rewind (no secondary indexes)"
            )));
        }
    }
    let at = match (
        req.use_latest_restorable_time.unwrap_or(false),
        &req.restore_date_time,
    ) {
        (true, Some(_)) => {
            return Err(DynamoError::Validation(
                "Only one of RestoreDateTime or UseLatestRestorableTime can be specified".into(),
            ))
        }
        (true, None) => RestoreAt::Latest,
        (false, Some(t)) => RestoreAt::Time(restore_time(t)?),
        (false, None) => {
            return Err(DynamoError::Validation(
                "Either RestoreDateTime or UseLatestRestorableTime must be specified".into(),
            ))
        }
    };
    // The restore runs in the background; DescribeTable shows CREATING until it is done.
    let (d, target) = (db.clone(), req.target_table_name.clone());
    let handle = off_listener(move || d.begin_restore(&source, target.as_bytes(), at))
        .await?
        .map_err(DynamoError::from_db_backup)?;
    drop(handle);
    Ok(json!({ "TableDescription": describe(db, &req.target_table_name, false)? }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_times_in_every_form() {
        assert_eq!(
            restore_time(&json!(1764075845)).unwrap(),
            1_764_075_845_000_000
        );
        assert_eq!(
            restore_time(&json!(1764075845.25)).unwrap(),
            1_764_075_845_250_000
        );
        assert_eq!(
            restore_time(&json!("2025-11-25T13:04:05.250Z")).unwrap(),
            1_764_075_845_250_000
        );
        for bad in [json!(-1), json!("yesterday"), json!(true), json!(1e300)] {
            assert!(restore_time(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn source_by_name_or_arn() {
        let r: RestoreInput = parse(
            br#"{"SourceTableArn":"arn:aws:dynamodb:local:000000000000:table/src","TargetTableName":"t2"}"#,
        )
        .unwrap();
        assert_eq!(source_name(&r).unwrap(), "src");
        let r: RestoreInput = parse(br#"{"TargetTableName":"t2"}"#).unwrap();
        assert!(source_name(&r).is_err());
    }
}
