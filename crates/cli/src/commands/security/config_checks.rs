//! Checks of the settings and the files they name: what an operator set, read without
//! starting anything.

use super::findings::{Finding, Severity};
use bastion_server::settings::TlsVersion;
use bastion_server::Settings;
use secrecy::ExposeSecret;
use std::path::Path;

pub fn check(settings: &Settings) -> Vec<Finding> {
    let mut out = Vec::new();
    transport(settings, &mut out);
    keys(settings, &mut out);
    data_dir(settings, &mut out);
    connections(settings, &mut out);
    out
}

/// Reached by others: a public bind, or a proxy in front that publishes it.
pub fn is_public(settings: &Settings) -> bool {
    settings.is_public_bind() || !settings.trusted_proxies.is_empty()
}

fn transport(s: &Settings, out: &mut Vec<Finding>) {
    let proxied = !s.trusted_proxies.is_empty();
    if s.is_public_bind() && !s.serves_tls() && !proxied {
        out.push(Finding::new(
            "public-bind-without-tls",
            Severity::Critical,
            "a public address without TLS",
            format!("bind = {} is reachable from other machines and bastion serves plain HTTP there (serve refuses to start)", s.bind),
            "set tls_cert_file and tls_key_file, or bind to 127.0.0.1 behind a TLS-terminating proxy listed in trusted_proxies",
        ));
    }
    if s.mqtt_bind.is_some_and(|a| !a.ip().is_loopback()) && !s.serves_tls() && !proxied {
        out.push(Finding::new(
            "public-mqtt-without-tls",
            Severity::Critical,
            "a public MQTT endpoint without TLS",
            "mqtt_bind is reachable from other machines and device tokens would cross the network in clear",
            "set tls_cert_file and tls_key_file, or keep mqtt_bind on loopback behind a TLS-terminating proxy",
        ));
    }
    if s.serves_tls() {
        if s.tls_min_version == TlsVersion::V1_2 {
            out.push(Finding::new(
                "tls-1.2-allowed",
                Severity::Medium,
                "TLS below 1.3 is accepted",
                "tls_min_version = \"1.2\"",
                "remove tls_min_version (TLS 1.3 only) unless clients that cannot speak TLS 1.3 must connect",
            ));
        }
        if let (Some(cert), Some(key)) = (&s.tls_cert_file, &s.tls_key_file) {
            if let Err(e) = bastion_server::tls::load(cert, key) {
                out.push(Finding::new(
                    "tls-certificate-unusable",
                    Severity::Critical,
                    "the TLS certificate cannot be used",
                    e.to_string(),
                    "point tls_cert_file and tls_key_file at a PEM certificate chain and its key",
                ));
            }
            file_mode(key, "tls_key_file", out);
        }
    }
    if is_public(s) && s.metrics_token.is_none() && !s.is_public_bind() {
        out.push(Finding::new(
            "metrics-without-token",
            Severity::High,
            "metrics are served without a token behind a proxy",
            "trusted_proxies is set (the instance is published) and metrics_token is not: /metrics answers anyone the proxy lets through",
            "set metrics_token (BASTION_METRICS_TOKEN) and give it to the scraper",
        ));
    }
}

/// A key of 32 random bytes has about 31 distinct byte values; a made-up one ("0000…",
/// "abab…") has few.
fn looks_made_up(bytes: &[u8]) -> bool {
    let distinct: std::collections::BTreeSet<u8> = bytes.iter().copied().collect();
    distinct.len() < 16
}

fn keys(s: &Settings, out: &mut Vec<Finding>) {
    let signing = s.signing_key_path();
    if signing.exists() {
        file_mode(&signing, "signing_key_file", out);
        match bastion_auth::signing_key::SigningKeys::load(&signing, &[]) {
            Ok(k) if looks_made_up(&k.current) => out.push(weak(
                "signing-key-weak",
                "the token signing key",
                &signing.display().to_string(),
            )),
            Ok(_) => {}
            Err(e) => out.push(unusable("signing-key-unusable", e.to_string())),
        }
    }
    match &s.master_key {
        Some(inline) => match bastion_auth::signing_key::load_master_key(
            Some(inline.expose_secret()),
            Path::new(""),
        ) {
            Ok(k) if looks_made_up(&k) => out.push(weak(
                "master-key-weak",
                "the master key",
                "BASTION_MASTER_KEY",
            )),
            Ok(_) => {}
            Err(e) => out.push(unusable("master-key-unusable", e.to_string())),
        },
        None => {
            let path = s.master_key_path();
            if path.exists() {
                file_mode(&path, "master_key_file", out);
                match bastion_auth::signing_key::load_existing_master_key(&path) {
                    Ok(k) if looks_made_up(&k) => out.push(weak(
                        "master-key-weak",
                        "the master key",
                        &path.display().to_string(),
                    )),
                    Ok(_) => {}
                    Err(e) => out.push(unusable("master-key-unusable", e.to_string())),
                }
            }
        }
    }
}

