//! A Bot API answer (any bytes, any HTTP status) through
//! `BotApi::answer`, and a successful `getUpdates` result through
//! `update::parse_updates`: errors are classified with bounded waits and
//! never carry the token; every parsed update keeps its id and a bounded
//! text.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pinclaw::channel::Content;
use pinclaw::channel::telegram::api::{ApiError, BotApi};
use pinclaw::channel::telegram::update::{BotIdentity, parse_updates};
use pinclaw::config::Secret;
use pinclaw::limits;

const TOKEN: &str = "123456:FUZZ-secret-token";
const STATUSES: [u16; 8] = [200, 400, 401, 404, 409, 429, 500, 502];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let status = STATUSES[usize::from(pick) % STATUSES.len()];
    let text = String::from_utf8_lossy(body);
    let api = BotApi::new("http://127.0.0.1:9", Secret::new(TOKEN.to_owned()));
    match api.answer("getUpdates", status, &text) {
        Ok(result) => {
            let bot = BotIdentity {
                id: 42,
                username: "pinclaw_bot".into(),
            };
            let parsed = parse_updates(&result, &bot);
            let ids: Vec<i64> = result
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|u| u["update_id"].as_i64())
                .collect();
            assert_eq!(parsed.len(), ids.len(), "one entry per numbered update");
            for (p, id) in parsed.iter().zip(&ids) {
                assert_eq!(p.update_id, *id);
                let Ok(inbound) = &p.message else { continue };
                assert_eq!(inbound.event_id, id.to_string());
                assert!(!inbound.target.chat.is_empty());
                assert!(!inbound.sender.is_empty());
                if let Content::Text(t) | Content::Command { text: t, .. } = &inbound.content {
                    assert!(t.chars().count() <= 16 * 1024, "text capped");
                }
            }
        }
        Err(e) => {
            let shown = e.to_string();
            assert!(!shown.contains("FUZZ-secret-token"), "token in {shown}");
            if let ApiError::RateLimited { retry_after, .. } = e {
                assert!(retry_after.as_secs() >= 1);
                assert!(retry_after <= limits::TELEGRAM_MAX_RETRY_AFTER);
            }
        }
    }
});
