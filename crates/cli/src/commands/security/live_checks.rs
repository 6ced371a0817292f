//! Checks of the running instance, when it answers: what a client actually sees.

use super::config_checks::{is_loopback_host, is_public};
use super::findings::{Finding, Severity};
use bastion_server::Settings;
use std::time::Duration;

/// What the live checks found, and whether the instance answered at all.
pub struct Live {
    pub reachable: bool,
    pub findings: Vec<Finding>,
}

/// The instance's own address, from the settings.
pub fn default_url(settings: &Settings) -> String {
    let scheme = if settings.serves_tls() {
        "https"
    } else {
        "http"
    };
    let mut addr = settings.bind;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    format!("{scheme}://{addr}")
}

fn client(max_tls12: bool) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(3))
        .redirect(reqwest::redirect::Policy::none())
        // Inspecting, not trusting: a self-signed or internal certificate is looked at too.
        .danger_accept_invalid_certs(true);
    if max_tls12 {
        b = b.max_tls_version(reqwest::tls::Version::TLS_1_2);
    }
    b.build().unwrap_or_default()
}

pub async fn check(url: &str, settings: &Settings) -> Live {
    let mut findings = Vec::new();
    let web = client(false);
    let Ok(health) = web.get(format!("{url}/healthz")).send().await else {
        return Live {
            reachable: false,
            findings,
        };
    };
    let https = url.starts_with("https://");
    if https && !health.headers().contains_key("strict-transport-security") {
        findings.push(Finding::new(
            "live-without-hsts",
            Severity::Medium,
            "HTTPS answers without Strict-Transport-Security",
            format!("{url}/healthz has no HSTS header"),
            "serve TLS with bastion's own listener (it sends HSTS), or add the header at the proxy",
        ));
    }
    if https
        && client(true)
            .get(format!("{url}/healthz"))
            .send()
            .await
            .is_ok()
    {
        findings.push(Finding::new(
            "live-tls-1.2",
            Severity::Medium,
            "the instance accepts TLS 1.2",
            format!("{url} completed a TLS 1.2 handshake"),
            "remove tls_min_version = \"1.2\" (or the proxy's TLS 1.2 support)",
        ));
    }
    if let Ok(metrics) = web.get(format!("{url}/metrics")).send().await {
        if metrics.status().is_success() && (is_public(settings) || !url_is_loopback(url)) {
            findings.push(Finding::new(
                "live-metrics-without-token",
                Severity::High,
                "metrics answer without a token",
                format!(
                    "GET {url}/metrics answered {} without credentials",
                    metrics.status()
                ),
                "set metrics_token and scrape with it",
            ));
        }
    }
    Live {
        reachable: true,
        findings,
    }
}

fn url_is_loopback(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| is_loopback_host(u.host()))
}
