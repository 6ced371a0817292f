//! bastion's tool boundary, the parts that do not need a server or a database: where a tool
//! may connect ([`egress`]: the SSRF guard every outbound tool connection goes through), the
//! built-in tools ([`fetch`] and [`files`]), checking a proposed call's arguments against the
//! tool's JSON Schema ([`schema`]), and how a result goes back to the model ([`boundary`]:
//! truncated, hashed for the audit log, and labelled as untrusted data).

pub mod boundary;
pub mod egress;
pub mod fetch;
pub mod files;
pub mod mcp;
pub mod schema;
