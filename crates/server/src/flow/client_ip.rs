//! The client's address: the TCP peer, or, when the peer is a trusted proxy, the nearest
//! address in `X-Forwarded-For` that is not itself a trusted proxy.

use axum::extract::{ConnectInfo, Request};
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

pub fn client_ip(trusted: &[IpNet], req: &Request) -> Option<IpAddr> {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())?;
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !is_trusted(ip))
            .unwrap_or(peer),
    )
}

/// Whether a trusted proxy in front says the client came over HTTPS. The header of any
/// other peer is not believed.
pub fn forwarded_https(trusted: &[IpNet], req: &Request) -> bool {
    let peer_trusted = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|c| trusted.iter().any(|net| net.contains(&c.0.ip())));
    peer_trusted
        && req
            .headers()
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn req(peer: &str, xff: Option<&str>) -> Request {
        let mut b = axum::http::Request::builder();
        if let Some(x) = xff {
            b = b.header("x-forwarded-for", x);
        }
        let mut r = b.body(Body::empty()).unwrap();
        r.extensions_mut()
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        r
    }

    #[test]
    fn forwarded_proto_is_believed_only_from_a_trusted_peer() {
        let trusted = vec!["10.0.0.0/8".parse().unwrap()];
        let with_proto = |peer: &str, proto: &str| {
            let mut r = req(peer, None);
            r.headers_mut()
                .insert("x-forwarded-proto", proto.parse().unwrap());
            r
        };
        assert!(!forwarded_https(
            &trusted,
            &with_proto("203.0.113.9:1", "https")
        ));
        assert!(forwarded_https(
            &trusted,
            &with_proto("10.0.0.5:1", "https")
        ));
        assert!(forwarded_https(
            &trusted,
            &with_proto("10.0.0.5:1", "HTTPS, http")
        ));
        assert!(!forwarded_https(
            &trusted,
            &with_proto("10.0.0.5:1", "http")
        ));
        assert!(!forwarded_https(&trusted, &req("10.0.0.5:1", None)));
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_peer() {
        let trusted = vec!["10.0.0.0/8".parse().unwrap()];
        let spoof = req("203.0.113.9:1000", Some("1.2.3.4"));
        assert_eq!(
            client_ip(&trusted, &spoof),
            Some("203.0.113.9".parse().unwrap())
        );
        let proxied = req("10.0.0.5:1000", Some("1.2.3.4, 198.51.100.7, 10.0.0.6"));
        assert_eq!(
            client_ip(&trusted, &proxied),
            Some("198.51.100.7".parse().unwrap())
        );
    }
}
