//! The operations of `GET /openapi.json`, for tests generated from the document: each
//! operation with its access rule (`x-bastion-access`) and a plausible body, and a way to
//! send it.

use super::Server;
use reqwest::{Method, StatusCode};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// One operation of the OpenAPI document, with a plausible request body when it takes one.
#[derive(Clone, Debug)]
pub struct Op {
    pub method: Method,
    pub path: String,
    pub access: String,
    pub body: Option<Value>,
}

impl Op {
    pub fn names_a_tenant(&self) -> bool {
        path_params(&self.path).iter().any(|p| is_tenant_param(p))
    }

    pub fn names_an_item(&self) -> bool {
        path_params(&self.path).iter().any(|p| !is_tenant_param(p))
    }

    pub fn label(&self) -> String {
        format!("{} {} [{}]", self.method, self.path, self.access)
    }
}

pub fn is_tenant_param(name: &str) -> bool {
    name == "assistant_id" || name == "workspace_id"
}

/// The `{name}`s of a path template, in order.
pub fn path_params(path: &str) -> Vec<String> {
    path.split('{')
        .skip(1)
        .filter_map(|s| s.split_once('}').map(|(name, _)| name.to_string()))
        .collect()
}

/// The path template with each `{name}` replaced by `value(name)`.
pub fn fill_path(path: &str, value: &dyn Fn(&str) -> String) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some((head, tail)) = rest.split_once('{') {
        out.push_str(head);
        let (name, after) = tail.split_once('}').expect("a closed path parameter");
        out.push_str(&value(name));
        rest = after;
    }
    out.push_str(rest);
    out
}

pub fn random_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Values for request-body properties by property name; any other property gets a value
/// of its schema's type. `{n}` in a value becomes the operation's number, so unique fields
/// (slugs, domains) are valid in every body at once.
pub type Fill = BTreeMap<&'static str, Value>;

/// A value for `schema` (resolving `$ref`s against `doc`). Objects get every property they
/// declare (bodies deny unknown fields, so nothing else), filled from `fill` by name.
pub fn example(doc: &Value, schema: &Value, name: Option<&str>, fill: &Fill) -> Value {
    if let Some(v) = name.and_then(|n| fill.get(n)) {
        return v.clone();
    }
    if let Some(r) = schema["$ref"].as_str() {
        let key = r.rsplit('/').next().unwrap_or(r);
        return example(doc, &doc["components"]["schemas"][key], name, fill);
    }
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
        return first.clone();
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(variants) = schema[key].as_array() {
            if let Some(v) = variants.iter().find(|v| v["type"] != json!("null")) {
                return example(doc, v, name, fill);
            }
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let ty =
        types
            .into_iter()
            .find(|t| *t != "null")
            .unwrap_or(if schema["properties"].is_object() {
                "object"
            } else {
                "string"
            });
    match ty {
        "object" => {
            let mut out = Map::new();
            if let Some(props) = schema["properties"].as_object() {
                for (k, v) in props {
                    out.insert(k.clone(), example(doc, v, Some(k), fill));
                }
            }
            Value::Object(out)
        }
        "array" => json!([]),
        "integer" | "number" => json!(1),
        "boolean" => json!(false),
        _ => json!("probe"),
    }
}

/// Every operation the server documents, in a safe order to probe them.
pub async fn operations(s: &Server, fill: &Fill) -> Vec<Op> {
    let (status, doc) = s.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("a path item") {
            let method = match method.as_str() {
                "get" => Method::GET,
                "put" => Method::PUT,
                "post" => Method::POST,
                "patch" => Method::PATCH,
                "delete" => Method::DELETE,
                "head" => Method::HEAD,
                "options" => Method::OPTIONS,
                "trace" => Method::TRACE,
                _ => continue, // `parameters`, `summary`, ...: not an operation
            };
            let access = op["x-bastion-access"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no x-bastion-access"))
                .to_string();
            let schema = &op["requestBody"]["content"]["application/json"]["schema"];
            let body = (!schema.is_null()).then(|| {
                let body = example(&doc, schema, None, fill).to_string();
                serde_json::from_str(&body.replace("{n}", &ops.len().to_string()))
                    .expect("a JSON body")
            });
            ops.push(Op {
                method,
                path: path.clone(),
                access,
                body,
            });
        }
    }
    // Reads, then writes, then deletes, deepest paths first: were a refusal ever to fail,
    // deleting a whole tenant comes last and cannot hide what the other probes would show.
    ops.sort_by_key(|o| {
        let rank = match o.method {
            Method::GET | Method::HEAD | Method::OPTIONS => 0,
            Method::DELETE => 2,
            _ => 1,
        };
        (rank, std::cmp::Reverse(o.path.len()))
    });
    ops
}

pub struct Answer {
    pub status: StatusCode,
    pub content_type: String,
    pub body: String,
}

pub async fn send(s: &Server, op: &Op, path: &str, token: Option<&str>) -> Answer {
    let mut req = s.http.request(op.method.clone(), s.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = &op.body {
        req = req.json(b);
    }
    let res = req.send().await.expect("request");
    let status = res.status();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = res.text().await.unwrap_or_default();
    Answer {
        status,
        content_type,
        body,
    }
}

/// `None` when `answer` is `expected` as problem+json; otherwise what went wrong.
pub fn mismatch(what: &str, answer: &Answer, expected: StatusCode) -> Option<String> {
    if answer.status == expected && answer.content_type == PROBLEM_JSON {
        return None;
    }
    Some(format!(
        "{what}: expected {expected} {PROBLEM_JSON}, got {} {:?}: {}",
        answer.status, answer.content_type, answer.body
    ))
}
