//! DynamoDB errors: each variant is one of DynamoDB's error types, answered with the same
//! HTTP status and `__type` that DynamoDB sends for the same case, and a body botocore parses
//! (`{"__type":"com.amazonaws.dynamodb.v20120810#<Name>","message":"..."}`: botocore keeps
//! what follows `#` as the error code and reads `message` or `Message`).

use crate::shard::DbError;

/// The `__type` prefix DynamoDB itself sends.
pub const TYPE_PREFIX: &str = "com.amazonaws.dynamodb.v20120810#";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DynamoError {
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    Serialization(String),
    #[error("{0}")]
    UnknownOperation(String),
    #[error("{0}")]
    ResourceNotFound(String),
    #[error("{0}")]
    ResourceInUse(String),
    #[error("{0}")]
    TableNotFound(String),
    #[error("{0}")]
    TableAlreadyExists(String),
    #[error("{0}")]
    TableInUse(String),
    #[error("{0}")]
    PitrUnavailable(String),
    #[error("{0}")]
    InvalidRestoreTime(String),
    #[error("{0}")]
    MissingAuthenticationToken(String),
    #[error("{0}")]
    UnrecognizedClient(String),
    #[error("{0}")]
    InvalidSignature(String),
    /// The request body is over the size limit (HTTP 413, type `ValidationException`).
    #[error("{0}")]
    TooLarge(String),
    /// A condition did not hold; with `ReturnValuesOnConditionCheckFailure: ALL_OLD`, the
    /// item as it was.
    #[error("{message}")]
    ConditionalCheckFailed {
        message: String,
        item: Option<Box<super::attr::Item>>,
    },
    #[error("{0}")]
    Internal(String),
}

impl DynamoError {
    /// The HTTP status and the DynamoDB error name.
    pub fn status_and_name(&self) -> (u16, &'static str) {
        use DynamoError::*;
        match self {
            Validation(_) => (400, "ValidationException"),
            Serialization(_) => (400, "SerializationException"),
            UnknownOperation(_) => (400, "UnknownOperationException"),
            ResourceNotFound(_) => (400, "ResourceNotFoundException"),
            ResourceInUse(_) => (400, "ResourceInUseException"),
            TableNotFound(_) => (400, "TableNotFoundException"),
            TableAlreadyExists(_) => (400, "TableAlreadyExistsException"),
            TableInUse(_) => (400, "TableInUseException"),
            PitrUnavailable(_) => (400, "PointInTimeRecoveryUnavailableException"),
            InvalidRestoreTime(_) => (400, "InvalidRestoreTimeException"),
            MissingAuthenticationToken(_) => (400, "MissingAuthenticationTokenException"),
            UnrecognizedClient(_) => (400, "UnrecognizedClientException"),
            InvalidSignature(_) => (400, "InvalidSignatureException"),
            TooLarge(_) => (413, "ValidationException"),
            ConditionalCheckFailed { .. } => (400, "ConditionalCheckFailedException"),
            Internal(_) => (500, "InternalServerError"),
        }
    }

    /// The JSON body DynamoDB sends with an error.
    pub fn body(&self) -> String {
        let (_, name) = self.status_and_name();
        let mut body = serde_json::json!({
            "__type": format!("{TYPE_PREFIX}{name}"),
            "message": self.to_string(),
        });
        if let DynamoError::ConditionalCheckFailed {
            item: Some(item), ..
        } = self
        {
            body["Item"] = serde_json::to_value(item).unwrap_or_default();
        }
        body.to_string()
    }

    pub fn not_found(table: &str) -> Self {
        DynamoError::ResourceNotFound(format!(
            "Requested resource not found: Table: {table} not found"
        ))
    }

    /// A table-layer error where the table is addressed as an ordinary resource
    /// (CreateTable, DeleteTable, DescribeTable and the item operations).
    pub fn from_db(e: DbError) -> Self {
        match e {
            DbError::NoSuchTable(t) => Self::not_found(&t),
            DbError::TableExists(t) => {
                DynamoError::ResourceInUse(format!("Table already exists: {t}"))
            }
            DbError::NotActive(t, status) => DynamoError::ResourceInUse(format!(
                "Table {t} is {}",
                super::describe::table_status(status)
            )),
            e @ (DbError::InvalidName(_) | DbError::ProtectedTable(_) | DbError::BadPeriod(_)) => {
                DynamoError::Validation(e.to_string())
            }
            DbError::PitrDisabled(t) => DynamoError::PitrUnavailable(format!(
                "Point in time recovery is not enabled for table '{t}'"
            )),
            DbError::BadTime(m) => DynamoError::InvalidRestoreTime(m),
            e => DynamoError::Internal(e.to_string()),
        }
    }

    /// A table-layer error from the backup operations, which name tables as DynamoDB's
    /// backup API does (`TableNotFoundException`, `TableAlreadyExistsException`,
    /// `TableInUseException`).
    pub fn from_db_backup(e: DbError) -> Self {
        match e {
            DbError::NoSuchTable(t) => DynamoError::TableNotFound(format!("Table not found: {t}")),
            DbError::TableExists(t) => {
                DynamoError::TableAlreadyExists(format!("Table already exists: {t}"))
            }
            DbError::NotActive(t, status) => DynamoError::TableInUse(format!(
                "Table {t} is {}",
                super::describe::table_status(status)
            )),
            e => Self::from_db(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_maps_to_dynamodbs_type_and_status() {
        let cases = [
            (
                DynamoError::not_found("t"),
                400,
                "ResourceNotFoundException",
            ),
            (
                DynamoError::from_db(DbError::TableExists("t".into())),
                400,
                "ResourceInUseException",
            ),
            (
                DynamoError::from_db_backup(DbError::TableExists("t".into())),
                400,
                "TableAlreadyExistsException",
            ),
            (
                DynamoError::from_db_backup(DbError::NoSuchTable("t".into())),
                400,
                "TableNotFoundException",
            ),
            (
                DynamoError::from_db_backup(DbError::PitrDisabled("t".into())),
                400,
                "PointInTimeRecoveryUnavailableException",
            ),
            (
                DynamoError::from_db_backup(DbError::BadTime("x".into())),
                400,
                "InvalidRestoreTimeException",
            ),
            (
                DynamoError::from_db(DbError::InvalidName("x".into())),
                400,
                "ValidationException",
            ),
            (
                DynamoError::from_db(DbError::NotActive("t".into(), "RESTORING")),
                400,
                "ResourceInUseException",
            ),
            (
                DynamoError::TooLarge("x".into()),
                413,
                "ValidationException",
            ),
            (
                DynamoError::Internal("x".into()),
                500,
                "InternalServerError",
            ),
        ];
        for (e, status, name) in cases {
            assert_eq!(e.status_and_name(), (status, name), "{e:?}");
            let body: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
            assert_eq!(body["__type"], format!("{TYPE_PREFIX}{name}"));
            assert_eq!(body["message"], e.to_string());
        }
    }
}
