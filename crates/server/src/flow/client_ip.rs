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
