//! Credential field names as the shop's framework would compare them.
//!
//! The shop behind credgate may be any common stack, and stacks disagree on
//! which names are "the same": some fold case (ASCII or full Unicode, so
//! `paſſword` and `PASSWORD` reach `password`), some normalise compatibility
//! characters, and PHP turns spaces and dots in names into underscores. A
//! name that one of them would read as a credential field, but that is not
//! byte for byte the configured name, is a *variant*: credgate cannot know
//! which of the two the shop reads, so it refuses the request instead of
//! guessing.

use std::fmt;

use unicase::UniCase;
use unicode_normalization::UnicodeNormalization;

/// Which credential a problem concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Username,
    Password,
}

/// How a name found in a request relates to a configured field name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameMatch {
    /// Byte for byte the configured name.
    Same,
    /// Another spelling that some shop would read as the configured name.
    Variant,
    /// A different field.
    Other,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Username => "username",
            Self::Password => "password",
        })
    }
}

/// Compares a name as sent (`candidate`, raw bytes: form names need not be
/// UTF-8) with a configured field name.
pub fn compare(candidate: &[u8], field: &str) -> NameMatch {
    if candidate == field.as_bytes() {
        return NameMatch::Same;
    }
    if candidate.is_ascii() && field.is_ascii() && !has_php_mangled(candidate) {
        // The common case, without allocating.
        return match candidate.eq_ignore_ascii_case(field.as_bytes()) {
            true => NameMatch::Variant,
            false => NameMatch::Other,
        };
    }
    let candidate = String::from_utf8_lossy(candidate);
    match UniCase::unicode(fold(&candidate)) == UniCase::unicode(fold(field)) {
        true => NameMatch::Variant,
        false => NameMatch::Other,
    }
}

/// Returns true if and only if PHP would rewrite the name (`user.name` and
/// `user name` both become `user_name`, leading spaces are dropped).
fn has_php_mangled(name: &[u8]) -> bool {
    name.iter().any(|&b| b == b' ' || b == b'.')
}

/// Compatibility-normalised (NFKC, so `ｐａｓｓ` is `pass`) with PHP's name
/// mangling applied; full case folding is `UniCase`'s part.
fn fold(name: &str) -> String {
    name.trim_start_matches(' ')
        .nfkc()
        .map(|c| match c {
            ' ' | '.' => '_',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_a_shop_would_fold_together_are_variants() {
        let cases: &[(&str, &str, NameMatch)] = &[
            ("password", "password", NameMatch::Same),
            ("Password", "password", NameMatch::Variant),
            ("PASSWORD", "password", NameMatch::Variant),
            // U+017F LATIN SMALL LETTER LONG S folds to `s`.
            ("pa\u{17f}\u{17f}word", "password", NameMatch::Variant),
            // U+212A KELVIN SIGN folds to `k`.
            ("\u{212a}ey", "key", NameMatch::Variant),
            // Full folding: `ß` is `ss`.
            ("pa\u{df}word", "password", NameMatch::Variant),
            // Fullwidth letters, by NFKC.
            ("\u{ff50}assword", "password", NameMatch::Variant),
            // PHP's mangling.
            ("user.name", "user_name", NameMatch::Variant),
            ("user name", "user_name", NameMatch::Variant),
            (" password", "password", NameMatch::Variant),
            ("user", "User", NameMatch::Variant),
            ("passwords", "password", NameMatch::Other),
            ("email", "password", NameMatch::Other),
            ("user_name", "username", NameMatch::Other),
        ];
        for (candidate, field, want) in cases {
            assert_eq!(compare(candidate.as_bytes(), field), *want, "{candidate}");
        }
    }
}
