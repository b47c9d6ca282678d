//! The `submit_*` tools' JSON Schemas and a checker for the subset they use.
//!
//! One schema serves twice: it is what the model is offered, and what its
//! arguments are checked against before a deliverable is accepted.

use serde_json::{Value, json};

use crate::llm::ToolSpec;
use crate::types::{ReviewVerdict, Verdict};

fn strings(description: &str) -> Value {
    json!({"type": "array", "items": {"type": "string", "minLength": 1}, "description": description})
}

fn text(description: &str) -> Value {
    json!({"type": "string", "minLength": 1, "description": description})
}

fn object(properties: &Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
}

pub fn submit_route() -> ToolSpec {
    tool(
        "submit_route",
        "Submit the route for this issue.",
        object(
            &json!({
                "route": {"type": "string", "enum": ["feature", "hotfix", "chore", "epic"]},
                "reason": text("One sentence: why this route fits the issue."),
            }),
            &["route", "reason"],
        ),
    )
}

pub fn submit_spec() -> ToolSpec {
    tool(
        "submit_spec",
        "Submit the specification: what must be true when the issue is resolved.",
        object(
            &json!({
                "summary": text("What the change does, in two or three sentences."),
                "objectives": strings("What the change must achieve."),
                "non_goals": strings("What is explicitly out of scope."),
                "acceptance": strings("Checkable acceptance criteria; each becomes a test."),
            }),
            &["summary", "objectives", "non_goals", "acceptance"],
        ),
    )
}

pub fn submit_design() -> ToolSpec {
    tool(
        "submit_design",
        "Submit the design: the approach and the components it touches.",
        object(
            &json!({
                "approach": text("The approach and why it was chosen over the alternatives."),
                "components": {"type": "array", "minItems": 1, "items": object(
            &json!({
                    "name": text("Module, file or type."),
                    "responsibility": text("What it does in this change."),
                }), &["name", "responsibility"])},
                "risks": strings("What could go wrong."),
            }),
            &["approach", "components"],
        ),
    )
}

pub fn submit_plan() -> ToolSpec {
    tool(
        "submit_plan",
        "Submit the plan: ordered steps, the files they touch, the tests, the rollback.",
        object(
            &json!({
                "steps": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
                "touchpoints": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1},
                    "description": "Paths or globs the change may touch; anything else is out of scope."},
                "tests": strings("The tests that prove the acceptance criteria."),
                "rollback": text("How to undo the change safely."),
            }),
            &["steps", "touchpoints", "tests", "rollback"],
        ),
    )
}

pub fn submit_review() -> ToolSpec {
    tool(
        "submit_review",
        "Submit the review of the diff against the spec.",
        object(
            &json!({
                "verdict": {"type": "string", "enum": ReviewVerdict::NAMES},
                "findings": {"type": "array", "items": object(
            &json!({
                    "severity": {"type": "string", "enum": ["info", "minor", "major", "critical"]},
                    "path": {"type": "string"},
                    "comment": text("What and why."),
                }), &["severity", "comment"])},
            }),
            &["verdict", "findings"],
        ),
    )
}

pub fn submit_findings() -> ToolSpec {
    tool(
        "submit_findings",
        "Submit what the spec misses: edge cases, failure modes, missing acceptance criteria. An empty list means it is complete.",
        object(
            &json!({
                "findings": {"type": "array", "items": object(&json!({
                    "kind": {"type": "string", "enum": ["edge_case", "failure_mode", "missing_acceptance"]},
                    "description": text("What is missing and why it matters."),
                }), &["kind", "description"])},
            }),
            &["findings"],
        ),
    )
}

pub fn submit_children() -> ToolSpec {
    tool(
        "submit_children",
        "Submit the child issues that split this epic.",
        object(
            &json!({
                "children": {"type": "array", "minItems": 1, "items": object(
            &json!({
                    "title": text("Issue title."),
                    "body": text("Issue body: the slice of the spec it delivers and its acceptance."),
                }), &["title", "body"])},
            }),
            &["children"],
        ),
    )
}

pub fn submit_verdict() -> ToolSpec {
    tool(
        "submit_verdict",
        "Submit your verdict on the deliverable: pass, or revise with objections.",
        object(
            &json!({
                "verdict": {"type": "string", "enum": Verdict::NAMES},
                "objections": strings("What must change; empty when the verdict is pass."),
            }),
            &["verdict", "objections"],
        ),
    )
}

fn tool(name: &str, description: &str, input_schema: Value) -> ToolSpec {
    ToolSpec {
        name: name.into(),
        description: description.into(),
        input_schema,
    }
}

