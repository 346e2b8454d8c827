//! Key schemas: the `KeySchema` and `AttributeDefinitions` of `CreateTable`, checked as
//! DynamoDB checks them, and stored durably inside the table itself under a reserved key
//! (see `item.rs`), so a restore carries the schema with the items.

use serde::{Deserialize, Serialize};

use super::error::DynamoError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeySchemaElement {
    pub attribute_name: String,
    pub key_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttributeDefinition {
    pub attribute_name: String,
    pub attribute_type: String,
}

/// The type of a key attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    S,
    N,
    B,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::S => "S",
            KeyType::N => "N",
            KeyType::B => "B",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAttr {
    pub name: String,
    pub ty: KeyType,
}

/// A table's key: a partition (HASH) attribute and an optional sort (RANGE) attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    pub hash: KeyAttr,
    pub range: Option<KeyAttr>,
}

/// The stored form: exactly the wire lists `CreateTable` was given (once checked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StoredSchema {
    pub key_schema: Vec<KeySchemaElement>,
    pub attribute_definitions: Vec<AttributeDefinition>,
}

fn invalid(msg: impl Into<String>) -> DynamoError {
    DynamoError::Validation(format!(
        "One or more parameter values were invalid: {}",
        msg.into()
    ))
}

fn check_name(name: &str) -> Result<(), DynamoError> {
    if name.is_empty() || name.len() > 255 {
        return Err(invalid(format!(
            "key attribute name '{name}' must be 1 to 255 bytes long"
        )));
    }
    Ok(())
}

impl StoredSchema {
    /// Checks the lists as DynamoDB does and gives the schema they describe.
    pub fn schema(&self) -> Result<Schema, DynamoError> {
        let ks = &self.key_schema;
        if ks.is_empty() || ks.len() > 2 {
            return Err(invalid(format!(
                "KeySchema must have 1 or 2 elements (HASH, then optionally RANGE); it has {}",
                ks.len()
            )));
        }
        if ks[0].key_type != "HASH" {
            return Err(invalid(
                "the first KeySchema element must have KeyType HASH",
            ));
        }
        if ks.len() == 2 && ks[1].key_type != "RANGE" {
            return Err(invalid(
                "the second KeySchema element must have KeyType RANGE",
            ));
        }
        if ks.len() == 2 && ks[0].attribute_name == ks[1].attribute_name {
            return Err(invalid(
                "Both the Hash Key and the Range Key element in the KeySchema have the same name",
            ));
        }
        if self.attribute_definitions.len() != ks.len() {
            return Err(invalid(format!(
                "Number of attributes in KeySchema does not exactly match number of attributes defined in AttributeDefinitions ({} against {}; rewind has no secondary indexes)",
                ks.len(),
                self.attribute_definitions.len()
            )));
        }
        let attr = |e: &KeySchemaElement| -> Result<KeyAttr, DynamoError> {
            check_name(&e.attribute_name)?;
            let def = self
                .attribute_definitions
                .iter()
                .find(|d| d.attribute_name == e.attribute_name)
                .ok_or_else(|| {
                    invalid(format!(
                        "Some index key attributes are not defined in AttributeDefinitions: {}",
                        e.attribute_name
                    ))
                })?;
            let ty = match def.attribute_type.as_str() {
                "S" => KeyType::S,
                "N" => KeyType::N,
                "B" => KeyType::B,
                other => {
                    return Err(invalid(format!(
                    "Member must satisfy enum value set: [B, N, S] (AttributeType '{other}' of {})",
                    e.attribute_name
                )))
                }
            };
            Ok(KeyAttr {
                name: e.attribute_name.clone(),
                ty,
            })
        };
        Ok(Schema {
            hash: attr(&ks[0])?,
            range: ks.get(1).map(attr).transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(keys: &[(&str, &str)], defs: &[(&str, &str)]) -> StoredSchema {
        StoredSchema {
            key_schema: keys
                .iter()
                .map(|(n, t)| KeySchemaElement {
                    attribute_name: n.to_string(),
                    key_type: t.to_string(),
                })
                .collect(),
            attribute_definitions: defs
                .iter()
                .map(|(n, t)| AttributeDefinition {
                    attribute_name: n.to_string(),
                    attribute_type: t.to_string(),
                })
                .collect(),
        }
    }

    #[test]
    fn good_schemas_pass_and_bad_ones_are_named() {
        let s = stored(
            &[("pk", "HASH"), ("sk", "RANGE")],
            &[("sk", "N"), ("pk", "S")],
        )
        .schema()
        .unwrap();
        assert_eq!(s.hash.ty, KeyType::S);
        assert_eq!(s.range.unwrap().ty, KeyType::N);
        assert!(stored(&[("pk", "HASH")], &[("pk", "B")]).schema().is_ok());
        for bad in [
            stored(&[], &[]),
            stored(&[("pk", "RANGE")], &[("pk", "S")]),
            stored(
                &[("pk", "HASH"), ("pk", "RANGE")],
                &[("pk", "S"), ("pk", "S")],
            ),
            stored(&[("pk", "HASH")], &[("pk", "S"), ("other", "S")]),
            stored(&[("pk", "HASH")], &[("nope", "S")]),
            stored(&[("pk", "HASH")], &[("pk", "BOOL")]),
            stored(&[("", "HASH")], &[("", "S")]),
        ] {
            assert!(
                matches!(bad.schema(), Err(DynamoError::Validation(_))),
                "{bad:?}"
            );
        }
    }
}
