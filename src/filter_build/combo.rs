//! Combo lists as they are traded: `user:pass`, but also `email----pass`,
//! `user|pass`, and lines with more columns (`email----pass----phone`).
//!
//! The separator is detected per input file, on its first line that has one,
//! unless `--separator` names it: whichever of `----`, `|`, `:`, `;` and tab
//! comes first on that line. `:`, `;` and tab keep the classic rule: on every
//! line, the first of the three splits, so a password may contain all of
//! them. `----` and `|` split at their first occurrence only.
//!
//! `--columns` names the columns by position (default `user,pass`): the
//! line is split at the first n−1 separators for n columns, so the last
//! column takes the rest of the line (a password in the last column may
//! contain the separator). Every `user` column (aliases `email`, `phone`,
//! `id`) is an identifier of the same account: a line adds one pair per
//! non-empty identifier. `skip` (or `-`) columns are ignored. A line needs
//! its password and at least one identifier; columns missing at the end of a
//! line are empty.

use std::fmt;
use std::str::FromStr;

/// The most columns `--columns` may name.
pub const MAX_COLUMNS: usize = 8;

/// The most identifier columns one line may have (an e-mail address, a phone
/// number, an account ID and a name). Kept small because every parsed line
/// carries them by value: at eight, moving a line's entry cost a `memcpy`
/// and build throughput dropped by a tenth.
pub const MAX_IDENTIFIERS: usize = 4;

/// What separates a combo line's columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Separator {
    /// The first of `:`, `;` and tab, whichever comes first on each line.
    Classic,
    Colon,
    Semicolon,
    Tab,
    Pipe,
    /// `----`, four dashes.
    Dashes,
}

/// A `--separator` that is none of the known ones.
#[derive(Debug, thiserror::Error)]
#[error("unknown separator {0:?}: expected ----, |, :, ; or tab")]
pub struct UnknownSeparator(String);

impl Separator {
    /// The separator of a file whose first line with one is `line`; `None`
    /// if `line` has none.
    pub fn detect(line: &[u8]) -> Option<Separator> {
        let classic = memchr::memchr3(b':', b';', b'\t', line);
        let pipe = memchr::memchr(b'|', line);
        let dashes = memchr::memmem::find(line, b"----");
        [
            (classic, Separator::Classic),
            (pipe, Separator::Pipe),
            (dashes, Separator::Dashes),
        ]
        .into_iter()
        .filter_map(|(at, sep)| Some((at?, sep)))
        .min_by_key(|&(at, _)| at)
        .map(|(_, sep)| sep)
    }

    /// Splits `line` at this separator's first occurrence.
    pub fn split(self, line: &[u8]) -> Option<(&[u8], &[u8])> {
        let (at, len) = match self {
            Self::Classic => (memchr::memchr3(b':', b';', b'\t', line)?, 1),
            Self::Colon => (memchr::memchr(b':', line)?, 1),
            Self::Semicolon => (memchr::memchr(b';', line)?, 1),
            Self::Tab => (memchr::memchr(b'\t', line)?, 1),
            Self::Pipe => (memchr::memchr(b'|', line)?, 1),
            Self::Dashes => (memchr::memmem::find(line, b"----")?, 4),
        };
        Some((&line[..at], &line[at + len..]))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Classic => ": ; or tab",
            Self::Colon => ":",
            Self::Semicolon => ";",
            Self::Tab => "tab",
            Self::Pipe => "|",
            Self::Dashes => "----",
        }
    }
}

impl FromStr for Separator {
    type Err = UnknownSeparator;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            ":" => Ok(Self::Colon),
            ";" => Ok(Self::Semicolon),
            "tab" | "\t" | "\\t" => Ok(Self::Tab),
            "|" => Ok(Self::Pipe),
            "----" => Ok(Self::Dashes),
            _ => Err(UnknownSeparator(s.to_owned())),
        }
    }
}

impl fmt::Display for Separator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One column of a combo line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// An identifier of the account: an e-mail address, a phone number, an
    /// account name or ID.
    User,
    Pass,
    Skip,
}

/// The columns of a combo line, by position: `user,pass` by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Columns {
    roles: [Column; MAX_COLUMNS],
    len: usize,
}

