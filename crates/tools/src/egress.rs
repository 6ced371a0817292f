//! Where a tool may connect: the SSRF guard every outbound tool connection goes through
//! (HTTP tools, MCP servers, `fetch_url`).
//!
//! The rule: only `http`/`https`, no credentials in the URL, and every address the host
//! stands for must be public, unless an admin allowed that exact host. A name is resolved
//! once, here, and the connection is then pinned to exactly those addresses
//! ([`pinned_client`]), so a DNS answer that changes between the check and the connect
//! (rebinding) cannot move the connection somewhere else. Redirects are never followed by
//! the client: the caller re-checks every hop.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use ipnet::{Ipv4Net, Ipv6Net};
use url::{Host, Url};

/// Which hosts an admin allowed to reach non-public addresses.
#[derive(Clone, Debug, Default)]
pub struct EgressPolicy {
    /// Exact host names or IP literals. Matching is exact and case-insensitive: allowing
    /// `127.0.0.1` allows neither `localhost` nor `127.0.0.2`; there are no wildcards.
    pub allowed_private_hosts: Vec<String>,
}

impl EgressPolicy {
    /// Whether `host` is on the allowlist.
    pub fn allows(&self, host: &Host<&str>) -> bool {
        let host = host.to_owned();
        self.allowed_private_hosts
            .iter()
            .filter_map(|entry| allowlist_entry(entry))
            .any(|entry| entry == host)
    }
}

/// An allowlist entry in the same normal form the URL parser gives hosts (lowercase,
/// punycode, IP literals as addresses), so the comparison is exact without being fooled by
/// case or by how an address was spelled. IPv6 may be written with or without brackets.
fn allowlist_entry(entry: &str) -> Option<Host<String>> {
    let entry = entry.trim();
    if let Ok(v6) = entry.parse::<Ipv6Addr>() {
        return Some(Host::Ipv6(v6));
    }
    Host::parse(entry).ok()
}

/// DNS, behind a trait so tests can say what a name resolves to.
pub trait Resolve: Send + Sync {
    /// Every address `host` stands for, with `port` set.
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, io::Result<Vec<SocketAddr>>>;
}

/// The operating system's resolver.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, io::Result<Vec<SocketAddr>>> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host, port)).await?.collect()) })
    }
}

/// A fixed table of names, for tests and for callers that resolved elsewhere.
#[derive(Clone, Debug, Default)]
pub struct StaticResolver {
    names: HashMap<String, Vec<IpAddr>>,
}

impl StaticResolver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) what `host` resolves to.
    pub fn with(mut self, host: &str, addrs: impl IntoIterator<Item = IpAddr>) -> Self {
        self.names
            .insert(host.to_ascii_lowercase(), addrs.into_iter().collect());
        self
    }
}

impl Resolve for StaticResolver {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, io::Result<Vec<SocketAddr>>> {
        let found = self
            .names
            .get(&host.to_ascii_lowercase())
            .map(|ips| ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect())
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such name"));
        Box::pin(async move { found })
    }
}

/// A checked destination: connect to `addrs` and nothing else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    pub url: Url,
    /// The URL's host: a lowercase domain name, or an IP address (IPv6 without brackets).
    pub host: String,
    /// The addresses that passed the check, the URL's port set on each.
    pub addrs: Vec<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    #[error("the {0:?} scheme is not allowed; only http and https are")]
    Scheme(String),
    #[error("URLs with credentials (user:password@) are refused; credentials in a URL leak")]
    Credentials,
    #[error("the URL has no host")]
    NoHost,
    #[error("could not resolve {host}: {reason}")]
    Resolve { host: String, reason: String },
    #[error("{host} resolves to no address")]
    NoAddresses { host: String },
    #[error("{}", refused_message(.host, .addr, .reason))]
    Refused {
        host: String,
        addr: IpAddr,
        /// Why the address is not public, e.g. "loopback".
        reason: String,
    },
    #[error("could not build the HTTP client: {0}")]
    Client(String),
}

