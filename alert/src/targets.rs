//! `alerts.deny_private_targets`: channels may not send to loopback, private, link-local or
//! otherwise internal addresses, so a channel (and its test send) cannot be used to reach
//! services inside the collector's network. Checked when a channel is saved and, for every
//! send, by the HTTP client's resolver (a name that resolves only to internal addresses
//! fails) and its redirect policy.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Whether `ip` is internal: loopback, private (RFC 1918, unique local), link-local, CGNAT,
/// unspecified, multicast, broadcast, documentation or an IPv4-mapped form of those.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || (o[0] == 100 && (64..128).contains(&o[1])) // CGNAT
                || o[0] == 0
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
        }
    }
}

/// The host of an http(s) URL, if it is an IP literal.
fn literal_host(url: &str) -> Option<IpAddr> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    let host = if let Some(h) = host_port.strip_prefix('[') {
        h.split(']').next()?
    } else {
        host_port.rsplit_once(':').map_or(host_port, |(h, _)| h)
    };
    host.parse().ok()
}

/// Refuses a URL whose host is an internal address literal (the resolver never sees those).
pub fn check_literal(url: &str) -> Result<(), String> {
    match literal_host(url) {
        Some(ip) if is_internal(ip) => Err(format!(
            "`{ip}` is an internal address and `alerts.deny_private_targets` is on"
        )),
        _ => Ok(()),
    }
}

/// Checks a channel's URL (and, for names, what they resolve to now).
pub async fn check_url(url: &str) -> Result<(), String> {
    if let Some(ip) = literal_host(url) {
        if is_internal(ip) {
            return Err(format!(
                "`{ip}` is an internal address and `alerts.deny_private_targets` is on"
            ));
        }
        return Ok(());
    }
    let Some(rest) = url.split_once("://").map(|x| x.1) else {
        return Ok(());
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let (host, port) = match host_port.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => (h, p),
        _ => (host_port, "443"),
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(format!("{host}:{port}"))
        .await
        .map_err(|e| format!("cannot resolve `{host}`: {e}"))?
        .collect();
    if addrs.is_empty() || addrs.iter().all(|a| is_internal(a.ip())) {
        return Err(format!(
            "`{host}` resolves to internal addresses only and `alerts.deny_private_targets` is on"
        ));
    }
    Ok(())
}

/// A DNS resolver that drops internal addresses.
#[derive(Debug, Default)]
pub struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host(format!("{host}:0"))
                .await?
                .filter(|a| !is_internal(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!(
                    "`{host}` resolves to internal addresses only (alerts.deny_private_targets)"
                )
                .into());
            }
            let it: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(it)
        })
    }
}

/// The HTTP client's settings for `deny_private_targets`: the resolver, and a redirect
/// policy refusing redirects to internal address literals.
pub fn harden(builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
    builder
        .dns_resolver(Arc::new(PublicOnly))
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            let url = attempt.url().to_string();
            match literal_host(&url) {
                Some(ip) if is_internal(ip) => attempt.error(format!(
                    "redirect to the internal address {ip} refused (alerts.deny_private_targets)"
                )),
                _ if attempt.previous().len() >= 5 => attempt.stop(),
                _ => attempt.follow(),
            }
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["1.1.1.1", "8.8.8.8", "2606:4700::1111"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
        assert_eq!(
            literal_host("http://user:pw@169.254.169.254:80/latest"),
            Some("169.254.169.254".parse().unwrap())
        );
        assert_eq!(
            literal_host("https://[::1]:8443/x"),
            Some("::1".parse().unwrap())
        );
        assert_eq!(literal_host("https://hooks.example.com/x"), None);
    }

    #[tokio::test]
    async fn urls_are_checked() {
        assert!(check_url("http://127.0.0.1:9/x").await.is_err());
        assert!(check_url("http://localhost:9/x").await.is_err());
        assert!(check_url("https://1.1.1.1/x").await.is_ok());
    }
}
