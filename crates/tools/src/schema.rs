//! A tool's arguments checked against its JSON Schema before anything runs. The model's
//! arguments are untrusted text (a prompt injection writes them): they must parse, be an
//! object, and satisfy the schema an admin configured, or the call is refused.

use serde_json::Value;

/// Arguments longer than this are refused unparsed.
pub const MAX_ARGUMENT_BYTES: usize = 64 * 1024;

/// How many schema violations an error names (the model gets them to correct its call).
const MAX_REPORTED: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The configured schema is not a usable JSON Schema (or refers to a remote document:
    /// schemas are self-contained, nothing is fetched).
    #[error("the input schema is not a valid JSON Schema: {0}")]
    Invalid(String),
    #[error("the input schema must describe an object (\"type\": \"object\")")]
    NotAnObject,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgumentError {
    #[error("the arguments are over {MAX_ARGUMENT_BYTES} bytes")]
    TooLarge,
    #[error("the arguments are not valid JSON")]
    NotJson,
    #[error("the arguments must be a JSON object")]
    NotAnObject,
    #[error("the arguments do not match the tool's schema: {0}")]
    Mismatch(String),
}

/// A compiled schema, ready to check calls.
pub struct ArgumentSchema {
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for ArgumentSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ArgumentSchema")
    }
}

impl ArgumentSchema {
    pub fn compile(schema: &Value) -> Result<ArgumentSchema, SchemaError> {
        // Model providers take object schemas only; anything else is a misconfiguration.
        if schema.get("type").and_then(Value::as_str) != Some("object") {
            return Err(SchemaError::NotAnObject);
        }
        let validator =
            jsonschema::validator_for(schema).map_err(|e| SchemaError::Invalid(e.to_string()))?;
        Ok(ArgumentSchema { validator })
    }

    /// The arguments as parsed JSON, when they satisfy the schema.
    pub fn check(&self, arguments: &str) -> Result<Value, ArgumentError> {
        if arguments.len() > MAX_ARGUMENT_BYTES {
            return Err(ArgumentError::TooLarge);
        }
        // Some models send "" for a call without arguments.
        let text = if arguments.trim().is_empty() {
            "{}"
        } else {
            arguments
        };
        let value: Value = serde_json::from_str(text).map_err(|_| ArgumentError::NotJson)?;
        if !value.is_object() {
            return Err(ArgumentError::NotAnObject);
        }
        let problems: Vec<String> = self
            .validator
            .iter_errors(&value)
            .take(MAX_REPORTED)
            .map(|e| {
                let at = e.instance_path().to_string();
                if at.is_empty() {
                    e.to_string()
                } else {
                    format!("{at}: {e}")
                }
            })
            .collect();
        if problems.is_empty() {
            Ok(value)
        } else {
            Err(ArgumentError::Mismatch(problems.join("; ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn weather() -> ArgumentSchema {
        ArgumentSchema::compile(&json!({
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 20}},
            "required": ["city"],
            "additionalProperties": false
        }))
        .unwrap()
    }

    #[test]
    fn matching_arguments_pass() {
        assert_eq!(
            weather().check(r#"{"city":"Oslo"}"#).unwrap(),
            json!({"city": "Oslo"})
        );
    }

    #[test]
    fn arguments_outside_the_schema_are_refused() {
        let s = weather();
        for bad in [
            r#"{}"#,
            r#"{"city": 7}"#,
            r#"{"city":"Oslo","path":"/etc/passwd"}"#,
            r#"{"city":"a very long city name indeed"}"#,
        ] {
            assert!(
                matches!(s.check(bad), Err(ArgumentError::Mismatch(_))),
                "{bad}"
            );
        }
        assert_eq!(s.check("not json"), Err(ArgumentError::NotJson));
        assert_eq!(s.check("[1]"), Err(ArgumentError::NotAnObject));
        assert_eq!(
            s.check(&format!(r#"{{"city":"{}"}}"#, "x".repeat(70_000))),
            Err(ArgumentError::TooLarge)
        );
    }

    #[test]
    fn empty_arguments_are_an_empty_object() {
        let s = ArgumentSchema::compile(&json!({"type": "object"})).unwrap();
        assert_eq!(s.check("").unwrap(), json!({}));
    }

    #[test]
    fn schemas_that_are_not_object_schemas_or_fetch_remote_documents_are_refused() {
        assert!(matches!(
            ArgumentSchema::compile(&json!({"type": "string"})),
            Err(SchemaError::NotAnObject)
        ));
        assert!(matches!(
            ArgumentSchema::compile(&json!({"type": "object", "properties": {"a": {"type": 5}}})),
            Err(SchemaError::Invalid(_))
        ));
        assert!(matches!(
            ArgumentSchema::compile(&json!({
                "type": "object",
                "properties": {"a": {"$ref": "http://169.254.169.254/latest/meta-data"}}
            })),
            Err(SchemaError::Invalid(_))
        ));
    }
}