/// A `--columns` list that cannot describe a combo line.
#[derive(Debug, thiserror::Error)]
pub enum BadColumns {
    #[error("unknown column {0:?}: expected user (or email, phone, id), pass or skip")]
    Unknown(String),
    #[error("--columns needs exactly one pass column and at least one user column")]
    Roles,
    #[error("--columns names more than {MAX_COLUMNS} columns")]
    TooMany,
    #[error("--columns names more than {MAX_IDENTIFIERS} user columns")]
    TooManyIdentifiers,
}

impl Columns {
    /// How many identifier columns a line has: the most pairs one line adds.
    pub fn identifiers(&self) -> usize {
        self.roles().iter().filter(|&&c| c == Column::User).count()
    }

    fn roles(&self) -> &[Column] {
        &self.roles[..self.len]
    }

    /// Splits `line` into its columns at `sep`: the identifiers that are
    /// UTF-8 and not empty, and the password. `None` when the line has no
    /// password or no identifier.
    pub fn split<'a>(&self, sep: Separator, line: &'a [u8]) -> Option<(Usernames<'a>, &'a [u8])> {
        if *self == Self::default() {
            // Nearly every list is `user:pass`: one split, no column walk.
            let (user, password) = sep.split(line)?;
            let usernames = Usernames::one_field(user);
            return (!password.is_empty() && usernames.len > 0).then_some((usernames, password));
        }
        let mut usernames = Usernames::default();
        let mut password = None;
        let mut rest = Some(line);
        for (i, role) in self.roles().iter().enumerate() {
            let field = match rest.take() {
                None => &[][..],
                Some(r) if i + 1 < self.len => match sep.split(r) {
                    Some((field, after)) => {
                        rest = Some(after);
                        field
                    }
                    None => r,
                },
                Some(r) => r,
            };
            match role {
                Column::Pass => password = Some(field),
                Column::User => usernames.push(field),
                Column::Skip => {}
            }
        }
        let password = password.filter(|p| !p.is_empty())?;
        (usernames.len > 0).then_some((usernames, password))
    }
}

impl Default for Columns {
    fn default() -> Self {
        let mut roles = [Column::Skip; MAX_COLUMNS];
        roles[..2].copy_from_slice(&[Column::User, Column::Pass]);
        Self { roles, len: 2 }
    }
}

impl FromStr for Columns {
    type Err = BadColumns;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut columns = Columns {
            roles: [Column::Skip; MAX_COLUMNS],
            len: 0,
        };
        for name in s.split(',').map(str::trim) {
            let role = match name.to_ascii_lowercase().as_str() {
                "user" | "username" | "email" | "phone" | "id" => Column::User,
                "pass" | "password" => Column::Pass,
                "skip" | "-" | "_" => Column::Skip,
                _ => return Err(BadColumns::Unknown(name.to_owned())),
            };
            *columns
                .roles
                .get_mut(columns.len)
                .ok_or(BadColumns::TooMany)? = role;
            columns.len += 1;
        }
        let passes = columns.roles().iter().filter(|&&c| c == Column::Pass);
        if passes.count() != 1 || columns.identifiers() == 0 {
            return Err(BadColumns::Roles);
        }
        if columns.identifiers() > MAX_IDENTIFIERS {
            return Err(BadColumns::TooManyIdentifiers);
        }
        Ok(columns)
    }
}

impl fmt::Display for Columns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, role) in self.roles().iter().enumerate() {
            let name = match role {
                Column::User => "user",
                Column::Pass => "pass",
                Column::Skip => "skip",
            };
            write!(f, "{}{name}", if i > 0 { "," } else { "" })?;
        }
        Ok(())
    }
}

/// The identifiers of one combo line, not normalised yet. No allocation.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Usernames<'a> {
    names: [&'a str; MAX_IDENTIFIERS],
    len: usize,
}

impl<'a> Usernames<'a> {
    /// One identifier.
    pub fn one(name: &'a str) -> Self {
        Self::one_field(name.as_bytes())
    }

    fn one_field(field: &'a [u8]) -> Self {
        let mut usernames = Self::default();
        usernames.push(field);
        usernames
    }