/// Checks `value` against `schema`; every error names its field path.
/// `value` without the object fields `schema` does not name, and their
/// paths: a harmless extra field is dropped, not a reason to refuse a
/// deliverable (small models add them).
pub fn drop_unknown(schema: &Value, value: &Value) -> (Value, Vec<String>) {
    let mut dropped = Vec::new();
    let kept = drop_at(schema, value, "", &mut dropped);
    (kept, dropped)
}

fn drop_at(schema: &Value, value: &Value, path: &str, dropped: &mut Vec<String>) -> Value {
    match (schema.get("type").and_then(Value::as_str), value) {
        (Some("object"), Value::Object(map)) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let mut kept = serde_json::Map::new();
            for (name, field) in map {
                match properties.and_then(|properties| properties.get(name)) {
                    Some(field_schema) => {
                        kept.insert(
                            name.clone(),
                            drop_at(field_schema, field, &join(path, name), dropped),
                        );
                    }
                    None => dropped.push(join(path, name)),
                }
            }
            Value::Object(kept)
        }
        (Some("array"), Value::Array(items)) => match schema.get("items") {
            Some(item_schema) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| {
                        drop_at(item_schema, item, &format!("{path}[{index}]"), dropped)
                    })
                    .collect(),
            ),
            None => value.clone(),
        },
        _ => value.clone(),
    }
}

pub fn check(schema: &Value, value: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check_at(schema, value, "", &mut errors);
    errors
}

fn check_at(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let shown = if path.is_empty() {
        "the arguments".to_owned()
    } else {
        format!("`{path}`")
    };
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            let Some(map) = value.as_object() else {
                errors.push(format!("{shown} must be an object"));
                return;
            };
            let properties = schema.get("properties").and_then(Value::as_object);
            for required in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(name) = required.as_str()
                    && !map.contains_key(name)
                {
                    errors.push(format!("`{}` is required", join(path, name)));
                }
            }
            for (name, field) in map {
                match properties.and_then(|properties| properties.get(name)) {
                    Some(field_schema) => check_at(field_schema, field, &join(path, name), errors),
                    None => errors.push(format!("`{}` is not a known field", join(path, name))),
                }
            }
        }
        Some("array") => {
            let Some(items) = value.as_array() else {
                errors.push(format!("{shown} must be an array"));
                return;
            };
            let minimum = schema.get("minItems").and_then(Value::as_u64).unwrap_or(0);
            if (items.len() as u64) < minimum {
                errors.push(format!("{shown} needs at least {minimum} item(s)"));
            }
            if let Some(item_schema) = schema.get("items") {
                for (index, item) in items.iter().enumerate() {
                    check_at(item_schema, item, &format!("{path}[{index}]"), errors);
                }
            }
        }
        Some("string") => {
            let Some(text) = value.as_str() else {
                errors.push(format!("{shown} must be a string"));
                return;
            };
            if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
                && !allowed.iter().any(|option| option.as_str() == Some(text))
            {
                let options: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
                errors.push(format!("{shown} must be one of: {}", options.join(", ")));
            }
            let minimum = schema.get("minLength").and_then(Value::as_u64).unwrap_or(0);
            if (text.trim().chars().count() as u64) < minimum {
                errors.push(format!("{shown} must not be empty"));
            }
        }
        _ => {}
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_dropped_at_every_level() {
        let (kept, dropped) = drop_unknown(
            &submit_children().input_schema,
            &json!({"children": [{"title": "a", "body": "b", "size": "S"}], "notes": "x"}),
        );
        assert_eq!(kept, json!({"children": [{"title": "a", "body": "b"}]}));
        assert_eq!(dropped, ["children[0].size", "notes"]);
        assert!(check(&submit_children().input_schema, &kept).is_empty());
    }

    #[test]
    fn reports_every_error_with_its_path() {
        let spec = submit_spec();
        let errors = check(
            &spec.input_schema,
            &json!({"summary": "", "objectives": "one", "acceptance": ["a", 3], "extra": 1}),
        );
        assert_eq!(
            errors,
            vec![
                "`non_goals` is required",
                "`acceptance[1]` must be a string",
                "`extra` is not a known field",
                "`objectives` must be an array",
                "`summary` must not be empty",
            ]
        );
    }

    #[test]
    fn enums_and_nested_objects() {
        let review = submit_review();
        let errors = check(
            &review.input_schema,
            &json!({"verdict": "lgtm", "findings": [{"severity": "major"}]}),
        );
        assert_eq!(
            errors,
            vec![
                "`findings[0].comment` is required",
                "`verdict` must be one of: approve, request_changes"
            ]
        );
        assert!(
            check(
                &review.input_schema,
                &json!({"verdict": "approve", "findings": []})
            )
            .is_empty()
        );
    }
}
