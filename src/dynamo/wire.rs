//! The JSON shapes of the requests rewind answers, and how a request body becomes one:
//! a body that is not JSON is a `SerializationException`, a missing required member a
//! `ValidationException`, as in DynamoDB. Members rewind cannot honour (conditions,
//! indexes, streams) are read so that they can be refused by name, never silently ignored.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use super::attr::Item;
use super::error::DynamoError;
use super::schema::{AttributeDefinition, KeySchemaElement};

/// Reads a request body into `T`.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, DynamoError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        &b"{}"[..]
    } else {
        body
    };
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        DynamoError::Serialization(format!(
            "Start of structure or map found where not expected, or invalid JSON: {e}"
        ))
    })?;
    if !value.is_object() {
        return Err(DynamoError::Serialization(
            "the request body must be a JSON object".into(),
        ));
    }
    serde_json::from_value(value).map_err(|e| {
        let msg = e.to_string();
        if msg.starts_with("missing field") {
            DynamoError::Validation(format!("1 validation error detected: {msg}"))
        } else {
            DynamoError::Serialization(msg)
        }
    })
}

/// Refuses a member rewind does not implement, naming it.
pub fn refuse<T>(member: &Option<T>, name: &str, op: &str) -> Result<(), DynamoError> {
    match member {
        Some(_) => Err(DynamoError::Validation(format!(
            "{name} is not supported by rewind ({op} takes no conditions, expressions or indexes; see docs/DYNAMODB.md)"
        ))),
        None => Ok(()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateTableInput {
    pub table_name: String,
    pub key_schema: Vec<KeySchemaElement>,
    pub attribute_definitions: Vec<AttributeDefinition>,
    pub global_secondary_indexes: Option<Value>,
    pub local_secondary_indexes: Option<Value>,
    pub stream_specification: Option<StreamSpecification>,
    // Accepted and ignored (rewind has no capacity modes, tags or encryption settings):
    // BillingMode, ProvisionedThroughput, OnDemandThroughput, WarmThroughput, Tags,
    // SSESpecification, TableClass, DeletionProtectionEnabled, ResourcePolicy.
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamSpecification {
    pub stream_enabled: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TableNameInput {
    pub table_name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTablesInput {
    pub exclusive_start_table_name: Option<String>,
    pub limit: Option<i64>,
}

/// Condition and expression members shared by the write operations, all refused.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Conditions {
    pub condition_expression: Option<Value>,
    pub expected: Option<Value>,
    pub conditional_operator: Option<Value>,
    pub expression_attribute_names: Option<Value>,
    pub expression_attribute_values: Option<Value>,
}

impl Conditions {
    pub fn refuse(&self, op: &str) -> Result<(), DynamoError> {
        refuse(&self.condition_expression, "ConditionExpression", op)?;
        refuse(&self.expected, "Expected", op)?;
        refuse(&self.conditional_operator, "ConditionalOperator", op)?;
        refuse(
            &self.expression_attribute_names,
            "ExpressionAttributeNames",
            op,
        )?;
        refuse(
            &self.expression_attribute_values,
            "ExpressionAttributeValues",
            op,
        )
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutItemInput {
    pub table_name: String,
    pub item: Item,
    pub return_values: Option<String>,
    #[serde(flatten)]
    pub conditions: Conditions,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteItemInput {
    pub table_name: String,
    pub key: Item,
    pub return_values: Option<String>,
    #[serde(flatten)]
    pub conditions: Conditions,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetItemInput {
    pub table_name: String,
    pub key: Item,
    /// Every read is strongly consistent in rewind; accepted either way.
    #[allow(dead_code)]
    pub consistent_read: Option<bool>,
    pub attributes_to_get: Option<Vec<String>>,
    pub projection_expression: Option<String>,
    pub expression_attribute_names: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PitrSpecification {
    pub point_in_time_recovery_enabled: bool,
    pub recovery_period_in_days: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateContinuousBackupsInput {
    pub table_name: String,
    pub point_in_time_recovery_specification: PitrSpecification,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RestoreInput {
    pub source_table_arn: Option<String>,
    pub source_table_name: Option<String>,
    pub target_table_name: String,
    pub use_latest_restorable_time: Option<bool>,
    /// Epoch seconds (a JSON number, as the SDKs send it) or an RFC 3339 string.
    pub restore_date_time: Option<Value>,
    pub global_secondary_index_override: Option<Vec<Value>>,
    pub local_secondary_index_override: Option<Vec<Value>>,
    // Accepted and ignored: BillingModeOverride, ProvisionedThroughputOverride,
    // OnDemandThroughputOverride, SSESpecificationOverride.
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_bodies_get_dynamodbs_error_types() {
        let e = parse::<TableNameInput>(b"{not json").unwrap_err();
        assert!(matches!(e, DynamoError::Serialization(_)), "{e:?}");
        let e = parse::<TableNameInput>(b"[1,2]").unwrap_err();
        assert!(matches!(e, DynamoError::Serialization(_)), "{e:?}");
        let e = parse::<TableNameInput>(b"{}").unwrap_err();
        assert!(matches!(e, DynamoError::Validation(_)), "{e:?}");
        let e = parse::<TableNameInput>(br#"{"TableName":5}"#).unwrap_err();
        assert!(matches!(e, DynamoError::Serialization(_)), "{e:?}");
        let e = parse::<PutItemInput>(br#"{"TableName":"t","Item":{"a":{"Q":"x"}}}"#).unwrap_err();
        assert!(matches!(e, DynamoError::Serialization(_)), "{e:?}");
        let ok: ListTablesInput = parse(b"").unwrap();
        assert!(ok.limit.is_none());
        let t: TableNameInput = parse(br#"{"TableName":"t","Extra":1}"#).unwrap();
        assert_eq!(t.table_name, "t");
    }

    #[test]
    fn conditions_are_refused_by_name() {
        let p: PutItemInput = parse(
            br#"{"TableName":"t","Item":{},"ConditionExpression":"attribute_not_exists(pk)"}"#,
        )
        .unwrap();
        let e = p.conditions.refuse("PutItem").unwrap_err();
        assert!(e.to_string().contains("ConditionExpression"), "{e}");
        let p: PutItemInput = parse(br#"{"TableName":"t","Item":{}}"#).unwrap();
        p.conditions.refuse("PutItem").unwrap();
    }
}