    /// Adds `field` if it is UTF-8 and not empty.
    fn push(&mut self, field: &'a [u8]) {
        if let Ok(name) = std::str::from_utf8(field) {
            if !name.is_empty() {
                self.names[self.len] = name;
                self.len += 1;
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.names[..self.len].iter().copied()
    }
}

impl fmt::Debug for Usernames<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_separator_on_the_line_is_the_files() {
        let cases: [(&[u8], Option<Separator>); 8] = [
            (b"alice@example.com:pw", Some(Separator::Classic)),
            (b"alice\tpw", Some(Separator::Classic)),
            (
                b"alice@example.com----pw----13800138000",
                Some(Separator::Dashes),
            ),
            (b"alice@example.com|pw:with:colons", Some(Separator::Pipe)),
            (b"alice:pw----x", Some(Separator::Classic)),
            (b"a-b-c@example.com----p|w", Some(Separator::Dashes)),
            (b"a--b|pw", Some(Separator::Pipe)),
            (b"no separator", None),
        ];
        for (line, expected) in cases {
            assert_eq!(Separator::detect(line), expected, "{}", line.escape_ascii());
        }
    }

    #[test]
    fn columns_split_lines_into_identifiers_and_a_password() {
        let three: Columns = "email,pass,phone".parse().unwrap();
        assert_eq!(three.to_string(), "user,pass,user");
        assert_eq!(three.identifiers(), 2);
        let split = |columns: &Columns, sep, line: &'static [u8]| {
            columns
                .split(sep, line)
                .map(|(u, p)| (u.iter().collect::<Vec<_>>(), p))
        };
        let dashes = Separator::Dashes;
        assert_eq!(
            split(&three, dashes, b"a@x.cn----pw----13800138000"),
            Some((vec!["a@x.cn", "13800138000"], &b"pw"[..]))
        );
        // The last column takes the rest; a missing one is empty.
        assert_eq!(
            split(&three, dashes, b"a@x.cn----pw----138----x"),
            Some((vec!["a@x.cn", "138----x"], &b"pw"[..]))
        );
        assert_eq!(
            split(&three, dashes, b"a@x.cn----pw"),
            Some((vec!["a@x.cn"], &b"pw"[..]))
        );
        assert_eq!(
            split(&three, dashes, b"----pw----13800138000"),
            Some((vec!["13800138000"], &b"pw"[..]))
        );
        assert_eq!(split(&three, dashes, b"a@x.cn--------138"), None);
        // The default `user,pass` takes its own path: the same answers.
        let two = Columns::default();
        let classic = Separator::Classic;
        assert_eq!(
            split(&two, classic, b"a@x.cn:pw:x"),
            Some((vec!["a@x.cn"], &b"pw:x"[..]))
        );
        for line in [&b"a@x.cn:"[..], b":pw", b"no separator", b"\xff:pw"] {
            assert_eq!(split(&two, classic, line), None, "{line:?}");
        }
        assert_eq!(split(&three, dashes, b"a@x.cn"), None);
        let two = Columns::default();
        assert_eq!(
            split(&two, Separator::Pipe, b"bob|p|w"),
            Some((vec!["bob"], &b"p|w"[..]))
        );
        let pass_first: Columns = "pass,skip,user".parse().unwrap();
        assert_eq!(
            split(&pass_first, Separator::Classic, b"pw:ignored;bob"),
            Some((vec!["bob"], &b"pw"[..]))
        );
    }

    #[test]
    fn bad_column_lists_and_separators_are_refused() {
        for bad in ["user", "pass", "user,pass,pass", "user,password,color", ""] {
            assert!(bad.parse::<Columns>().is_err(), "{bad:?}");
        }
        assert!("user,pass,-,-,-,-,-,-,-".parse::<Columns>().is_err());
        assert!("user,pass,-,-,-,-,-,-".parse::<Columns>().is_ok());
        assert!("user,pass,user,user,user".parse::<Columns>().is_ok());
        assert!(matches!(
            "user,pass,user,user,user,user".parse::<Columns>(),
            Err(BadColumns::TooManyIdentifiers)
        ));
        for (text, sep) in [("----", Separator::Dashes), ("tab", Separator::Tab)] {
            assert_eq!(text.parse::<Separator>().unwrap(), sep);
        }
        assert!("--".parse::<Separator>().is_err());
    }
}
