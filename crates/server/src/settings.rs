//! Server settings: what `bastion serve` runs with. Loaded and layered by the CLI (file, then
//! `BASTION_*` environment, then flags); checked here, naming the key at fault.

use ipnet::IpNet;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignupMode {
    /// Nobody signs up; operators add users from the CLI.
    Closed,
    /// Only with an invitation token, for the invited email.
    Invite,
    /// Anyone may create an account (which by itself grants access to nothing).
    Open,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The oldest TLS version bastion's listeners accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum TlsVersion {
    #[serde(rename = "1.2")]
    V1_2,
    #[default]
    #[serde(rename = "1.3")]
    V1_3,
}

/// A local MCP server the operator allows (see `Settings::mcp_stdio_servers`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdioServer {
    /// The program (an absolute path) and its arguments, run without a shell.
    pub command: Vec<String>,
    /// Variables set for it besides PATH.
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Address to listen on. Loopback unless TLS termination is set up (see `trusted_proxies`).
    pub bind: SocketAddr,
    /// Directory for the SQLite database and key files.
    pub data_dir: PathBuf,
    /// `postgres://…` to use PostgreSQL; unset means SQLite in `data_dir`.
    pub database_url: Option<String>,
    /// `redis://…` to share attempt limits and single-use nonces across nodes; unset keeps
    /// them in-process (and nonces in the store).
    #[serde(skip_serializing)]
    pub redis_url: Option<SecretString>,
    /// Assistants answer at `{slug}.{base_domain}` when set.
    pub base_domain: Option<String>,
    pub signup: SignupMode,
    /// CIDRs of reverse proxies that terminate TLS in front of bastion. Only their
    /// `X-Forwarded-For` is believed, and a non-loopback bind requires at least one.
    pub trusted_proxies: Vec<IpNet>,
    /// The `iss` of the access tokens this instance issues and accepts.
    pub issuer: String,
    pub access_token_ttl_secs: u64,
    /// HS256 signing key file (64 hex characters, mode 0600); default `data_dir/jwt-signing.key`.
    pub signing_key_file: Option<PathBuf>,
    /// Earlier signing keys, kept after a rotation so their tokens verify until they expire.
    /// They never sign. Drop them once `access_token_ttl_secs` has passed since the rotation.
    pub retired_signing_key_files: Vec<PathBuf>,
    /// The master key file (32 bytes, base64, mode 0600); default `data_dir/master.key`,
    /// created when missing. Keys for CSRF tokens, sealed TOTP secrets and OAuth state are
    /// derived from it. `BASTION_MASTER_KEY` (base64) takes its place when set.
    pub master_key_file: Option<PathBuf>,
    /// Master keys that still open secrets but never seal: the old key while `bastion vault
    /// rotate-master` runs and until every node uses the new one.
    pub previous_master_key_files: Vec<PathBuf>,
    #[serde(skip_serializing)]
    pub master_key: Option<SecretString>,
    /// A session's refresh token dies when unused this long (each use restarts the clock).
    pub refresh_idle_ttl_secs: u64,
    /// A session ends this long after its sign-in, however active.
    pub refresh_absolute_ttl_secs: u64,
    pub invitation_ttl_hours: u64,
    pub max_body_bytes: usize,
    pub max_json_depth: usize,
    pub max_string_bytes: usize,
    pub request_timeout_secs: u64,
    /// How long a node may serve a cached assistant, membership or user before re-reading it.
    pub cache_ttl_secs: u64,
    /// Bearer token for `GET /metrics`; without it, metrics are served on loopback binds only.
    #[serde(skip_serializing)]
    pub metrics_token: Option<SecretString>,
    pub log_format: LogFormat,
    /// tracing filter, e.g. `info` or `bastion=debug,info`; `RUST_LOG` wins when set.
    pub log_level: String,
    /// OAuth/OIDC sign-in providers (`[[oauth_providers]]` tables: name, kind, issuer,
    /// client_id, client_secret, redirect_uri, scopes).
    pub oauth_providers: Vec<bastion_auth::oauth::ProviderConfig>,
    /// Origins (`https://app.example.com`) an OAuth sign-in may return to, besides paths on
    /// this site.
    pub oauth_allowed_return_origins: Vec<String>,
    /// How long an OAuth sign-in may take between start and callback.
    pub oauth_state_ttl_secs: u64,
    /// Model calls: seconds to connect to a provider.
    pub provider_connect_timeout_secs: u64,
    /// Model calls: seconds to wait for a provider's answer to begin, and at most between two
    /// parts of a streamed answer.
    pub provider_timeout_secs: u64,
    /// Model calls: attempts on a 429, a 5xx or a failed connection, with jittered back-off
    /// (never once an answer has begun streaming).
    pub provider_max_attempts: u32,
    /// Usage counters and trace rows are written in the background this often (ms).
    pub usage_flush_ms: u64,
    /// Hosts a provider key's base URL may point at although they are private, loopback or
    /// link-local (a local Ollama or vLLM: `["127.0.0.1"]`). Exact host names or IP
    /// literals; every other provider host must resolve to public addresses only.
    pub provider_private_hosts: Vec<String>,
    /// How long a conversation waits for a person to approve a tool call; no decision in
    /// time is a refusal.
    pub tool_approval_timeout_secs: u64,
    /// Tool calls a model may propose in one turn; past it, the model answers without tools.
    pub tool_calls_per_turn: u32,
    /// Prices per million tokens in USD (`[model_prices."gpt-4o"] input_per_mtok_usd = 2.5,
    /// output_per_mtok_usd = 10`); a name ending in `*` covers every model it prefixes. They
    /// add to and override the built-in list prices. Spend caps are kept in these prices: a
    /// capped key refuses models without one.
    pub model_prices: std::collections::BTreeMap<String, bastion_runtime::Price>,
    /// The OTLP/HTTP base URL of an OpenTelemetry collector, e.g. `http://127.0.0.1:4318`
    /// (spans go to `{otlp_endpoint}/v1/traces`, as OTLP/JSON). When set, the span of every
    /// model call (`bastion::llm`) is exported, with its OpenTelemetry GenAI attributes;
    /// message contents and keys are never among them. Unset: nothing is exported.
    pub otlp_endpoint: Option<String>,
    /// MCP servers assistants may run as local processes (stdio), by name: the operator's
    /// allowlist (`[mcp_stdio_servers.files] command = ["/usr/bin/node", "/opt/mcp/files.js"]`).
    /// A tenant picks one by name and can change neither its program nor its arguments; it
    /// starts with an empty environment (PATH and `env` only), so bastion's secrets stay out.
    pub mcp_stdio_servers: std::collections::BTreeMap<String, StdioServer>,
    /// How long a device's channel token lives; a bound device gets a new one at every
    /// handshake (the firmware's OTA check at boot).
    pub device_token_ttl_days: u32,
    /// Device handshakes (`/ota/`, `/ota/activate`) one client address may make per minute.
    pub device_handshakes_per_minute: u32,
    /// Days after which a device nobody bound, and that has not been in contact since, is
    /// forgotten (anyone can make a first contact; such rows must not pile up).
    pub unbound_device_days: u32,
    /// How long an activation code shown by a device stays usable.
    pub activation_code_ttl_secs: u64,
    /// Failed activation-code guesses allowed per user, per client address and in all, per
    /// hour and per day. A guess can hit any live code, so these caps (and the number of
    /// live codes) bound an attacker's odds; docs/SECURITY.md has the figure.
    pub activation_failures_user_hour: u64,
    pub activation_failures_user_day: u64,
    pub activation_failures_ip_hour: u64,
    pub activation_failures_ip_day: u64,
    pub activation_failures_global_hour: u64,
    pub activation_failures_global_day: u64,
    /// Where bastion's MQTT endpoint for devices listens (`127.0.0.1:1884`); unset, there is
    /// none and handshakes carry no `mqtt` section. Loopback unless a TLS-terminating proxy is
    /// declared (`trusted_proxies`), as for `bind`.
    pub mqtt_bind: Option<SocketAddr>,
    /// The bearer token an external MQTT broker presents to bastion's authentication and
    /// authorization hooks (`/mqtt/hooks/…`); unset, the hooks answer 404.
    #[serde(skip_serializing)]
    pub mqtt_hook_secret: Option<SecretString>,
    /// The `host:port` devices are told to reach the MQTT endpoint at (behind a proxy, say);
    /// by default the handshake's own host with `mqtt_bind`'s port.
    pub mqtt_public_endpoint: Option<String>,
    /// A PEM certificate chain: with `tls_key_file`, bastion serves HTTPS (and WSS) on
    /// `bind` and MQTT over TLS on `mqtt_bind` itself, and may then bind a public address.
    /// Both files are read again on SIGHUP and when they change.
    pub tls_cert_file: Option<PathBuf>,
    /// The PEM private key of `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
    /// The oldest TLS version accepted: "1.3" (the default) or "1.2".
    pub tls_min_version: TlsVersion,
    /// How often the certificate files are checked for a change, in seconds.
    pub tls_reload_check_secs: u64,
    /// Origins (`https://app.example.com`) whose pages may call the API across sites with
    /// bearer tokens; empty (the default), browsers refuse cross-origin reads.
    pub cors_allowed_origins: Vec<String>,
    /// Requests one client address may make per minute, on any route but the health probes
    /// (per node; 429 with Retry-After past it).
    pub rate_limit_ip_per_minute: u32,
    /// Requests one signed-in user may make per minute (per node).
    pub rate_limit_user_per_minute: u32,
    /// Requests an API key without its own `rate_limit_per_minute` may make per minute.
    pub rate_limit_key_per_minute: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./bastion-data"),
            database_url: None,
            redis_url: None,
            base_domain: None,
            signup: SignupMode::Invite,
            trusted_proxies: Vec::new(),
            issuer: "bastion".into(),
            access_token_ttl_secs: 600,
            signing_key_file: None,
            retired_signing_key_files: Vec::new(),
            master_key_file: None,
            previous_master_key_files: Vec::new(),
            master_key: None,
            refresh_idle_ttl_secs: 7 * 24 * 3600,
            refresh_absolute_ttl_secs: 30 * 24 * 3600,
            invitation_ttl_hours: 7 * 24,
            max_body_bytes: 1024 * 1024,
            max_json_depth: 32,
            max_string_bytes: 64 * 1024,
            request_timeout_secs: 30,
            cache_ttl_secs: 10,
            metrics_token: None,
            log_format: LogFormat::Text,
            log_level: "info".into(),
            oauth_providers: Vec::new(),
            oauth_allowed_return_origins: Vec::new(),
            oauth_state_ttl_secs: 600,
            provider_connect_timeout_secs: 5,
            provider_timeout_secs: 60,
            provider_max_attempts: 3,
            usage_flush_ms: 200,
            provider_private_hosts: Vec::new(),
            tool_approval_timeout_secs: 300,
            tool_calls_per_turn: 8,
            model_prices: Default::default(),
            otlp_endpoint: None,
            mcp_stdio_servers: Default::default(),
            device_token_ttl_days: 30,
            device_handshakes_per_minute: 300,
            unbound_device_days: 30,
            activation_code_ttl_secs: 600,
            activation_failures_user_hour: 10,
            activation_failures_user_day: 20,
            activation_failures_ip_hour: 20,
            activation_failures_ip_day: 50,
            activation_failures_global_hour: 200,
            activation_failures_global_day: 1000,
            mqtt_bind: None,
            mqtt_public_endpoint: None,
            mqtt_hook_secret: None,
            tls_cert_file: None,
            tls_key_file: None,
            tls_min_version: TlsVersion::V1_3,
            tls_reload_check_secs: 10,
            cors_allowed_origins: Vec::new(),
            rate_limit_ip_per_minute: 1200,
            rate_limit_user_per_minute: 1200,
            rate_limit_key_per_minute: 6000,
        }
    }
}

