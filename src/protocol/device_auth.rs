//! Device identity: Ed25519 proofs over the v3/v2 connect payloads.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use super::connect::{ConnectParams, DeviceProof};

/// Why a device proof was refused. Each maps to its own `details.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceAuthError {
    /// `device.id` is not sha256(publicKey).
    DeviceIdMismatch,
    /// `signedAt` outside the allowed skew.
    SignatureExpired,
    /// No nonce in the proof.
    NonceRequired,
    /// Nonce differs from the challenge.
    NonceMismatch,
    /// Signature does not verify over v3 nor v2.
    SignatureInvalid,
    /// Public key cannot be decoded.
    PublicKeyInvalid,
}

impl DeviceAuthError {
    /// Error message, as OpenClaw words it.
    pub fn message(self) -> &'static str {
        match self {
            Self::DeviceIdMismatch => "device identity mismatch",
            Self::SignatureExpired => "device signature expired",
            Self::NonceRequired => "device nonce required",
            Self::NonceMismatch => "device nonce mismatch",
            Self::SignatureInvalid => "device signature invalid",
            Self::PublicKeyInvalid => "device public key invalid",
        }
    }

    /// `details.code`.
    pub fn code(self) -> &'static str {
        match self {
            Self::DeviceIdMismatch => "DEVICE_AUTH_DEVICE_ID_MISMATCH",
            Self::SignatureExpired => "DEVICE_AUTH_SIGNATURE_EXPIRED",
            Self::NonceRequired => "DEVICE_AUTH_NONCE_REQUIRED",
            Self::NonceMismatch => "DEVICE_AUTH_NONCE_MISMATCH",
            Self::SignatureInvalid => "DEVICE_AUTH_SIGNATURE_INVALID",
            Self::PublicKeyInvalid => "DEVICE_AUTH_PUBLIC_KEY_INVALID",
        }
    }

    /// `details.reason`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::DeviceIdMismatch => "device-id-mismatch",
            Self::SignatureExpired => "device-signature-stale",
            Self::NonceRequired => "device-nonce-missing",
            Self::NonceMismatch => "device-nonce-mismatch",
            Self::SignatureInvalid => "device-signature",
            Self::PublicKeyInvalid => "device-public-key",
        }
    }
}

