//! `Config::parse` on any text: errors carry file:line:column (inside the
//! text) and a key path; an accepted config serializes for `config.get`
//! with its secrets redacted.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use pinclaw::config::{Config, ConfigError};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match Config::parse(&text, Path::new("fuzz.toml")) {
        Ok(config) => {
            let json = serde_json::to_value(&config).expect("config.get serializes the config");
            let auth = &json["gateway"]["auth"];
            for secret in ["token", "password"] {
                assert!(
                    auth[secret].is_null() || auth[secret] == "<redacted>",
                    "{secret} not redacted: {}",
                    auth[secret]
                );
            }
            // What was accepted is accepted again.
            assert!(Config::parse(&text, Path::new("fuzz.toml")).is_ok());
        }
        Err(ConfigError::Invalid {
            path,
            line,
            column,
            key,
            message,
        }) => {
            assert_eq!(path, Path::new("fuzz.toml"));
            let lines = text.split('\n').count();
            assert!((1..=lines).contains(&line), "line {line} of {lines}");
            let width = text
                .split('\n')
                .nth(line - 1)
                .map_or(0, |l| l.chars().count());
            assert!(
                (1..=width + 1).contains(&column),
                "column {column} of a {width}-char line"
            );
            assert!(!key.is_empty());
            let shown = ConfigError::Invalid {
                path,
                line,
                column,
                key,
                message,
            }
            .to_string();
            assert!(
                shown.starts_with(&format!("fuzz.toml:{line}:{column}: ")),
                "{shown}"
            );
        }
        Err(ConfigError::Semantic { path, key, .. }) => {
            assert_eq!(path, Path::new("fuzz.toml"));
            assert!(!key.is_empty());
        }
        Err(ConfigError::Read { .. }) => panic!("parse never reads a file"),
    }
});
