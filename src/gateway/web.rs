//! The dashboard's HTTP side: its files (embedded pre-gzipped by build.rs
//! from `web/`), served with an ETag (a matching `If-None-Match` gets a
//! bare 304), `no-cache` revalidation and a strict Content-Security-Policy;
//! and the browser checks on the port: which `Host` names the gateway
//! answers to (against DNS rebinding) and which page origins may open its
//! WebSocket (against cross-site WebSocket hijacking).

use std::net::IpAddr;

use crate::config::GatewayConfig;

/// One embedded file.
pub struct Asset {
    /// URL path (`/` for `index.html`).
    pub path: &'static str,
    /// Content type.
    pub mime: &'static str,
    /// Quoted ETag.
    pub etag: &'static str,
    /// The gzipped bytes.
    pub gz: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

/// The embedded file at `path` (query ignored).
pub fn asset(path: &str) -> Option<&'static Asset> {
    let path = path.split(['?', '#']).next().unwrap_or("/");
    ASSETS.iter().find(|a| a.path == path)
}

/// The Content-Security-Policy of the page: scripts, styles and images only
/// from the page's own origin, and the WebSocket of this `host` (named, as
/// Safari does not count ws: as 'self').
pub fn csp(host: &str) -> String {
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self' ws://{host} wss://{host}; manifest-src 'self'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    )
}

/// `host[:port]` → the host part (brackets of an IPv6 literal removed).
fn host_part(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// Whether the gateway answers to this `Host` header: an IP address (DNS
/// rebinding needs a name), `localhost`, this machine's name (also with
/// `.local`), or a name in `gateway.allowed_hosts`. A missing Host (HTTP/1.0
/// clients) is allowed.
pub fn host_allowed(host: Option<&str>, config: &GatewayConfig, hostname: &str) -> bool {
    let Some(host) = host else {
        return true;
    };
    let name = host_part(host).trim_end_matches('.').to_ascii_lowercase();
    if name.parse::<IpAddr>().is_ok() || name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    let me = hostname.to_ascii_lowercase();
    name == me
        || name.strip_suffix(".local") == Some(me.as_str())
        || config
            .allowed_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(&name))
}

/// Whether a page from `origin` may open the WebSocket: the same origin as
/// the request's `Host`, or one listed in `gateway.allowed_origins`.
/// Clients that send no `Origin` (the CLI, node hosts) are not browsers and
/// are not asked.
pub fn origin_allowed(origin: Option<&str>, host: Option<&str>, config: &GatewayConfig) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let origin = origin.trim_end_matches('/');
    if config
        .allowed_origins
        .iter()
        .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false; // "null" and other opaque origins
    };
    let Some(host) = host else {
        return false;
    };
    let default_port = match scheme {
        "http" => "80",
        "https" => "443",
        _ => return false,
    };
    let with_port = |a: &str| -> String {
        let a = a.to_ascii_lowercase();
        let has_port = match a.strip_prefix('[') {
            Some(v6) => v6.contains("]:"),
            None => a.contains(':'),
        };
        if has_port {
            a
        } else {
            format!("{a}:{default_port}")
        }
    };
    with_port(authority) == with_port(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(origins: &[&str], hosts: &[&str]) -> GatewayConfig {
        GatewayConfig {
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            allowed_hosts: hosts.iter().map(|s| s.to_string()).collect(),
            ..GatewayConfig::default()
        }
    }

    #[test]
    fn hosts_by_address_name_and_list() {
        let c = config(&[], &["hub.example.org"]);
        for ok in [
            "127.0.0.1:18789",
            "192.168.1.5",
            "[::1]:18789",
            "localhost:18789",
            "pi.localhost",
            "raspberrypi:18789",
            "RaspberryPi.local.:18789",
            "hub.example.org",
        ] {
            assert!(host_allowed(Some(ok), &c, "raspberrypi"), "{ok}");
        }
        for bad in [
            "evil.example:18789",
            "raspberrypi.evil.example",
            "localhost.evil.example",
        ] {
            assert!(!host_allowed(Some(bad), &c, "raspberrypi"), "{bad}");
        }
        assert!(host_allowed(None, &c, "raspberrypi"));
    }

    #[test]
    fn origins_same_as_the_host_or_listed() {
        let c = config(&["https://dash.example.org"], &[]);
        let host = Some("192.168.1.5:18789");
        assert!(origin_allowed(None, host, &c), "not a browser");
        assert!(origin_allowed(Some("http://192.168.1.5:18789"), host, &c));
        assert!(origin_allowed(Some("https://dash.example.org/"), host, &c));
        assert!(!origin_allowed(Some("http://192.168.1.5:8080"), host, &c));
        assert!(!origin_allowed(Some("http://evil.example"), host, &c));
        assert!(!origin_allowed(Some("null"), host, &c));
        // Default ports.
        assert!(origin_allowed(Some("http://hub"), Some("hub:80"), &c));
        assert!(origin_allowed(Some("https://hub:443"), Some("hub"), &c));
        assert!(!origin_allowed(Some("https://hub"), Some("hub:80"), &c));
        assert!(origin_allowed(
            Some("http://[::1]:18789"),
            Some("[::1]:18789"),
            &c
        ));
    }

    #[test]
    fn the_policy_names_the_websocket_of_the_host() {
        let p = csp("192.168.1.5:18789");
        assert!(p.contains("connect-src 'self' ws://192.168.1.5:18789 wss://192.168.1.5:18789;"));
        assert!(p.contains("script-src 'self';") && !p.contains("unsafe"));
    }
}