/// A setting that cannot be used, with the key that holds it.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting `{key}`: {reason}")]
pub struct SettingsError {
    pub key: &'static str,
    pub reason: String,
}

fn bad(key: &'static str, reason: impl Into<String>) -> SettingsError {
    SettingsError {
        key,
        reason: reason.into(),
    }
}

impl Settings {
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| bastion_store::Store::sqlite_url(&self.data_dir))
    }

    pub fn signing_key_path(&self) -> PathBuf {
        self.signing_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("jwt-signing.key"))
    }

    pub fn master_key_path(&self) -> PathBuf {
        self.master_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("master.key"))
    }

    /// The built-in prices with `model_prices` over them.
    pub fn price_table(&self) -> bastion_runtime::PriceTable {
        let mut table = bastion_runtime::PriceTable::builtin();
        for (model, price) in &self.model_prices {
            table.set(model, price.clone());
        }
        table
    }

    /// Whether bastion terminates TLS itself (a certificate and key are configured).
    pub fn serves_tls(&self) -> bool {
        self.tls_cert_file.is_some() && self.tls_key_file.is_some()
    }

    /// Whether the bind address is reachable from other machines.
    pub fn is_public_bind(&self) -> bool {
        !self.bind.ip().is_loopback()
    }

    /// Checks every value; the error names the first bad key.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if let Some(url) = &self.database_url {
            if !(url.starts_with("sqlite:")
                || url.starts_with("postgres:")
                || url.starts_with("postgresql:"))
            {
                return Err(bad(
                    "database_url",
                    "must start with sqlite:, postgres: or postgresql:",
                ));
            }
        }
        if let Some(d) = &self.base_domain {
            if !crate::validate::is_hostname(d) {
                return Err(bad(
                    "base_domain",
                    format!("{d:?} is not a lower-case DNS name"),
                ));
            }
        }
        if !(1..=600).contains(&self.provider_timeout_secs) {
            return Err(bad("provider_timeout_secs", "must be between 1 and 600"));
        }
        if !(1..=60).contains(&self.provider_connect_timeout_secs) {
            return Err(bad(
                "provider_connect_timeout_secs",
                "must be between 1 and 60",
            ));
        }
        if !(1..=10).contains(&self.provider_max_attempts) {
            return Err(bad("provider_max_attempts", "must be between 1 and 10"));
        }
        if !(10..=10_000).contains(&self.usage_flush_ms) {
            return Err(bad("usage_flush_ms", "must be between 10 and 10000"));
        }
        if !(1..=86_400).contains(&self.tool_approval_timeout_secs) {
            return Err(bad(
                "tool_approval_timeout_secs",
                "must be between 1 and 86400",
            ));
        }
        if !(1..=365).contains(&self.device_token_ttl_days) {
            return Err(bad("device_token_ttl_days", "must be between 1 and 365"));
        }
        if self
            .mqtt_hook_secret
            .as_ref()
            .is_some_and(|s| secrecy::ExposeSecret::expose_secret(s).len() < 24)
        {
            return Err(bad("mqtt_hook_secret", "must be at least 24 characters"));
        }
        if !(1..=3650).contains(&self.unbound_device_days) {
            return Err(bad("unbound_device_days", "must be between 1 and 3650"));
        }
        if !(1..=100_000).contains(&self.device_handshakes_per_minute) {
            return Err(bad(
                "device_handshakes_per_minute",
                "must be between 1 and 100000",
            ));
        }
        if !(60..=3600).contains(&self.activation_code_ttl_secs) {
            return Err(bad(
                "activation_code_ttl_secs",
                "must be between 60 and 3600",
            ));
        }
        for (name, v) in [
            (
                "activation_failures_user_hour",
                self.activation_failures_user_hour,
            ),
            (
                "activation_failures_user_day",
                self.activation_failures_user_day,
            ),
            (
                "activation_failures_ip_hour",
                self.activation_failures_ip_hour,
            ),
            (
                "activation_failures_ip_day",
                self.activation_failures_ip_day,
            ),
            (
                "activation_failures_global_hour",
                self.activation_failures_global_hour,
            ),
            (
                "activation_failures_global_day",
                self.activation_failures_global_day,
            ),
        ] {
            if !(1..=1_000_000).contains(&v) {
                return Err(bad(name, "must be between 1 and 1000000"));
            }
        }
        for (name, v) in [
            ("rate_limit_ip_per_minute", self.rate_limit_ip_per_minute),
            (
                "rate_limit_user_per_minute",
                self.rate_limit_user_per_minute,
            ),
            ("rate_limit_key_per_minute", self.rate_limit_key_per_minute),
        ] {
            if !(1..=10_000_000).contains(&v) {
                return Err(bad(name, "must be between 1 and 10000000"));
            }
        }
        if !(1..=64).contains(&self.tool_calls_per_turn) {
            return Err(bad("tool_calls_per_turn", "must be between 1 and 64"));
        }
        for (name, server) in &self.mcp_stdio_servers {
            let program_ok = server
                .command
                .first()
                .is_some_and(|p| std::path::Path::new(p).is_absolute());
            if !program_ok {
                return Err(bad(
                    "mcp_stdio_servers",
                    format!("{name}: command starts with the program's absolute path"),
                ));
            }
        }
        for (model, p) in &self.model_prices {
            let ok = |v: f64| v.is_finite() && v >= 0.0;
            if !ok(p.input_per_mtok_usd) || !ok(p.output_per_mtok_usd) {
                return Err(bad(
                    "model_prices",
                    format!("{model:?}: prices are non-negative numbers"),
                ));
            }
        }
        if self.issuer.trim().is_empty() {
            return Err(bad("issuer", "must not be empty"));
        }
        if !(60..=3600).contains(&self.access_token_ttl_secs) {
            return Err(bad(
                "access_token_ttl_secs",
                "must be between 60 and 3600 (access tokens are short-lived)",
            ));
        }
        if !(300..=90 * 24 * 3600).contains(&self.refresh_absolute_ttl_secs) {
            return Err(bad(
                "refresh_absolute_ttl_secs",
                "must be between 300 (5 minutes) and 7776000 (90 days)",
            ));
        }
        if !(60..=self.refresh_absolute_ttl_secs).contains(&self.refresh_idle_ttl_secs) {
            return Err(bad(
                "refresh_idle_ttl_secs",
                "must be between 60 and refresh_absolute_ttl_secs",
            ));
        }
        if !(1..=24 * 30).contains(&self.invitation_ttl_hours) {
            return Err(bad("invitation_ttl_hours", "must be between 1 and 720"));
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.max_body_bytes) {
            return Err(bad("max_body_bytes", "must be between 1 KiB and 64 MiB"));
        }
        if !(2..=128).contains(&self.max_json_depth) {
            return Err(bad("max_json_depth", "must be between 2 and 128"));
        }
        if !(64..=self.max_body_bytes).contains(&self.max_string_bytes) {
            return Err(bad(
                "max_string_bytes",
                "must be between 64 and max_body_bytes",
            ));
        }
        if !(1..=600).contains(&self.request_timeout_secs) {
            return Err(bad("request_timeout_secs", "must be between 1 and 600"));
        }
        if self.cache_ttl_secs > 300 {
            return Err(bad(
                "cache_ttl_secs",
                "must be at most 300 (stale grants outlive revocation)",
            ));
        }
        if let Some(endpoint) = &self.otlp_endpoint {
            let ok = url::Url::parse(endpoint).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && u.username().is_empty()
                    && u.password().is_none()
                    && u.query().is_none()
                    && u.fragment().is_none()
            });
            if !ok {
                return Err(bad(
                    "otlp_endpoint",
                    "must be an http:// or https:// URL such as http://127.0.0.1:4318, \
                     without credentials (give those in OTEL_EXPORTER_OTLP_HEADERS)",
                ));
            }
        }
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(_), None) => {
                return Err(bad("tls_key_file", "is needed with tls_cert_file"));
            }
            (None, Some(_)) => {
                return Err(bad("tls_cert_file", "is needed with tls_key_file"));
            }
            _ => {}
        }
        for origin in &self.cors_allowed_origins {
            let ok = url::Url::parse(origin).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && u.origin().ascii_serialization() == *origin
            });
            if !ok {
                return Err(bad(
                    "cors_allowed_origins",
                    format!("{origin:?} is not an origin such as https://app.example.com (scheme, host and port only)"),
                ));
            }
        }
        if !(1..=3600).contains(&self.tls_reload_check_secs) {
            return Err(bad("tls_reload_check_secs", "must be between 1 and 3600"));
        }
        tracing_filter_ok(&self.log_level).map_err(|e| bad("log_level", e))?;
        self.validate_oauth()?;
        Ok(())
    }

    /// Refuses to serve plain HTTP or MQTT on an address other machines can reach, unless
    /// bastion serves TLS itself or a TLS-terminating proxy is declared.
    pub fn check_bind(&self) -> Result<(), SettingsError> {
        if self.serves_tls() {
            return Ok(());
        }
        let public_mqtt = self.mqtt_bind.is_some_and(|a| !a.ip().is_loopback());
        if public_mqtt && self.trusted_proxies.is_empty() {
            return Err(bad(
                "mqtt_bind",
                "is reachable from other machines, and bastion does not serve plain MQTT there: \
                 device tokens would cross the network in clear. Set tls_cert_file and tls_key_file, \
                 or keep it on loopback behind a TLS-terminating proxy declared in trusted_proxies.",
            ));
        }
        if self.is_public_bind() && self.trusted_proxies.is_empty() {
            return Err(bad(
                "bind",
                format!(
                    "{} is reachable from other machines, and bastion does not serve plain HTTP there: \
                     passwords and tokens would cross the network in clear. Set tls_cert_file and \
                     tls_key_file (`bastion certs self-signed` makes a pair for trying it), or bind to \
                     127.0.0.1 and put a TLS-terminating reverse proxy in front, declaring it with trusted_proxies = [\"10.0.0.5/32\"] \
                     (or BASTION_TRUSTED_PROXIES), or keep the loopback default.",
                    self.bind
                ),
            ));
        }
        Ok(())
    }
}

