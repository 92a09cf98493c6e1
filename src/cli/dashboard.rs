//! `pinclaw dashboard`: the links that open the dashboard, with the token
//! in the URL's fragment (`#token=…`), which a browser never sends to a
//! server or writes to a log or a Referer; the page stores it for the tab
//! and strips it from the address bar.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};

/// The base URLs (`http://host:port/`) a browser can open for a gateway
/// bound to `bind`: on loopback only this machine's address; on every
/// address (`lan`) this machine's LAN address and its `.local` name.
pub fn base_urls(bind: IpAddr, port: u16, hostname: &str) -> Vec<String> {
    let url = |host: &str| format!("http://{host}:{port}/");
    if bind.is_loopback() {
        return vec![url(&bind.to_string())];
    }
    if !bind.is_unspecified() {
        return vec![url(&match bind {
            IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        })];
    }
    let mut urls = Vec::new();
    if let Some(ip) = lan_address() {
        urls.push(url(&ip.to_string()));
    }
    urls.push(url(&format!("{hostname}.local")));
    urls
}

/// The address this machine reaches the network from: the local end of a
/// UDP socket "connected" to a public address (no packet is sent).
fn lan_address() -> Option<IpAddr> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    socket.connect((Ipv4Addr::new(192, 0, 2, 1), 9)).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified() && !ip.is_loopback()).then_some(ip)
}

/// The link with the token in its fragment (percent-encoded).
pub fn with_token(base: &str, token: &str) -> String {
    let mut out = format!("{base}#token=");
    for b in token.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_for_each_bind() {
        let loopback = base_urls(IpAddr::from([127, 0, 0, 1]), 18789, "pi");
        assert_eq!(loopback, ["http://127.0.0.1:18789/"]);
        let fixed = base_urls(IpAddr::from([192, 168, 1, 5]), 80, "pi");
        assert_eq!(fixed, ["http://192.168.1.5:80/"]);
        let lan = base_urls(IpAddr::from([0, 0, 0, 0]), 18789, "pi");
        assert_eq!(
            lan.last().map(String::as_str),
            Some("http://pi.local:18789/")
        );
        assert_eq!(
            with_token("http://pi.local:18789/", "ab+/c="),
            "http://pi.local:18789/#token=ab%2B%2Fc%3D"
        );
    }
}
