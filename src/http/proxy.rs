//! The client's address: the TCP peer, or, when the peer is a trusted reverse proxy, the
//! nearest untrusted address of `X-Forwarded-For`. Used for logs; never for authorisation.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use ipnet::IpNet;

pub fn client_ip<B>(request: &http::Request<B>, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())?;
    if !trusted.iter().any(|n| n.contains(&peer)) {
        return Some(peer);
    }
    // Walk X-Forwarded-For from the right: each hop appended the address it saw.
    let forwarded: Vec<IpAddr> = request
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    Some(
        forwarded
            .iter()
            .rev()
            .find(|ip| !trusted.iter().any(|n| n.contains(*ip)))
            .copied()
            .unwrap_or(peer),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(peer: &str, xff: Option<&str>) -> http::Request<()> {
        let mut r = http::Request::builder();
        if let Some(x) = xff {
            r = r.header("x-forwarded-for", x);
        }
        let mut r = r.body(()).unwrap();
        r.extensions_mut().insert(ConnectInfo(
            format!("{peer}:1234").parse::<SocketAddr>().unwrap(),
        ));
        r
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec![
            "127.0.0.1/32".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            client_ip(&req("127.0.0.1", Some("203.0.113.7")), &trusted),
            Some(ip("203.0.113.7"))
        );
        assert_eq!(
            client_ip(
                &req("127.0.0.1", Some("1.1.1.1, 203.0.113.7, 10.1.2.3")),
                &trusted
            ),
            Some(ip("203.0.113.7"))
        );
        assert_eq!(
            client_ip(&req("198.51.100.1", Some("203.0.113.7")), &trusted),
            Some(ip("198.51.100.1")),
            "untrusted peer"
        );
        assert_eq!(
            client_ip(&req("127.0.0.1", None), &trusted),
            Some(ip("127.0.0.1"))
        );
    }
}