fn refused_message(host: &str, addr: &IpAddr, reason: &str) -> String {
    let what = if host == addr.to_string() {
        format!("{addr} is")
    } else {
        format!("{host} resolves to {addr}, which is")
    };
    format!("{what} not a public address ({reason}); an admin can allow this exact host")
}

/// Checks that a tool may connect to `url` and returns the addresses to pin.
///
/// Every resolved address must be public: a mixed answer is refused, because one private
/// address among public ones is exactly what a rebinding attacker sends.
pub async fn check(
    policy: &EgressPolicy,
    resolver: &dyn Resolve,
    url: &Url,
) -> Result<Destination, EgressError> {
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(EgressError::Scheme(other.to_owned())),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(EgressError::Credentials);
    }
    let host = url.host().ok_or(EgressError::NoHost)?;
    // Always Some for http/https; the fallback only keeps this total.
    let port = url.port_or_known_default().ok_or(EgressError::NoHost)?;
    let allowed = policy.allows(&host);

    // The url crate's WHATWG host parser has already turned every spelling of an IPv4
    // address (decimal, octal, hex, shortened) into an address, so a Domain here is a name.
    let (name, addrs) = match host {
        Host::Ipv4(ip) => (ip.to_string(), vec![SocketAddr::new(ip.into(), port)]),
        Host::Ipv6(ip) => (ip.to_string(), vec![SocketAddr::new(ip.into(), port)]),
        Host::Domain(name) => {
            let addrs = resolver
                .resolve(name, port)
                .await
                .map_err(|e| EgressError::Resolve {
                    host: name.to_owned(),
                    reason: e.to_string(),
                })?;
            (name.to_owned(), addrs)
        }
    };
    if addrs.is_empty() {
        return Err(EgressError::NoAddresses { host: name });
    }
    if !allowed {
        if let Some((addr, reason)) = addrs
            .iter()
            .find_map(|a| non_public_reason(a.ip()).map(|r| (a.ip(), r)))
        {
            return Err(EgressError::Refused {
                host: name,
                addr,
                reason,
            });
        }
    }
    // A resolver may hand back any port; the connection goes to the URL's.
    let addrs = addrs
        .into_iter()
        .map(|a| SocketAddr::new(a.ip(), port))
        .collect();
    Ok(Destination {
        url: url.clone(),
        host: name,
        addrs,
    })
}

/// Whether `ip` is an address on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    non_public_reason(ip).is_none()
}

/// Why `ip` is not public (e.g. "loopback"), or None if it is.
pub fn non_public_reason(ip: IpAddr) -> Option<String> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4).map(str::to_owned),
        IpAddr::V6(v6) => v6_reason(v6),
    }
}

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len)
}

/// IANA's special-purpose IPv4 registry, the parts that are not globally reachable.
const V4_NOT_PUBLIC: &[(Ipv4Net, &str)] = &[
    (v4(0, 0, 0, 0, 8), "\"this network\""),
    (v4(10, 0, 0, 0, 8), "private"),
    (v4(100, 64, 0, 0, 10), "shared (carrier-grade NAT)"),
    (v4(127, 0, 0, 0, 8), "loopback"),
    (
        v4(169, 254, 0, 0, 16),
        "link-local, where cloud metadata services live",
    ),
    (v4(172, 16, 0, 0, 12), "private"),
    (v4(192, 0, 0, 0, 24), "IETF protocol assignment"),
    (v4(192, 0, 2, 0, 24), "documentation"),
    (v4(192, 88, 99, 0, 24), "6to4 relay anycast"),
    (v4(192, 168, 0, 0, 16), "private"),
    (v4(198, 18, 0, 0, 15), "benchmarking"),
    (v4(198, 51, 100, 0, 24), "documentation"),
    (v4(203, 0, 113, 0, 24), "documentation"),
    (v4(224, 0, 0, 0, 4), "multicast"),
    (v4(240, 0, 0, 0, 4), "reserved or broadcast"),
];

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    V4_NOT_PUBLIC
        .iter()
        .find(|(net, _)| net.contains(&ip))
        .map(|(_, why)| *why)
}