fn weak(id: &'static str, what: &str, where_: &str) -> Finding {
    Finding::new(
        id,
        Severity::Critical,
        format!("{what} is not random"),
        format!("{where_} holds a key with few distinct bytes: a default or made-up value others can guess"),
        "replace it with 32 random bytes (remove the file and let bastion create it, or `bastion vault rotate-master` for the master key)",
    )
}

fn unusable(id: &'static str, why: String) -> Finding {
    Finding::new(
        id,
        Severity::Critical,
        "a key cannot be used",
        why,
        "restore the key file (32 bytes, mode 0600)",
    )
}

/// A secret file others may read.
fn file_mode(path: &Path, setting: &str, out: &mut Vec<Finding>) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                out.push(Finding::new(
                    "key-file-permissions",
                    Severity::Critical,
                    "a key file is readable by other users",
                    format!("{setting}: {} has mode {mode:o}", path.display()),
                    format!("chmod 600 {}", path.display()),
                ));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (path, setting, out);
}

fn data_dir(s: &Settings, out: &mut Vec<Finding>) {
    #[cfg(unix)]
    if s.database_url.is_none() {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(&s.data_dir) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                out.push(Finding::new(
                    "data-dir-permissions",
                    Severity::High,
                    "the data directory is open to other users",
                    format!(
                        "{} has mode {mode:o} (it holds the SQLite database)",
                        s.data_dir.display()
                    ),
                    format!("chmod 700 {}", s.data_dir.display()),
                ));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (s, out);
}

pub fn is_loopback_host(host: Option<url::Host<&str>>) -> bool {
    match host {
        // A URL of a scheme the URL standard does not know (postgres:, redis:) keeps its
        // host as written, addresses included.
        Some(url::Host::Domain(d)) => {
            d == "localhost"
                || d.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => true,
    }
}

fn connections(s: &Settings, out: &mut Vec<Finding>) {
    if let Some(redis) = &s.redis_url {
        if let Ok(u) = url::Url::parse(redis.expose_secret()) {
            if u.scheme() == "redis" && !is_loopback_host(u.host()) {
                out.push(Finding::new(
                    "redis-without-tls",
                    Severity::High,
                    "Redis is reached without TLS",
                    format!("redis_url points at {} with redis:// (attempt counters and nonces cross the network in clear)", u.host_str().unwrap_or("")),
                    "use rediss:// with a server that has TLS",
                ));
            }
        }
    }
    if let Some(db) = &s.database_url {
        if let Ok(u) = url::Url::parse(db) {
            let pg = matches!(u.scheme(), "postgres" | "postgresql");
            let sslmode = u
                .query_pairs()
                .find(|(k, _)| k == "sslmode")
                .map(|(_, v)| v.into_owned());
            let verified = matches!(
                sslmode.as_deref(),
                Some("require" | "verify-ca" | "verify-full")
            );
            if pg && !is_loopback_host(u.host()) && !verified {
                out.push(Finding::new(
                    "postgres-without-tls",
                    Severity::High,
                    "PostgreSQL is reached without requiring TLS",
                    format!(
                        "database_url points at {} without sslmode=require (or verify-full)",
                        u.host_str().unwrap_or("")
                    ),
                    "add ?sslmode=verify-full (or at least require) to database_url",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{is_loopback_host, looks_made_up};

    #[test]
    fn loopback_hosts_are_recognised_in_any_url() {
        for (url, loopback) in [
            ("postgres://u@127.0.0.1:5432/db", true),
            ("postgres://u@[::1]:5432/db", true),
            ("postgres://u@localhost/db", true),
            ("postgres:///db?host=/run/postgresql", true),
            ("redis://127.0.0.1:6379", true),
            ("postgres://u@10.0.0.7/db", false),
            ("redis://cache.internal:6379", false),
            ("postgres://u@127.0.0.1.evil.test/db", false),
        ] {
            let u = url::Url::parse(url).unwrap();
            assert_eq!(is_loopback_host(u.host()), loopback, "{url}");
        }
    }

    #[test]
    fn made_up_keys_are_told_from_random_ones() {
        assert!(looks_made_up(&[0u8; 32]));
        assert!(looks_made_up(&b"abababababababababababababababab"[..]));
        let random: Vec<u8> = (0..32u8)
            .map(|i| i.wrapping_mul(37).wrapping_add(11))
            .collect();
        assert!(!looks_made_up(&random));
    }
}
