//! What `cron.add` and `cron.update` take from a client: a job's JSON,
//! compiled into an automation; and the `{placeholder}` templates of
//! notifications and agent messages.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pinclaw::automation::config::Trigger;
use pinclaw::automation::schedule::TimeZone;
use pinclaw::automation::{jobs, template};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    // A template either checks, or names what is wrong; rendering never
    // loses text outside the placeholders it fills.
    let known = ["name", "time", "value", "payload"];
    let checked = template::check(&text, &known);
    let vars = [("value", "21.5".to_owned()), ("payload", "a\"}{b".to_owned())];
    let rendered = template::render(&text, &vars, template::OUTSIDE);
    if checked.is_ok() && !text.contains('{') && !text.contains('}') {
        assert_eq!(rendered, text);
    }

    let Ok(job) = serde_json::from_str::<Value>(&text) else {
        return;
    };
    if let Ok((id, automation)) = jobs::compile(&job, &TimeZone::utc()) {
        assert_eq!(Some(id.as_str()), job["id"].as_str());
        let agent = automation.actions.agent.as_ref().expect("a job is an agent turn");
        assert!(!agent.message.trim().is_empty());
        let Trigger::Schedule(schedule) = &automation.trigger else {
            panic!("a job is a schedule")
        };
        for after in [0, 1_796_644_800_000, i64::MAX - 1] {
            if let Some(next) = schedule.next_after(after) {
                assert!(next > after, "{schedule} after {after} gave {next}");
            }
        }
    }
});
