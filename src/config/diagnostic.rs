//! What `check-config` (and a refused reload) says about a bad file, as
//! `nginx -t` would: where the error is (`file:line:col`, the line and a
//! caret), and, for an unknown key or value close to a known one, which one
//! was probably meant.

/// A place in the configuration text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    /// The offending line, for the caret.
    pub text: String,
}

impl Location {
    /// The location of byte `offset` in `text`.
    pub fn of(text: &str, offset: usize) -> Self {
        let offset = (0..=offset.min(text.len()))
            .rev()
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        Self {
            line: text[..offset].matches('\n').count() + 1,
            column: text[start..offset].chars().count() + 1,
            text: text[start..end].trim_end_matches('\r').to_owned(),
        }
    }

    /// The offending line with a caret under the column, indented like
    /// rustc's:
    ///
    /// ```text
    ///    |
    ///  7 | max_connections = "many"
    ///    |                   ^
    /// ```
    pub fn snippet(&self) -> String {
        let number = self.line.to_string();
        let gutter = " ".repeat(number.len());
        // Tabs keep their width above the caret.
        let pad: String = self
            .text
            .chars()
            .take(self.column - 1)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        format!("{gutter} |\n{number} | {}\n{gutter} | {pad}^", self.text)
    }
}

/// `reason` with "did you mean `x`?" when serde refused an unknown field or
/// variant that is a small edit away from one it expected. serde's message
/// lists the candidates: "unknown field `ipv4_prefx`, expected one of
/// `rate`, `burst`, `ipv4_prefix`, `ipv6_prefix`".
pub fn with_suggestion(reason: &str) -> String {
    match suggestion(reason) {
        Some(known) => format!("{reason}; did you mean `{known}`?"),
        None => reason.to_owned(),
    }
}

fn suggestion(reason: &str) -> Option<&str> {
    let rest = reason
        .strip_prefix("unknown field `")
        .or_else(|| reason.strip_prefix("unknown variant `"))?;
    let (unknown, expected) = rest.split_once('`')?;
    let (_, expected) = expected.split_once("expected")?;
    let candidates = expected.split('`').skip(1).step_by(2);
    // One edit in four characters at most: `ipv4_prefx` → `ipv4_prefix`,
    // not `rate` → `burst`.
    let max = (unknown.chars().count() / 4).max(1);
    candidates
        .map(|known| (levenshtein(unknown, known), known))
        .filter(|(distance, _)| *distance <= max)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, known)| known)
}

/// The edit distance between `a` and `b`, in characters.
fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_one_based_lines_and_columns() {
        let text = "[server]\nlisten = 5\n";
        let at = Location::of(text, text.find('5').unwrap());
        assert_eq!((at.line, at.column), (2, 10));
        assert_eq!(at.text, "listen = 5");
        assert_eq!(at.snippet(), "  |\n2 | listen = 5\n  |          ^");
    }

    #[test]
    fn a_close_key_is_suggested_and_a_far_one_is_not() {
        let reason = "unknown field `ipv4_prefx`, expected one of `rate`, `burst`, \
                      `ipv4_prefix`, `ipv6_prefix`";
        assert_eq!(suggestion(reason), Some("ipv4_prefix"));
        let reason = "unknown field `retries`, expected `url` or `connect_timeout`";
        assert_eq!(suggestion(reason), None);
        let reason = "unknown variant `blok`, expected one of `block`, `annotate`";
        assert_eq!(suggestion(reason), Some("block"));
        assert_eq!(suggestion("invalid type: string, expected usize"), None);
    }

    #[test]
    fn edit_distance() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("same", "same"), 0);
    }
}