impl Settings {
    /// Each provider's fields, unique names, a redirect URI that reaches this provider's
    /// callback route, bare allowed origins, a state lifetime that bounds a sign-in.
    fn validate_oauth(&self) -> Result<(), SettingsError> {
        let mut names = std::collections::HashSet::new();
        for p in &self.oauth_providers {
            p.validate()
                .map_err(|e| bad("oauth_providers", e.to_string()))?;
            if !names.insert(p.name.as_str()) {
                return Err(bad(
                    "oauth_providers",
                    format!("two providers are named {:?}", p.name),
                ));
            }
            let callback = format!("/api/v1/auth/oauth/{}/callback", p.name);
            if p.redirect_path().as_deref() != Some(callback.as_str()) {
                return Err(bad(
                    "oauth_providers",
                    format!(
                        "provider {:?}, field `redirect_uri`: its path must be {callback} (the callback route of this provider)",
                        p.name
                    ),
                ));
            }
        }
        bastion_auth::oauth::AllowedOrigins::parse(&self.oauth_allowed_return_origins)
            .map_err(|e| bad("oauth_allowed_return_origins", e))?;
        if !(1..=3600).contains(&self.oauth_state_ttl_secs) {
            return Err(bad("oauth_state_ttl_secs", "must be between 1 and 3600"));
        }
        Ok(())
    }
}

