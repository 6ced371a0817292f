//! Where provider calls may connect. A provider key's base URL is set by a tenant admin, so
//! it must not become a way into bastion's own network: a host that resolves to a private,
//! loopback, link-local or metadata address is refused unless the operator listed that
//! exact host (`provider_private_hosts`, e.g. a local Ollama). The check is made on the
//! addresses the connection then uses (reqwest's resolver is ours), so nothing can rebind
//! between check and connect; IP literals, which reqwest never resolves, are checked per
//! call.

use bastion_tools::egress::{is_public, EgressPolicy};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use url::{Host, Url};

/// The error the resolver gives for a refused name, found again in reqwest's error chain.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves to a non-public address")]
pub(crate) struct Refused {
    host: String,
}

/// A DNS resolver that hands reqwest only addresses a provider call may use.
pub(crate) struct PublicOnly {
    pub(crate) policy: Arc<EgressPolicy>,
}

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed = policy.allows(&Host::Domain(host.as_str()));
            // One private address among public ones is what a rebinding answer looks like.
            if !allowed && addrs.iter().any(|a| !is_public(a.ip())) {
                return Err(Box::new(Refused { host }) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Whether a call to `url` may go ahead as far as an IP-literal host is concerned (names
/// are judged by [`PublicOnly`] when they are resolved).
pub(crate) fn literal_allowed(policy: &EgressPolicy, url: &Url) -> bool {
    let ip = match url.host() {
        Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
        _ => return true,
    };
    is_public(ip) || url.host().is_some_and(|h| policy.allows(&h))
}

/// Whether reqwest's error came from [`PublicOnly`] refusing the name.
pub(crate) fn is_refusal(err: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if e.downcast_ref::<Refused>().is_some() {
            return true;
        }
        source = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(hosts: &[&str]) -> EgressPolicy {
        EgressPolicy {
            allowed_private_hosts: hosts.iter().map(|h| h.to_string()).collect(),
        }
    }

    #[test]
    fn private_literals_need_the_exact_host_listed() {
        let none = policy(&[]);
        for url in [
            "http://127.0.0.1:11434/v1",
            "http://[::1]/v1",
            "http://169.254.169.254/v1",
            "http://10.1.2.3/v1",
            "http://2130706433/v1",
            "http://[::ffff:127.0.0.1]/v1",
        ] {
            assert!(!literal_allowed(&none, &Url::parse(url).unwrap()), "{url}");
        }
        assert!(literal_allowed(
            &none,
            &Url::parse("https://1.1.1.1/v1").unwrap()
        ));
        assert!(literal_allowed(
            &none,
            &Url::parse("https://api.openai.com/v1").unwrap()
        ));
        let local = policy(&["127.0.0.1"]);
        assert!(literal_allowed(
            &local,
            &Url::parse("http://127.0.0.1:11434/v1").unwrap()
        ));
        assert!(!literal_allowed(
            &local,
            &Url::parse("http://127.0.0.2/v1").unwrap()
        ));
        assert!(!literal_allowed(
            &local,
            &Url::parse("http://[::1]/v1").unwrap()
        ));
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_unless_listed() {
        let guard = PublicOnly {
            policy: Arc::new(policy(&[])),
        };
        let name: Name = "localhost".parse().unwrap();
        assert!(guard.resolve(name).await.is_err());
        let guard = PublicOnly {
            policy: Arc::new(policy(&["localhost"])),
        };
        let name: Name = "localhost".parse().unwrap();
        let addrs: Vec<SocketAddr> = guard.resolve(name).await.unwrap().collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()));
    }
}
