//! Layered settings: defaults < TOML file < `BASTION_*` environment < flags.

use anyhow::{bail, Context};
use bastion_server::Settings;
use clap::Args;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The keys `BASTION_*` variables may set (anything else in the environment is not ours).
const KEYS: &[&str] = &[
    "bind",
    "device_token_ttl_days",
    "device_handshakes_per_minute",
    "unbound_device_days",
    "mqtt_bind",
    "mqtt_hook_secret",
    "mqtt_public_endpoint",
    "tls_cert_file",
    "tls_key_file",
    "tls_min_version",
    "tls_reload_check_secs",
    "cors_allowed_origins",
    "rate_limit_ip_per_minute",
    "rate_limit_user_per_minute",
    "rate_limit_key_per_minute",
    "activation_code_ttl_secs",
    "activation_failures_user_hour",
    "activation_failures_user_day",
    "activation_failures_ip_hour",
    "activation_failures_ip_day",
    "activation_failures_global_hour",
    "activation_failures_global_day",
    "data_dir",
    "database_url",
    "redis_url",
    "base_domain",
    "signup",
    "trusted_proxies",
    "issuer",
    "access_token_ttl_secs",
    "signing_key_file",
    "retired_signing_key_files",
    "master_key_file",
    "master_key",
    "refresh_idle_ttl_secs",
    "refresh_absolute_ttl_secs",
    "invitation_ttl_hours",
    "max_body_bytes",
    "max_json_depth",
    "max_string_bytes",
    "request_timeout_secs",
    "cache_ttl_secs",
    "metrics_token",
    "log_format",
    "log_level",
    "oauth_providers",
    "oauth_allowed_return_origins",
    "oauth_state_ttl_secs",
    "otlp_endpoint",
    "previous_master_key_files",
    "provider_connect_timeout_secs",
    "provider_timeout_secs",
    "provider_max_attempts",
    "usage_flush_ms",
    "provider_private_hosts",
    "tool_approval_timeout_secs",
    "tool_calls_per_turn",
    "mcp_stdio_servers",
    "model_prices",
];

/// Flags every command that touches the store takes.
#[derive(Args, Debug, Clone, Default)]
pub struct StoreArgs {
    /// TOML settings file (keys as in docs/OPERATIONS.md).
    #[arg(long, env = "BASTION_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory: SQLite database and key files [default: ./bastion-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// postgres://… to use PostgreSQL instead of SQLite in the data directory.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
}

#[derive(Serialize, Default)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_domain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signup: Option<String>,
}

impl StoreArgs {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            ..Overrides::default()
        }
    }
}

/// Loads and validates settings; the error names the file, variable or key at fault.
pub fn load(config: Option<&Path>, overrides: Overrides) -> anyhow::Result<Settings> {
    let mut figment = Figment::from(Serialized::defaults(Settings::default()));
    if let Some(path) = config {
        if !path.is_file() {
            bail!("config file {} does not exist", path.display());
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    figment = figment
        .merge(Env::prefixed("BASTION_").filter(|k| KEYS.iter().any(|known| k == *known)))
        .merge(Serialized::globals(overrides));
    let settings: Settings = figment.extract().map_err(|errors| {
        let all = errors
            .into_iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ");
        anyhow::anyhow!("invalid configuration: {all}")
    })?;
    settings.validate().context("invalid configuration")?;
    Ok(settings)
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closure signature, not ours
mod tests {
    use super::*;

    #[test]
    fn flags_beat_environment_beat_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "b.toml",
                "bind = \"127.0.0.1:1111\"\nissuer = \"from-file\"\ncache_ttl_secs = 3\n",
            )?;
            jail.set_env("BASTION_BIND", "127.0.0.1:2222");
            jail.set_env("BASTION_ISSUER", "from-env");
            let s = load(Some(Path::new("b.toml")), Overrides::default()).unwrap();
            assert_eq!(s.bind.port(), 2222);
            assert_eq!(s.issuer, "from-env");
            assert_eq!(s.cache_ttl_secs, 3);
            let flags = Overrides {
                bind: Some("127.0.0.1:3333".into()),
                ..Overrides::default()
            };
            let s = load(Some(Path::new("b.toml")), flags).unwrap();
            assert_eq!(s.bind.port(), 3333);
            Ok(())
        });
    }

    #[test]
    fn otlp_endpoint_comes_from_the_environment_and_is_checked() {
        figment::Jail::expect_with(|jail| {
            assert_eq!(
                load(None, Overrides::default()).unwrap().otlp_endpoint,
                None
            );
            jail.set_env("BASTION_OTLP_ENDPOINT", "http://127.0.0.1:4318");
            let s = load(None, Overrides::default()).unwrap();
            assert_eq!(s.otlp_endpoint.as_deref(), Some("http://127.0.0.1:4318"));
            for bad in [
                "127.0.0.1:4318",
                "ftp://collector",
                "http://user:pw@collector:4318",
            ] {
                jail.set_env("BASTION_OTLP_ENDPOINT", bad);
                let e = load(None, Overrides::default()).unwrap_err();
                assert!(format!("{e:#}").contains("otlp_endpoint"), "{bad}: {e:#}");
            }
            Ok(())
        });
    }

    #[test]
    fn every_setting_can_come_from_the_environment() {
        let doc = serde_json::to_value(Settings::default()).expect("settings serialize");
        for key in doc.as_object().expect("an object").keys() {
            assert!(
                KEYS.contains(&key.as_str()),
                "BASTION_{} is ignored: add {key} to KEYS",
                key.to_uppercase()
            );
        }
    }

    #[test]
    fn errors_name_the_bad_key() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "bnid = \"127.0.0.1:1\"\n")?;
            let e = load(Some(Path::new("bad.toml")), Overrides::default()).unwrap_err();
            assert!(format!("{e:#}").contains("bnid"), "{e:#}");
            jail.set_env("BASTION_ACCESS_TOKEN_TTL_SECS", "soon");
            let e = load(None, Overrides::default()).unwrap_err();
            assert!(
                format!("{e:#}")
                    .to_lowercase()
                    .contains("access_token_ttl_secs"),
                "{e:#}"
            );
            Ok(())
        });
    }
}