const fn v6(segments: [u16; 8], len: u8) -> Ipv6Net {
    let [a, b, c, d, e, f, g, h] = segments;
    Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), len)
}

/// Non-public IPv6 ranges inside or next to global unicast, checked after the ranges that
/// embed an IPv4 address.
const V6_NOT_PUBLIC: &[(Ipv6Net, &str)] = &[
    (v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), "discard-only"),
    // RFC 8215 local-use NAT64: site-specific, and where the IPv4 address sits depends on
    // the site's prefix length, so it cannot be judged from the address alone.
    (v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48), "local-use NAT64"),
    (v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32), "Teredo tunnel"),
    (v6([0x2001, 2, 0, 0, 0, 0, 0, 0], 48), "benchmarking"),
    (v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), "documentation"),
    (v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20), "documentation"),
    (
        v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),
        "unique local, where cloud metadata services live",
    ),
    (v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), "link-local"),
    (v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), "site-local"),
    (v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), "multicast"),
];

/// All of IANA's global unicast allocations are inside 2000::/3; anything else is refused.
const V6_GLOBAL_UNICAST: Ipv6Net = v6([0x2000, 0, 0, 0, 0, 0, 0, 0], 3);
const V6_IPV4_COMPATIBLE: Ipv6Net = v6([0; 8], 96);
const V6_NAT64: Ipv6Net = v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96);
const V6_6TO4: Ipv6Net = v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16);

fn v6_reason(ip: Ipv6Addr) -> Option<String> {
    if ip.is_unspecified() {
        return Some("unspecified".to_owned());
    }
    if ip.is_loopback() {
        return Some("loopback".to_owned());
    }
    // Addresses that carry an IPv4 address reach that IPv4 address: judge it.
    let octets = ip.octets();
    let low32 = Ipv4Addr::new(octets[12], octets[13], octets[14], octets[15]);
    let embedded = if let Some(mapped) = ip.to_ipv4_mapped() {
        Some(("IPv4-mapped", mapped))
    } else if V6_IPV4_COMPATIBLE.contains(&ip) {
        Some(("IPv4-compatible", low32))
    } else if V6_NAT64.contains(&ip) {
        Some(("NAT64", low32))
    } else if V6_6TO4.contains(&ip) {
        let v4 = Ipv4Addr::new(octets[2], octets[3], octets[4], octets[5]);
        Some(("6to4", v4))
    } else {
        None
    };
    if let Some((via, v4)) = embedded {
        return v4_reason(v4).map(|why| format!("{via}, embedding {v4}: {why}"));
    }
    if let Some((_, why)) = V6_NOT_PUBLIC.iter().find(|(net, _)| net.contains(&ip)) {
        return Some((*why).to_owned());
    }
    if !V6_GLOBAL_UNICAST.contains(&ip) {
        return Some("outside IPv6 global unicast".to_owned());
    }
    None
}

/// Timeouts for a [`pinned_client`].
#[derive(Clone, Copy, Debug)]
pub struct ClientOptions {
    pub connect_timeout: Duration,
    /// The whole request, body included.
    pub timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
        }
    }
}

