//! Topic names and topic filters (MQTT 3.1.1 §4.7): what may be published
//! to, what may be subscribed to, and whether a filter matches a topic.

/// Longest topic or filter: an MQTT string carries a 16-bit length.
pub const MAX_TOPIC_BYTES: usize = 65_535;

/// Why a topic name or filter is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// Zero bytes long.
    #[error("the topic is empty")]
    Empty,
    /// Over [`MAX_TOPIC_BYTES`].
    #[error("the topic is longer than 65535 bytes")]
    TooLong,
    /// Contains U+0000, which MQTT strings may not carry.
    #[error("the topic contains a NUL character")]
    Nul,
    /// A topic name (publish) with `+` or `#`.
    #[error("a topic to publish to may not contain + or #")]
    Wildcard,
    /// `+` next to other characters of its level (`a/b+/c`).
    #[error("+ must be a whole topic level")]
    PlusNotWholeLevel,
    /// `#` that is not the whole last level (`a/#/b`, `a/b#`).
    #[error("# must be the whole last topic level")]
    HashNotLast,
}

fn check_string(s: &str) -> Result<(), TopicError> {
    if s.is_empty() {
        Err(TopicError::Empty)
    } else if s.len() > MAX_TOPIC_BYTES {
        Err(TopicError::TooLong)
    } else if s.contains('\0') {
        Err(TopicError::Nul)
    } else {
        Ok(())
    }
}

/// A topic a message may be published to: non-empty, at most 65535 bytes,
/// no NUL, no wildcard. (UTF-8 is given by `&str`.)
pub fn check_topic_name(topic: &str) -> Result<(), TopicError> {
    check_string(topic)?;
    if topic.contains(['+', '#']) {
        return Err(TopicError::Wildcard);
    }
    Ok(())
}

/// A topic filter to subscribe to: like a topic name, but `+` may fill any
/// whole level and `#` only the whole last level.
pub fn check_topic_filter(filter: &str) -> Result<(), TopicError> {
    check_string(filter)?;
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('+') && level != "+" {
            return Err(TopicError::PlusNotWholeLevel);
        }
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return Err(TopicError::HashNotLast);
        }
    }
    Ok(())
}

/// Whether `filter` matches `topic` (§4.7): `+` matches exactly one level
/// (an empty one too), `#` the rest including the parent level (`a/#`
/// matches `a`), and a topic starting with `$` is never matched by a
/// filter starting with a wildcard. Assumes a valid filter and name.
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut filter_levels = filter.split('/');
    let mut topic_levels = topic.split('/');
    loop {
        match (filter_levels.next(), topic_levels.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(f), Some(t)) if f == t => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        let table: &[(&str, Result<(), TopicError>)] = &[
            ("a", Ok(())),
            ("a/b/c", Ok(())),
            ("/", Ok(())),
            ("/a/", Ok(())),
            ("$SYS/broker", Ok(())),
            ("küche/temperatur", Ok(())),
            ("", Err(TopicError::Empty)),
            ("a/+/c", Err(TopicError::Wildcard)),
            ("a/#", Err(TopicError::Wildcard)),
            ("a+b", Err(TopicError::Wildcard)),
            ("a\0b", Err(TopicError::Nul)),
        ];
        for (topic, want) in table {
            assert_eq!(check_topic_name(topic), *want, "{topic:?}");
        }
        assert_eq!(check_topic_name(&"a".repeat(65_535)), Ok(()));
        assert_eq!(
            check_topic_name(&"a".repeat(65_536)),
            Err(TopicError::TooLong)
        );
    }

    #[test]
    fn topic_filters() {
        let table: &[(&str, Result<(), TopicError>)] = &[
            ("a/b", Ok(())),
            ("#", Ok(())),
            ("+", Ok(())),
            ("+/+", Ok(())),
            ("a/+/c/#", Ok(())),
            ("/#", Ok(())),
            ("+/", Ok(())),
            ("$SYS/#", Ok(())),
            ("", Err(TopicError::Empty)),
            ("a/b+", Err(TopicError::PlusNotWholeLevel)),
            ("a/++/c", Err(TopicError::PlusNotWholeLevel)),
            ("a/#/c", Err(TopicError::HashNotLast)),
            ("a/b#", Err(TopicError::HashNotLast)),
            ("##", Err(TopicError::HashNotLast)),
            ("#/", Err(TopicError::HashNotLast)),
            ("a\0/#", Err(TopicError::Nul)),
        ];
        for (filter, want) in table {
            assert_eq!(check_topic_filter(filter), *want, "{filter:?}");
        }
        assert_eq!(
            check_topic_filter(&"+/".repeat(40_000)),
            Err(TopicError::TooLong)
        );
    }

    #[test]
    fn matching_follows_the_spec() {
        let table: &[(&str, &str, bool)] = &[
            ("a/b/c", "a/b/c", true),
            ("a/b/c", "a/b", false),
            ("a/b", "a/b/c", false),
            ("a/b", "A/b", false),
            ("#", "a", true),
            ("#", "a/b/c", true),
            ("#", "/a", true),
            ("a/#", "a", true),
            ("a/#", "a/b", true),
            ("a/#", "a/b/c", true),
            ("a/#", "ab", false),
            ("sport/tennis/player1/#", "sport/tennis/player1", true),
            (
                "sport/tennis/player1/#",
                "sport/tennis/player1/ranking",
                true,
            ),
            ("sport/tennis/+", "sport/tennis/player1", true),
            ("sport/tennis/+", "sport/tennis/player1/ranking", false),
            ("sport/+", "sport", false),
            ("sport/+", "sport/", true),
            ("+", "a", true),
            ("+", "/a", false),
            ("+/+", "/finance", true),
            ("/+", "/finance", true),
            ("+/b/+", "a/b/c", true),
            ("+/b/+", "a/x/c", false),
            ("a/+/#", "a/b", true),
            ("a/+/#", "a", false),
            // $-topics are not matched by a leading wildcard.
            ("#", "$SYS/broker/uptime", false),
            ("+/broker/uptime", "$SYS/broker/uptime", false),
            ("$SYS/#", "$SYS/broker/uptime", true),
            ("$SYS/+/uptime", "$SYS/broker/uptime", true),
            ("a/#", "a/$b", true),
        ];
        for (filter, topic, want) in table {
            assert_eq!(topic_matches(filter, topic), *want, "{filter:?} {topic:?}");
        }
    }
}
