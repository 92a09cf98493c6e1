//! Random identifiers, tokens and wall-clock time.

/// `N` bytes from the OS random source.
///
/// # Panics
/// Only if the OS has no usable random source, which leaves the gateway unable
/// to issue secure tokens at all.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    if let Err(e) = getrandom::fill(&mut buf) {
        panic!("OS random source unavailable: {e}");
    }
    buf
}

/// A random UUID v4 string (used for nonces, request and connection ids).
pub fn uuid_v4() -> String {
    let mut b = random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A new secret token: 32 random bytes, base64url (43 chars).
pub fn new_token() -> String {
    crate::protocol::device_auth::encode_base64url(&random_bytes::<32>())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A short fingerprint of a request's content (16 hex chars of SHA-256):
/// tells a retry of the same request from a different request that reuses
/// its idempotency key.
pub fn fingerprint(content: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(content.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn uuid_and_token_shapes() {
        let u = super::uuid_v4();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(u, super::uuid_v4());
        assert_eq!(super::new_token().len(), 43);
        assert_eq!(super::fingerprint("a"), super::fingerprint("a"));
        assert_ne!(super::fingerprint("a"), super::fingerprint("b"));
        assert_eq!(super::fingerprint("").len(), 16);
    }
}
