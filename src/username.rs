//! Usernames as the shop compares them: the normalisation rules shared by
//! `build-filter`, the leaked checks and the per-username limits. A pairs
//! filter records the rule it was built with, and the proxy applies the same
//! one, or `Alice@Example.com` would miss the breached `alice@example.com`.

use std::borrow::Cow;
use std::fmt;

use unicode_normalization::UnicodeNormalization;

/// How usernames are made comparable before they are hashed. A pairs filter
/// records the rule it was built with; the proxy must apply the same one, or
/// `Alice@Example.com` would miss the breached `alice@example.com`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum UsernameNormalization {
    /// The username exactly as typed.
    None,
    /// Trimmed, Unicode NFKC, lowercased: what most shops treat as the same
    /// e-mail address.
    #[default]
    Email,
}

impl UsernameNormalization {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Email => "email",
        }
    }
}

impl fmt::Display for UsernameNormalization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Applies `n` to a raw username. `none`: unchanged. `email`: trimmed, Unicode
/// NFKC (so fullwidth `ＡＬＩＣＥ` is `ALICE`), lowercased.
///
/// Borrows when nothing changes, which is the common case of an ASCII address
/// typed in lowercase (ASCII is unchanged by NFKC).
pub fn normalize_username(raw: &str, n: UsernameNormalization) -> Cow<'_, str> {
    match n {
        UsernameNormalization::None => Cow::Borrowed(raw),
        UsernameNormalization::Email => {
            let trimmed = raw.trim();
            if !trimmed.is_ascii() {
                Cow::Owned(trimmed.nfkc().collect::<String>().to_lowercase())
            } else if trimmed.bytes().any(|b| b.is_ascii_uppercase()) {
                Cow::Owned(trimmed.to_ascii_lowercase())
            } else {
                Cow::Borrowed(trimmed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_normalization_table() {
        let email = UsernameNormalization::Email;
        let cases = [
            ("alice@example.com", "alice@example.com"),
            ("  Alice@Example.COM\t", "alice@example.com"),
            ("ＡＬＩＣＥ＠ｅｘａｍｐｌｅ．ｃｏｍ", "alice@example.com"),
            ("\u{3000}bob@example.com\u{00a0}", "bob@example.com"),
            ("ÉLODIE@example.fr", "élodie@example.fr"),
            // "E" + combining acute composes to the single "é" under NFKC.
            ("E\u{301}lodie@example.fr", "élodie@example.fr"),
            ("ﬁona@example.com", "fiona@example.com"),
            ("", ""),
        ];
        for (raw, normalized) in cases {
            assert_eq!(normalize_username(raw, email), normalized, "{raw:?}");
        }
    }

    #[test]
    fn no_normalization_keeps_the_username() {
        let raw = "  Alice@Example.COM ";
        assert_eq!(normalize_username(raw, UsernameNormalization::None), raw);
    }

    #[test]
    fn normalized_ascii_is_borrowed() {
        let normalized = normalize_username("bob@example.com", UsernameNormalization::Email);
        assert!(matches!(normalized, Cow::Borrowed(_)));
    }
}
