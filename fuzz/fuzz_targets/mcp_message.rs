//! A JSON-RPC message from an MCP server (a device's `mcp` payload, an attached endpoint),
//! read as the MCP SDK's server message.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<rmcp::model::ServerJsonRpcMessage>(data);
});