fn tracing_filter_ok(s: &str) -> Result<(), String> {
    if s.is_empty() || s.chars().any(|c| c.is_whitespace()) {
        return Err("must be a tracing filter such as `info` or `bastion=debug,info`".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_loopback() {
        let s = Settings::default();
        s.validate().unwrap();
        s.check_bind().unwrap();
        assert_eq!(s.signup, SignupMode::Invite);
    }

    #[test]
    fn a_public_bind_without_a_proxy_is_refused() {
        let s = Settings {
            bind: "0.0.0.0:8080".parse().unwrap(),
            ..Settings::default()
        };
        assert_eq!(s.check_bind().unwrap_err().key, "bind");
        let behind_proxy = Settings {
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
            ..s
        };
        behind_proxy.check_bind().unwrap();
        let own_tls = Settings {
            tls_cert_file: Some("cert.pem".into()),
            tls_key_file: Some("key.pem".into()),
            mqtt_bind: Some("0.0.0.0:8883".parse().unwrap()),
            trusted_proxies: Vec::new(),
            ..behind_proxy
        };
        own_tls.validate().unwrap();
        own_tls.check_bind().unwrap();
        let half = Settings {
            tls_key_file: None,
            ..own_tls
        };
        assert_eq!(half.validate().unwrap_err().key, "tls_key_file");
    }

    #[test]
    fn oauth_providers_are_checked_and_named() {
        let provider = |name: &str, redirect: &str| -> bastion_auth::oauth::ProviderConfig {
            serde_json::from_value(serde_json::json!({
                "name": name, "kind": "oidc", "issuer": "https://id.example.com",
                "client_id": "bastion", "client_secret": "s3cret",
                "redirect_uri": redirect,
            }))
            .unwrap()
        };
        let good = "https://bastion.example.com/api/v1/auth/oauth/corp/callback";
        let s = Settings {
            oauth_providers: vec![provider("corp", good)],
            oauth_allowed_return_origins: vec!["https://app.example.com".into()],
            ..Settings::default()
        };
        s.validate().unwrap();
        for redirect in [
            "http://bastion.example.com/api/v1/auth/oauth/corp/callback",
            "https://bastion.example.com/api/v1/auth/oauth/corp/callback/",
            "https://bastion.example.com/api/v1/auth/oauth/CORP/callback",
            "https://bastion.example.com/api/v1/auth/oauth/other/callback",
            "https://bastion.example.com@evil.com/api/v1/auth/oauth/corp/callback",
        ] {
            let s = Settings {
                oauth_providers: vec![provider("corp", redirect)],
                ..Settings::default()
            };
            let e = s.validate().unwrap_err();
            assert_eq!(e.key, "oauth_providers", "{redirect}");
            assert!(e.reason.contains("redirect_uri"), "{redirect}: {e}");
        }
        let twice = Settings {
            oauth_providers: vec![provider("corp", good), provider("corp", good)],
            ..Settings::default()
        };
        assert_eq!(twice.validate().unwrap_err().key, "oauth_providers");
        let origins = Settings {
            oauth_allowed_return_origins: vec!["https://app.example.com/path".into()],
            ..Settings::default()
        };
        assert_eq!(
            origins.validate().unwrap_err().key,
            "oauth_allowed_return_origins"
        );
        assert!(!format!("{:?}", s).contains("s3cret"));
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let s = Settings {
            access_token_ttl_secs: 86_400,
            ..Settings::default()
        };
        assert_eq!(s.validate().unwrap_err().key, "access_token_ttl_secs");
        let s = Settings {
            base_domain: Some("Not A Domain".into()),
            ..Settings::default()
        };
        assert_eq!(s.validate().unwrap_err().key, "base_domain");
    }
}