/// Decode base64 in any of the four common alphabets/paddings.
pub fn decode_base64_any(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    [URL_SAFE_NO_PAD, URL_SAFE, STANDARD_NO_PAD, STANDARD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
}

/// base64url without padding.
pub fn encode_base64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Lowercase hex SHA-256 of the raw public key: the device id.
pub fn device_id_for(public_key: &[u8]) -> String {
    let digest = Sha256::digest(public_key);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decode a public key given as raw base64(url) or as a PEM SPKI block.
pub fn decode_public_key(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    let bytes = if text.starts_with("-----BEGIN") {
        let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = decode_base64_any(&body)?;
        // Ed25519 SPKI DER is a 12-byte prefix followed by the 32-byte key.
        der.get(der.len().checked_sub(32)?..)?.to_vec()
    } else {
        decode_base64_any(text)?
    };
    bytes.try_into().ok()
}

fn normalize(field: Option<&str>) -> String {
    field
        .map(|s| s.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// The v3 payload string a device signs.
pub fn payload_v3(params: &ConnectParams, device_id: &str, signed_at: i64, nonce: &str) -> String {
    format!(
        "{}|{}|{}",
        payload_v2(params, device_id, signed_at, nonce).replacen("v2|", "v3|", 1),
        normalize(Some(&params.client.platform)),
        normalize(params.client.device_family.as_deref())
    )
}

/// The v2 payload string a device signs.
pub fn payload_v2(params: &ConnectParams, device_id: &str, signed_at: i64, nonce: &str) -> String {
    let role = params.role.as_deref().unwrap_or("operator");
    format!(
        "v2|{device_id}|{}|{}|{role}|{}|{signed_at}|{}|{nonce}",
        params.client.id,
        params.client.mode,
        params.scopes.join(","),
        params.signature_token()
    )
}

/// Whether `signed_at` is at most `skew_ms` away from `now_ms`, for any i64s
/// (the client picks `signedAt`): the distance is taken without overflow, and
/// a negative skew admits nothing.
fn within_skew(now_ms: i64, signed_at: i64, skew_ms: i64) -> bool {
    u64::try_from(skew_ms).is_ok_and(|skew| now_ms.abs_diff(signed_at) <= skew)
}

/// Verify a device proof against the challenge nonce and the current time.
/// Returns the device id and raw public key on success.
pub fn verify(
    params: &ConnectParams,
    proof: &DeviceProof,
    challenge_nonce: &str,
    now_ms: i64,
    skew_ms: i64,
) -> Result<(String, [u8; 32]), DeviceAuthError> {
    let public_key =
        decode_public_key(&proof.public_key).ok_or(DeviceAuthError::PublicKeyInvalid)?;
    let device_id = device_id_for(&public_key);
    if !proof.id.trim().eq_ignore_ascii_case(&device_id) {
        return Err(DeviceAuthError::DeviceIdMismatch);
    }
    if !within_skew(now_ms, proof.signed_at, skew_ms) {
        return Err(DeviceAuthError::SignatureExpired);
    }
    let nonce = proof.nonce.as_deref().map(str::trim).unwrap_or("");
    if nonce.is_empty() {
        return Err(DeviceAuthError::NonceRequired);
    }
    if nonce != challenge_nonce {
        return Err(DeviceAuthError::NonceMismatch);
    }
    let key =
        VerifyingKey::from_bytes(&public_key).map_err(|_| DeviceAuthError::PublicKeyInvalid)?;
    let sig_bytes: [u8; 64] = decode_base64_any(&proof.signature)
        .and_then(|b| b.try_into().ok())
        .ok_or(DeviceAuthError::SignatureInvalid)?;
    let signature = Signature::from_bytes(&sig_bytes);
    let v3 = payload_v3(params, &device_id, proof.signed_at, nonce);
    let v2 = payload_v2(params, &device_id, proof.signed_at, nonce);
    if key.verify(v3.as_bytes(), &signature).is_ok()
        || key.verify(v2.as_bytes(), &signature).is_ok()
    {
        Ok((device_id, public_key))
    } else {
        Err(DeviceAuthError::SignatureInvalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    const NONCE: &str = "3f0c1a9e-1111-4222-8333-944455556666";
    const SIGNED_AT: i64 = 1_737_264_000_000;

    fn vector_params(proof_sig: &str) -> ConnectParams {
        serde_json::from_value(serde_json::json!({
            "minProtocol": 4, "maxProtocol": 4, "role": "operator",
            "scopes": ["operator.read", "operator.write"],
            "client": {"id": "cli", "version": "1", "platform": "Linux", "mode": "cli"},
            "auth": {"token": "secret-token"},
            "device": {"id": "fe812c12f3ab4ce6ac5db69ac352f906cb1b11ef43fb33e252ef7ff552263889",
                       "publicKey": "6kpsY-KcUgq-9VB7Ey7F-ZVHdq6-vnuSQh7qaRRG0iw",
                       "signature": proof_sig, "signedAt": SIGNED_AT, "nonce": NONCE}
        }))
        .unwrap_or_else(|e| panic!("vector params: {e}"))
    }

    const SIG3: &str =
        "0yjtuMM1VQs5L3A-gkve5-ghAvwel-JPIA_6UW0mVFWLWixC80oyMsGMpVoqUn128IkDocavvmgUuQMxVVkTBg";
    const SIG2: &str =
        "fz4O-GDm1ySP4z39oDPevh0UVW5a1nxPNou9a3DEL3xQ9oeMk-Zi_NN6tKbxqMz71FT2W5G0ompN-z1WuOgdCQ";

    fn check(params: &ConnectParams) -> Result<(String, [u8; 32]), DeviceAuthError> {
        let proof = params.device.clone().unwrap_or_else(|| panic!("proof"));
        verify(params, &proof, NONCE, SIGNED_AT + 1000, 120_000)
    }

    #[test]
    fn reference_test_vector_payloads_and_keys() {
        let seed = [7u8; 32];
        let key = SigningKey::from_bytes(&seed);
        let public = key.verifying_key().to_bytes();
        assert_eq!(
            encode_base64url(&public),
            "6kpsY-KcUgq-9VB7Ey7F-ZVHdq6-vnuSQh7qaRRG0iw"
        );
        let id = device_id_for(&public);
        assert_eq!(
            id,
            "fe812c12f3ab4ce6ac5db69ac352f906cb1b11ef43fb33e252ef7ff552263889"
        );
        let params = vector_params(SIG3);
        let v3 = payload_v3(&params, &id, SIGNED_AT, NONCE);
        assert_eq!(
            v3,
            "v3|fe812c12f3ab4ce6ac5db69ac352f906cb1b11ef43fb33e252ef7ff552263889|cli|cli|operator|operator.read,operator.write|1737264000000|secret-token|3f0c1a9e-1111-4222-8333-944455556666|linux|"
        );
        assert_eq!(encode_base64url(&key.sign(v3.as_bytes()).to_bytes()), SIG3);
        let v2 = payload_v2(&params, &id, SIGNED_AT, NONCE);
        assert_eq!(encode_base64url(&key.sign(v2.as_bytes()).to_bytes()), SIG2);
    }

    #[test]
    fn reference_signatures_verify_v3_and_v2() {
        assert!(check(&vector_params(SIG3)).is_ok());
        assert!(check(&vector_params(SIG2)).is_ok());
    }

    #[test]
    fn extreme_signed_at_is_expired_not_an_overflow() {
        // A correctly signed proof whose signedAt the client chose.
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let now = SIGNED_AT;
        let signed = |signed_at: i64| {
            let mut p = vector_params(SIG3);
            let mut proof = p.device.take().unwrap_or_else(|| panic!("proof"));
            let id = proof.id.clone();
            proof.signed_at = signed_at;
            let v3 = payload_v3(&p, &id, signed_at, NONCE);
            proof.signature = encode_base64url(&key.sign(v3.as_bytes()).to_bytes());
            verify(&p, &proof, NONCE, now, 120_000)
        };
        assert!(signed(now - 120_000).is_ok());
        // `now - signedAt` overflowed here; with wrapping arithmetic (release
        // builds) the second one wrapped to exactly i64::MIN, whose abs() is
        // negative, so a signature from the far past passed the freshness check.
        for signed_at in [i64::MIN, i64::MAX, now.wrapping_sub(i64::MIN), i64::MIN + 1] {
            assert_eq!(
                signed(signed_at).err(),
                Some(DeviceAuthError::SignatureExpired),
                "signedAt {signed_at}"
            );
        }
        assert!(within_skew(i64::MAX, i64::MAX, 0));
        assert!(!within_skew(i64::MAX, i64::MIN, i64::MAX));
        assert!(!within_skew(0, 0, -1), "a negative skew admits nothing");
    }

    #[test]
    fn every_failure_has_its_own_code() {
        let mut p = vector_params(SIG3);
        let mut proof = p.device.clone().unwrap_or_else(|| panic!("proof"));
        let err = |p: &ConnectParams, proof: &DeviceProof, now: i64| {
            verify(p, proof, NONCE, now, 120_000).err()
        };

        assert_eq!(
            err(&p, &proof, SIGNED_AT + 120_001),
            Some(DeviceAuthError::SignatureExpired)
        );
        assert_eq!(
            err(&p, &proof, SIGNED_AT - 120_001),
            Some(DeviceAuthError::SignatureExpired)
        );

        let mut bad = proof.clone();
        bad.id = "00".repeat(32);
        assert_eq!(
            err(&p, &bad, SIGNED_AT),
            Some(DeviceAuthError::DeviceIdMismatch)
        );

        let mut bad = proof.clone();
        bad.nonce = None;
        assert_eq!(
            err(&p, &bad, SIGNED_AT),
            Some(DeviceAuthError::NonceRequired)
        );

        let mut bad = proof.clone();
        bad.nonce = Some("other".into());
        assert_eq!(
            err(&p, &bad, SIGNED_AT),
            Some(DeviceAuthError::NonceMismatch)
        );

        let mut bad = proof.clone();
        bad.public_key = "!!notbase64".into();
        assert_eq!(
            err(&p, &bad, SIGNED_AT),
            Some(DeviceAuthError::PublicKeyInvalid)
        );

        // A different scope list changes the payload: the signature no longer verifies.
        p.scopes.push("operator.admin".into());
        assert_eq!(
            err(&p, &proof, SIGNED_AT),
            Some(DeviceAuthError::SignatureInvalid)
        );
        p.scopes.pop();
        proof.signature = "AAAA".into();
        assert_eq!(
            err(&p, &proof, SIGNED_AT),
            Some(DeviceAuthError::SignatureInvalid)
        );

        let codes = [
            DeviceAuthError::DeviceIdMismatch,
            DeviceAuthError::SignatureExpired,
            DeviceAuthError::NonceRequired,
            DeviceAuthError::NonceMismatch,
            DeviceAuthError::SignatureInvalid,
            DeviceAuthError::PublicKeyInvalid,
        ]
        .map(DeviceAuthError::code);
        let unique: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), codes.len());
    }
}
