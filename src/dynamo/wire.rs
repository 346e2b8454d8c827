//! The JSON shapes of the requests rewind answers, and how a request body becomes one:
//! a body that is not JSON is a `SerializationException`, a missing required member a
//! `ValidationException`, as in DynamoDB. Members rewind cannot honour (conditions,
//! indexes, streams) are read so that they can be refused by name, never silently ignored.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use super::attr::{AttributeValue, Item};
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
            "{name} is not supported by rewind's {op} (see docs/DYNAMODB.md, Operations)"
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

/// The expression members of a request: a condition, and the placeholders every
/// expression of the request shares. The legacy members (`Expected`,
/// `ConditionalOperator`) are refused by name.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Conditions {
    pub condition_expression: Option<String>,
    pub expected: Option<Value>,
    pub conditional_operator: Option<Value>,
    pub expression_attribute_names: Option<BTreeMap<String, String>>,
    pub expression_attribute_values: Option<BTreeMap<String, AttributeValue>>,
    pub return_values_on_condition_check_failure: Option<String>,
}

impl Conditions {
    pub fn refuse_legacy(&self, op: &str) -> Result<(), DynamoError> {
        refuse(&self.expected, "Expected (use ConditionExpression)", op)?;
        refuse(
            &self.conditional_operator,
            "ConditionalOperator (use ConditionExpression)",
            op,
        )
    }

    /// Whether a failed condition returns the item as it was.
    pub fn old_on_failure(&self) -> Result<bool, DynamoError> {
        match self.return_values_on_condition_check_failure.as_deref() {
            None | Some("NONE") => Ok(false),
            Some("ALL_OLD") => Ok(true),
            Some(other) => Err(DynamoError::Validation(format!(
                "1 validation error detected: Value '{other}' at 'returnValuesOnConditionCheckFailure' failed to satisfy constraint: Member must satisfy enum value set: [ALL_OLD, NONE]"
            ))),
        }
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
pub struct UpdateItemInput {
    pub table_name: String,
    pub key: Item,
    pub update_expression: Option<String>,
    pub attribute_updates: Option<Value>,
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

/// `Scan` and `Query` share these.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReadInput {
    pub table_name: String,
    pub index_name: Option<String>,
    pub limit: Option<i64>,
    pub exclusive_start_key: Option<Item>,
    pub projection_expression: Option<String>,
    pub filter_expression: Option<String>,
    pub key_condition_expression: Option<String>,
    pub expression_attribute_names: Option<BTreeMap<String, String>>,
    pub expression_attribute_values: Option<BTreeMap<String, AttributeValue>>,
    pub select: Option<String>,
    pub segment: Option<i64>,
    pub total_segments: Option<i64>,
    pub scan_index_forward: Option<bool>,
    /// Every read is strongly consistent in rewind; accepted either way.
    #[allow(dead_code)]
    pub consistent_read: Option<bool>,
    pub attributes_to_get: Option<Value>,
    pub scan_filter: Option<Value>,
    pub query_filter: Option<Value>,
    pub key_conditions: Option<Value>,
    pub conditional_operator: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchWriteItemInput {
    pub request_items: BTreeMap<String, Vec<WriteRequest>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WriteRequest {
    pub put_request: Option<PutRequest>,
    pub delete_request: Option<DeleteRequest>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRequest {
    pub item: Item,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteRequest {
    pub key: Item,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchGetItemInput {
    pub request_items: BTreeMap<String, KeysAndAttributes>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeysAndAttributes {
    pub keys: Vec<Item>,
    pub projection_expression: Option<String>,
    pub expression_attribute_names: Option<BTreeMap<String, String>>,
    #[allow(dead_code)]
    pub consistent_read: Option<bool>,
    pub attributes_to_get: Option<Value>,
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
    fn legacy_conditions_are_refused_by_name() {
        let p: PutItemInput =
            parse(br#"{"TableName":"t","Item":{},"Expected":{"a":{"Exists":false}}}"#).unwrap();
        let e = p.conditions.refuse_legacy("PutItem").unwrap_err();
        assert!(e.to_string().contains("Expected"), "{e}");
        let p: PutItemInput = parse(
            br#"{"TableName":"t","Item":{},"ConditionExpression":"attribute_not_exists(pk)"}"#,
        )
        .unwrap();
        p.conditions.refuse_legacy("PutItem").unwrap();
        assert_eq!(
            p.conditions.condition_expression.as_deref(),
            Some("attribute_not_exists(pk)")
        );
    }
}
