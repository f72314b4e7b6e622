//! Where a ban came from and why: a rule (automatic, its reason a
//! `&'static str` such as `failures`), or an operator through the admin API
//! (manual, with who and why when they said).

use std::borrow::Cow;

use ipnet::IpNet;

use crate::reputation::{Ban, BanReason};

/// A ban as the backends hand it over: target, ban, operator's note.
pub type Held = (IpNet, Ban, Option<Note>);

/// Who made a ban.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Automatic,
    Manual,
}

/// What an operator said about a manual ban; both parts optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Note {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A ban's origin and reason, as listed, logged and kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    pub origin: Origin,
    /// An automatic ban's rule, or the operator's words (`manual` when they
    /// gave none).
    pub reason: Cow<'static, str>,
    pub by: Option<String>,
}

impl Note {
    pub fn is_empty(&self) -> bool {
        self.by.is_none() && self.reason.is_none()
    }
}

impl Cause {
    /// The cause of a ban of `reason`, with the operator's note if manual.
    pub fn of(reason: BanReason, note: Option<&Note>) -> Self {
        match reason {
            BanReason::Manual => Self::manual(note.cloned().unwrap_or_default()),
            rule => Self::automatic(rule.as_str()),
        }
    }

    /// A ban made by a rule.
    pub fn automatic(reason: &'static str) -> Self {
        Self {
            origin: Origin::Automatic,
            reason: Cow::Borrowed(reason),
            by: None,
        }
    }

    pub fn manual(note: Note) -> Self {
        Self {
            origin: Origin::Manual,
            reason: note
                .reason
                .map_or(Cow::Borrowed(BanReason::Manual.as_str()), Cow::Owned),
            by: note.by,
        }
    }
}

/// The value of a ban in the Redis index's reason hash: an automatic ban's
/// rule, `manual`, or (new) a manual ban's note as a JSON object. A replica
/// that predates notes reads the object as `manual`, as it reads any
/// unknown value.
pub fn index_value(reason: BanReason, note: Option<&Note>) -> Cow<'static, str> {
    match note.filter(|n| reason == BanReason::Manual && !n.is_empty()) {
        Some(note) => Cow::Owned(serde_json::to_string(note).unwrap_or_default()),
        None => Cow::Borrowed(reason.as_str()),
    }
}

/// The reason and note of a Redis index value, old or new. An unknown rule
/// (from a newer replica) is kept as the words of a manual ban rather than
/// lost.
pub fn parse_index_value(text: &str) -> (BanReason, Option<Note>) {
    if text.starts_with('{') {
        return (BanReason::Manual, serde_json::from_str(text).ok());
    }
    match BanReason::from_name(text) {
        Some(reason) => (reason, None),
        None => (
            BanReason::Manual,
            Some(Note {
                by: None,
                reason: Some(text.to_owned()),
            }),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_values_old_and_new_read_back() {
        let note = Note {
            by: Some("alice".into()),
            reason: Some("scraper".into()),
        };
        let stored = index_value(BanReason::Manual, Some(&note));
        assert_eq!(
            parse_index_value(&stored),
            (BanReason::Manual, Some(note.clone()))
        );
        // Values written before notes existed.
        assert_eq!(parse_index_value("manual"), (BanReason::Manual, None));
        assert_eq!(parse_index_value("failures"), (BanReason::Failures, None));
        // An automatic ban never carries a note; an empty note is `manual`.
        assert_eq!(index_value(BanReason::Failures, Some(&note)), "failures");
        assert_eq!(
            index_value(BanReason::Manual, Some(&Note::default())),
            "manual"
        );
    }

    #[test]
    fn a_cause_says_who_and_why() {
        let automatic = Cause::of(BanReason::UsernameSpray, None);
        assert_eq!(automatic.origin, Origin::Automatic);
        assert_eq!(automatic.reason, "username_spray");
        let silent = Cause::of(BanReason::Manual, None);
        assert_eq!((silent.origin, &*silent.reason), (Origin::Manual, "manual"));
        let note = Note {
            by: Some("bob".into()),
            reason: Some("card testing".into()),
        };
        let said = Cause::of(BanReason::Manual, Some(&note));
        assert_eq!(said.reason, "card testing");
        assert_eq!(said.by.as_deref(), Some("bob"));
    }
}
