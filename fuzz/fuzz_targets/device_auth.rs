//! Device-identity proofs: `verify` with fuzzer-built params, proof, nonce and
//! clock (the `signedAt` an attacker sends is any i64), plus the base64, key
//! and payload helpers it is built on.
//!
//! The key pair comes from a fuzzer-chosen seed, so the fuzzer can present a
//! correct id and a correct signature and reach every check; whenever it does,
//! the result must be exactly what the rules say.

#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use ed25519_dalek::{Signer, SigningKey};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use pinclaw::protocol::connect::{ClientInfo, ConnectAuth, ConnectParams, DeviceProof};
use pinclaw::protocol::device_auth::{
    DeviceAuthError, decode_base64_any, decode_public_key, device_id_for, encode_base64url,
    payload_v2, payload_v3, verify,
};

#[derive(Arbitrary, Debug)]
struct Input {
    seed: [u8; 32],
    /// 0: base64url, 1: base64 padded, 2: PEM SPKI, 3+: `raw_key`.
    key_form: u8,
    raw_key: String,
    /// 0: the right id, 1: the right id in upper case with spaces, 2+: `raw_id`.
    id_form: u8,
    raw_id: String,
    /// 0: a real v3 signature, 1: a real v2 one, 2+: `raw_signature`.
    signature_form: u8,
    raw_signature: String,
    /// Picks `signed_at` (and `now`) among extremes, or takes the raw values.
    clock_form: u8,
    signed_at: i64,
    now_ms: i64,
    skew_ms: i64,
    nonce: Option<String>,
    challenge: String,
    /// The proof carries the challenge nonce itself (padded with spaces).
    answer_challenge: bool,
    client_id: String,
    platform: String,
    mode: String,
    device_family: Option<String>,
    role: Option<String>,
    scopes: Vec<String>,
    token: Option<String>,
    device_token: Option<String>,
    bootstrap_token: Option<String>,
}

fn pem(public: &[u8; 32]) -> String {
    let mut der = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    der.extend_from_slice(public);
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        STANDARD.encode(der)
    )
}

fn clock(input: &Input) -> (i64, i64, i64) {
    let (now, skew) = (input.now_ms, input.skew_ms);
    let signed_at = match input.clock_form % 8 {
        0 => i64::MIN,
        1 => i64::MAX,
        2 => now.wrapping_add(skew),
        3 => now.wrapping_sub(skew),
        4 => now.wrapping_add(skew).wrapping_add(1),
        // `now - signed_at` wraps to exactly i64::MIN: abs() of it overflows.
        5 => now.wrapping_sub(i64::MIN),
        _ => input.signed_at,
    };
    let now = match input.clock_form / 8 % 4 {
        0 => i64::MIN,
        1 => i64::MAX,
        _ => now,
    };
    (signed_at, now, skew)
}

fuzz_target!(|input: Input| {
    // The helpers, on raw text.
    for text in [&input.raw_key, &input.raw_id, &input.raw_signature] {
        if let Some(bytes) = decode_base64_any(text) {
            assert_eq!(decode_base64_any(&encode_base64url(&bytes)), Some(bytes));
        }
        if let Some(key) = decode_public_key(text)
            && !text.trim().starts_with("-----BEGIN")
        {
            assert_eq!(decode_base64_any(text).as_deref(), Some(key.as_slice()));
        }
    }

    let signing = SigningKey::from_bytes(&input.seed);
    let public = signing.verifying_key().to_bytes();
    let right_id = device_id_for(&public);
    let public_key = match input.key_form {
        0 => encode_base64url(&public),
        1 => URL_SAFE.encode(public),
        2 => pem(&public),
        _ => input.raw_key.clone(),
    };
    let key_ok = input.key_form <= 2;
    if key_ok {
        assert_eq!(decode_public_key(&public_key), Some(public));
    }
    let id = match input.id_form {
        0 => right_id.clone(),
        1 => format!("  {}  ", right_id.to_ascii_uppercase()),
        _ => input.raw_id.clone(),
    };
    let id_ok = input.id_form <= 1;
    let (signed_at, now, skew) = clock(&input);
    let nonce = if input.answer_challenge {
        Some(format!(" {} ", input.challenge))
    } else {
        input.nonce.clone()
    };

    let mut params = ConnectParams {
        min_protocol: 4,
        max_protocol: 4,
        client: ClientInfo {
            id: input.client_id.clone(),
            version: "1".into(),
            platform: input.platform.clone(),
            mode: input.mode.clone(),
            display_name: None,
            device_family: input.device_family.clone(),
            model_identifier: None,
            instance_id: None,
        },
        role: input.role.clone(),
        scopes: input.scopes.clone(),
        caps: Vec::new(),
        commands: Vec::new(),
        permissions: Default::default(),
        path_env: None,
        auth: ConnectAuth {
            token: input.token.clone(),
            password: None,
            device_token: input.device_token.clone(),
            bootstrap_token: input.bootstrap_token.clone(),
        },
        device: None,
    };

    let signed_nonce = nonce.as_deref().map(str::trim).unwrap_or("");
    let v2 = payload_v2(&params, &right_id, signed_at, signed_nonce);
    let v3 = payload_v3(&params, &right_id, signed_at, signed_nonce);
    assert!(v2.starts_with("v2|") && v3.starts_with("v3|"));
    assert!(
        v3[2..].starts_with(&v2[2..]),
        "v3 extends v2: {v3:?} / {v2:?}"
    );
    let signature = match input.signature_form {
        0 => encode_base64url(&signing.sign(v3.as_bytes()).to_bytes()),
        1 => encode_base64url(&signing.sign(v2.as_bytes()).to_bytes()),
        _ => input.raw_signature.clone(),
    };
    let signature_ok = input.signature_form <= 1;

    let proof = DeviceProof {
        id,
        public_key,
        signature,
        signed_at,
        nonce: nonce.clone(),
    };
    params.device = Some(proof.clone());
    let result = verify(&params, &proof, &input.challenge, now, skew);

    if let Ok((device_id, key)) = &result {
        assert_eq!(device_id, &device_id_for(key));
        assert!(proof.id.trim().eq_ignore_ascii_case(device_id));
    }
    if !(key_ok && id_ok) {
        return;
    }
    // The right key and id: every later rule decides, in order.
    let in_window = (i128::from(now) - i128::from(signed_at)).abs() <= i128::from(skew);
    let expected = if !in_window {
        Err(DeviceAuthError::SignatureExpired)
    } else if signed_nonce.is_empty() {
        Err(DeviceAuthError::NonceRequired)
    } else if signed_nonce != input.challenge {
        Err(DeviceAuthError::NonceMismatch)
    } else if signature_ok {
        Ok((right_id, public))
    } else {
        Err(DeviceAuthError::SignatureInvalid)
    };
    assert_eq!(
        result, expected,
        "signed_at {signed_at}, now {now}, skew {skew}"
    );
});