/// A client that can only reach `dest`: its name is pinned to the checked addresses, any
/// other name fails to resolve, redirects are returned rather than followed (the caller
/// re-checks each hop), and no proxy from the environment is used (a proxy would make the
/// check about the wrong connection). Use it for `dest.url` only.
pub fn pinned_client(
    dest: &Destination,
    opts: ClientOptions,
) -> Result<reqwest::Client, EgressError> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .referer(false)
        .tcp_nodelay(true)
        .connect_timeout(opts.connect_timeout)
        .timeout(opts.timeout)
        .dns_resolver(Arc::new(NoLookups))
        .tls_backend_preconfigured(tls_config()?);
    // IP literals are connected to as they are; names go to the checked addresses only.
    if matches!(dest.url.host(), Some(Host::Domain(_))) {
        builder = builder.resolve_to_addrs(&dest.host, &dest.addrs);
    }
    builder
        .build()
        .map_err(|e| EgressError::Client(e.without_url().to_string()))
}

/// TLS as the rest of bastion has it (reqwest 0.12's `rustls-tls`): rustls with the ring
/// provider and the webpki (Mozilla) roots, TLS 1.2 and 1.3, HTTP/1.1 only. Built here
/// because reqwest 0.13's own rustls setup would bring in aws-lc-rs and the platform's
/// verifier; a fresh config per client (not a process-wide default provider), so nothing
/// else in the process is affected.
fn tls_config() -> Result<rustls::ClientConfig, EgressError> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| EgressError::Client(format!("TLS setup: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The resolver under the pinned names: any lookup reaching it is one the guard did not
/// check, so it fails.
struct NoLookups;

impl reqwest::dns::Resolve for NoLookups {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let err = io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} was not checked by the egress guard", name.as_str()),
        );
        Box::pin(async move { Err(err.into()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_non_public_ranges_are_refused() {
        for s in [
            "0.0.0.0",
            "0.255.255.255",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254",
            "169.254.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.1",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.1",
            "203.0.113.1",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!is_public(ip(s)), "{s} must not be public");
        }
    }

    #[test]
    fn ipv4_public_neighbours_are_allowed() {
        // Just outside each boundary: a table that is too wide breaks real destinations.
        for s in [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.0",
            "192.0.3.0",
            "192.88.98.255",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "203.0.112.255",
            "223.255.255.255",
        ] {
            assert!(is_public(ip(s)), "{s} must be public");
        }
    }

    #[test]
    fn ipv6_non_public_ranges_are_refused() {
        for s in [
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:7f00:1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::7f00:1",
            "64:ff9b:1::8.8.8.8",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:2::1",
            "2001:db8::1",
            "3fff::1",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "ff0e::1",
            "100::1",
            "4000::1",
            "1::1",
        ] {
            assert!(!is_public(ip(s)), "{s} must not be public");
        }
    }

    #[test]
    fn ipv6_public_addresses_are_allowed() {
        for s in [
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "2a00:1450:4001::1",
            // Embedded public IPv4 addresses reach public hosts.
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(is_public(ip(s)), "{s} must be public");
        }
    }

    #[test]
    fn reasons_name_the_embedded_address() {
        let why = non_public_reason(ip("::ffff:169.254.169.254")).unwrap();
        assert!(why.contains("169.254.169.254"), "{why}");
        assert!(why.contains("IPv4-mapped"), "{why}");
        assert_eq!(non_public_reason(ip("127.0.0.1")).unwrap(), "loopback");
    }

    #[test]
    fn allowlist_is_exact() {
        let policy = EgressPolicy {
            allowed_private_hosts: vec![
                "127.0.0.1".into(),
                "Intranet.Example".into(),
                "::1".into(),
            ],
        };
        let host = |s: &str| Url::parse(&format!("http://{s}/")).unwrap();
        let allows = |s: &str| policy.allows(&host(s).host().unwrap());
        assert!(allows("127.0.0.1"));
        assert!(allows("INTRANET.example"));
        assert!(allows("[::1]"));
        assert!(allows("[0:0::1]"));
        assert!(!allows("localhost"));
        assert!(!allows("127.0.0.2"));
        assert!(!allows("sub.intranet.example"));
        assert!(!allows("intranet.example.evil"));
        assert!(!allows("[::ffff:127.0.0.1]"));
    }
}
