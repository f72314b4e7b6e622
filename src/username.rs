//! Usernames as the shop compares them: the normalisation rules shared by
//! `build-filter`, the leaked checks and the per-username limits. A pairs
//! filter records the rule it was built with, and the proxy applies the same
//! one, or `Alice@Example.com` would miss the breached `alice@example.com`,
//! and `+86 138-0013-8000` the breached `13800138000`.
//!
//! # The `auto` rule
//!
//! Customers log in with an e-mail address, a mobile number or an account ID
//! (a QQ number), whichever they like. `auto` decides which one a username is,
//! the same way in `build-filter` and in the proxy:
//!
//! 1. The `email` rule first: trimmed, Unicode NFKC (so fullwidth `１３８`
//!    is `138` and `＋` is `+`), lowercased. Call the result `s`.
//! 2. `s` contains `@`: an e-mail address; the result is `s`.
//! 3. `s` is *dialled*: an optional `+` or `00`, then at least one digit,
//!    and nothing but digits, spaces, dots, dashes and parentheses.
//!    - With `+` or `00`, an international number: its E.164 form
//!      (`+8613800138000`) if it is a valid number of its country.
//!    - Without, a national number of the default region, when one is set:
//!      its E.164 form if it is a valid *mobile* number there (or a
//!      fixed-line-or-mobile one, where the numbering plan cannot tell them
//!      apart, as in the US). In China that is 11 digits starting `13`–`19`.
//! 4. Anything else, including a dialled string that is no valid number
//!    (a QQ number such as `12345678`, or `1380013800`): `s`.
//!
//! So a number that could be either a phone or an ID is a phone when it is a
//! valid mobile number of the default region, and an ID otherwise; a QQ
//! number that happens to be a valid mobile number is keyed as that number,
//! which costs nothing but sharing a username limit with its owner's phone.
//!
//! `phone` says every username is a phone number: a dialled string that is
//! any valid number (fixed lines too) becomes E.164, anything else follows
//! step 4. `id` is step 4 alone, like `email`, for shops whose usernames are
//! account names or numeric IDs.
//!
//! Validity comes from libphonenumber's metadata (the `phonenumber` crate).
//! Plain e-mail addresses never reach it: step 2 costs one scan of the bytes,
//! and borrows when nothing changes.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use phonenumber::country;
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
    /// E-mail addresses as `email`, phone numbers as E.164, anything else
    /// (account IDs, names) as `email` (see the module documentation).
    Auto,
    /// Phone numbers as E.164; anything else as `email`.
    Phone,
    /// Account IDs and names: as `email`.
    Id,
}

impl UsernameNormalization {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Email => "email",
            Self::Auto => "auto",
            Self::Phone => "phone",
            Self::Id => "id",
        }
    }

    /// Returns true if and only if this rule reads phone numbers, and so
    /// depends on a default region.
    pub fn uses_region(self) -> bool {
        matches!(self, Self::Auto | Self::Phone)
    }
}

impl fmt::Display for UsernameNormalization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The region whose national phone numbers are read without a country code:
/// an ISO 3166 code such as `CN`, `US` or `GB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region(country::Id);

/// A region code that libphonenumber does not know.
#[derive(Debug, thiserror::Error)]
#[error("{code:?} is not a region code libphonenumber knows (expected e.g. CN, US, GB)")]
pub struct UnknownRegion {
    code: String,
}

impl Region {
    /// The two ASCII letters, as a filter file stores them.
    pub fn code(self) -> [u8; 2] {
        let code = self.0.as_ref().as_bytes();
        [code[0], code[1]]
    }

    pub fn from_code(code: [u8; 2]) -> Option<Region> {
        std::str::from_utf8(&code).ok()?.parse().ok()
    }
}

impl FromStr for Region {
    type Err = UnknownRegion;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.trim().to_ascii_uppercase();
        match country::Id::from_str(&upper) {
            Ok(id) if upper.len() == 2 && upper.bytes().all(|b| b.is_ascii_uppercase()) => {
                Ok(Region(id))
            }
            _ => Err(UnknownRegion { code: s.to_owned() }),
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_ref())
    }
}

impl<'de> serde::Deserialize<'de> for Region {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        code.parse().map_err(serde::de::Error::custom)
    }
}

/// A normalisation rule and the region it reads national phone numbers in:
/// what a pairs filter records and what the proxy applies. Cheap to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Normalizer {
    kind: UsernameNormalization,
    region: Option<Region>,
}

// === impl Normalizer ===

impl Normalizer {
    /// The rule `kind`, reading national numbers in `region`. The region is
    /// dropped for the rules that read no phone numbers (`none`, `email`,
    /// `id`), so that it cannot make two equal rules differ.
    pub fn new(kind: UsernameNormalization, region: Option<Region>) -> Self {
        let region = region.filter(|_| kind.uses_region());
        Self { kind, region }
    }

    pub fn kind(self) -> UsernameNormalization {
        self.kind
    }

    pub fn region(self) -> Option<Region> {
        self.region
    }

    /// Applies the rule to a raw username (see the module documentation).
    ///
    /// Borrows when nothing changes, which is the common case of an ASCII
    /// address typed in lowercase: no allocation, one scan of the bytes.
    pub fn normalize(self, raw: &str) -> Cow<'_, str> {
        match self.kind {
            UsernameNormalization::None => Cow::Borrowed(raw),
            UsernameNormalization::Email | UsernameNormalization::Id => fold(raw),
            UsernameNormalization::Auto => self.read_number(fold(raw), Accept::Mobile),
            UsernameNormalization::Phone => self.read_number(fold(raw), Accept::AnyValid),
        }
    }

    /// `folded` in E.164 if it is a dialled, valid phone number that
    /// `accept` takes; otherwise `folded` unchanged.
    fn read_number<'a>(self, folded: Cow<'a, str>, accept: Accept) -> Cow<'a, str> {
        match Dialled::read(&folded).and_then(|d| self.e164(&d, accept)) {
            Some(e164) => Cow::Owned(e164),
            None => folded,
        }
    }

    fn e164(self, dialled: &Dialled, accept: Accept) -> Option<String> {
        let digits = dialled.digits();
        let number = if dialled.international {
            let mut plus = String::with_capacity(digits.len() + 1);
            plus.push('+');
            plus.push_str(digits);
            phonenumber::parse(None, plus).ok()?
        } else {
            phonenumber::parse(Some(self.region?.0), digits).ok()?
        };
        if !number.is_valid() {
            return None;
        }
        let taken = dialled.international
            || match accept {
                Accept::AnyValid => true,
                Accept::Mobile => matches!(
                    number.number_type(&phonenumber::metadata::DATABASE),
                    phonenumber::Type::Mobile | phonenumber::Type::FixedLineOrMobile
                ),
            };
        taken.then(|| number.format().mode(phonenumber::Mode::E164).to_string())
    }
}

impl From<UsernameNormalization> for Normalizer {
    fn from(kind: UsernameNormalization) -> Self {
        Self::new(kind, None)
    }
}

impl fmt::Display for Normalizer {
    /// `email`, or `auto (default region CN)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.as_str())?;
        match self.region {
            Some(region) => write!(f, " (default region {region})"),
            None if self.kind.uses_region() => f.write_str(" (no default region)"),
            None => Ok(()),
        }
    }
}

/// Which national numbers count as phone numbers.
#[derive(Clone, Copy)]
enum Accept {
    /// Mobile numbers only: `auto`, where a short fixed-line number is more
    /// likely an account ID.
    Mobile,
    AnyValid,
}

/// Trimmed, Unicode NFKC, lowercased: the `email` rule, and the first step
/// of every other rule but `none`.
fn fold(raw: &str) -> Cow<'_, str> {
    let trimmed = raw.trim();
    if !trimmed.is_ascii() {
        Cow::Owned(trimmed.nfkc().collect::<String>().to_lowercase())
    } else if trimmed.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(trimmed.to_ascii_lowercase())
    } else {
        Cow::Borrowed(trimmed)
    }
}

/// The longest digit string read as a phone number: E.164 allows 15 digits,
/// and a national number may add a trunk prefix.
const MAX_DIGITS: usize = 17;

/// A username that looks dialled: its digits, and whether it started with
/// `+` or `00`.
struct Dialled {
    digits: [u8; MAX_DIGITS],
    len: usize,
    international: bool,
}

impl Dialled {
    /// Reads `s` (already folded) as a dialled number, if it is shaped like
    /// one: an optional `+` or `00`, then digits with only spaces, dots,
    /// dashes and parentheses among them.
    fn read(s: &str) -> Option<Dialled> {
        let (international, rest) = match s.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (s.starts_with("00"), s.strip_prefix("00").unwrap_or(s)),
        };
        let mut dialled = Dialled {
            digits: [0; MAX_DIGITS],
            len: 0,
            international,
        };
        for c in rest.chars() {
            match c {
                '0'..='9' => {
                    *dialled.digits.get_mut(dialled.len)? = c as u8;
                    dialled.len += 1;
                }
                ' ' | '-' | '.' | '(' | ')' | '\u{2010}'..='\u{2015}' | '\u{2212}' => {}
                _ => return None,
            }
        }
        (dialled.len > 0).then_some(dialled)
    }

    fn digits(&self) -> &str {
        std::str::from_utf8(&self.digits[..self.len]).expect("ASCII digits")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalizer(kind: UsernameNormalization, region: Option<&str>) -> Normalizer {
        Normalizer::new(kind, region.map(|r| r.parse().unwrap()))
    }

    #[test]
    fn email_normalization_table() {
        let email = Normalizer::from(UsernameNormalization::Email);
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
            assert_eq!(email.normalize(raw), normalized, "{raw:?}");
        }
    }

    /// Usernames as people type them, under `auto` with the default region
    /// CN: the spellings of one number meet in one E.164 form, and what is
    /// not a valid mobile number stays as folded.
    #[test]
    fn auto_normalization_table() {
        let auto = normalizer(UsernameNormalization::Auto, Some("CN"));
        let cn = "+8613800138000";
        let cases = [
            // Chinese mobile numbers.
            ("13800138000", cn),
            ("+8613800138000", cn),
            ("+86 138 0013 8000", cn),
            ("+86-138-0013-8000", cn),
            ("008613800138000", cn),
            ("0086 138 0013 8000", cn),
            ("138-0013-8000", cn),
            ("138 0013 8000", cn),
            ("138.0013.8000", cn),
            ("(+86) 138 0013 8000", "(+86) 138 0013 8000"),
            ("+86 (138) 0013-8000", cn),
            ("１３８００１３８０００", cn),
            ("＋８６ １３８ ００１３ ８０００", cn),
            ("\u{3000}13800138000\u{3000}", cn),
            ("  13912345678 ", "+8613912345678"),
            ("+86 199 1234 5678", "+8619912345678"),
            // US and UK numbers, dialled internationally.
            ("+1 (415) 555-2671", "+14155552671"),
            ("+1 415.555.2671", "+14155552671"),
            ("001 415 555 2671", "+14155552671"),
            ("+44 7400 123456", "+447400123456"),
            ("+44 (0)7400 123456", "+447400123456"),
            ("0044 7400 123456", "+447400123456"),
            // A national US number is no CN number: kept as typed.
            ("(415) 555-2671", "(415) 555-2671"),
            // QQ numbers and other numeric IDs.
            ("12345", "12345"),
            ("10001", "10001"),
            ("123456789", "123456789"),
            ("1234567890", "1234567890"),
            ("１２３４５６７８９", "123456789"),
            ("1380013800", "1380013800"),
            ("12800138000", "12800138000"),
            // A landline is not a mobile number: under auto, an ID.
            ("01012345678", "01012345678"),
            // E-mail addresses.
            ("Alice.Smith@Example.COM", "alice.smith@example.com"),
            ("alice+shop@example.com", "alice+shop@example.com"),
            ("a.l.i.c.e@gmail.com", "a.l.i.c.e@gmail.com"),
            ("13800138000@qq.com", "13800138000@qq.com"),
            ("12345678@QQ.com", "12345678@qq.com"),
            ("  Bob@Example.com ", "bob@example.com"),
            // Neither.
            ("Zhang_San", "zhang_san"),
            ("张三", "张三"),
            ("ＡＢＣ１２３", "abc123"),
            ("+", "+"),
            ("00", "00"),
            ("+86 138 0013 800x", "+86 138 0013 800x"),
            ("+123", "+123"),
            ("1-800-FLOWERS", "1-800-flowers"),
            ("", ""),
        ];
        assert!(cases.len() >= 30);
        for (raw, normalized) in cases {
            assert_eq!(auto.normalize(raw), normalized, "{raw:?}");
        }
    }

    #[test]
    fn national_numbers_follow_the_default_region() {
        let us = normalizer(UsernameNormalization::Auto, Some("us"));
        assert_eq!(us.normalize("(415) 555-2671"), "+14155552671");
        assert_eq!(us.normalize("13800138000"), "13800138000");
        let gb = normalizer(UsernameNormalization::Auto, Some("GB"));
        assert_eq!(gb.normalize("07400 123456"), "+447400123456");
        // A London landline: not a mobile number, so not a phone under auto.
        assert_eq!(gb.normalize("020 7946 0018"), "020 7946 0018");
        let nowhere = normalizer(UsernameNormalization::Auto, None);
        assert_eq!(nowhere.normalize("13800138000"), "13800138000");
        assert_eq!(nowhere.normalize("+86 138 0013 8000"), "+8613800138000");
    }

    #[test]
    fn phone_takes_every_valid_number_and_id_none() {
        let phone = normalizer(UsernameNormalization::Phone, Some("GB"));
        assert_eq!(phone.normalize("020 7946 0018"), "+442079460018");
        assert_eq!(phone.normalize("07400 123456"), "+447400123456");
        assert_eq!(phone.normalize("Alice"), "alice");
        let id = normalizer(UsernameNormalization::Id, Some("CN"));
        assert_eq!(id.region(), None, "id reads no phone numbers");
        assert_eq!(id.normalize(" 13800138000 "), "13800138000");
        assert_eq!(id.normalize("ＱＱ１２３"), "qq123");
    }

    #[test]
    fn no_normalization_keeps_the_username() {
        let raw = "  Alice@Example.COM ";
        assert_eq!(Normalizer::default().kind(), UsernameNormalization::Email);
        assert_eq!(
            Normalizer::from(UsernameNormalization::None).normalize(raw),
            raw
        );
    }

    #[test]
    fn normalized_ascii_is_borrowed() {
        for kind in [UsernameNormalization::Email, UsernameNormalization::Auto] {
            let normalized = normalizer(kind, Some("CN")).normalize("bob@example.com");
            assert!(matches!(normalized, Cow::Borrowed(_)), "{kind}");
        }
        let id = normalizer(UsernameNormalization::Auto, Some("CN")).normalize("12345678");
        assert!(matches!(id, Cow::Borrowed(_)));
    }

    #[test]
    fn regions_parse_and_print() {
        let cn: Region = " cn".parse().unwrap();
        assert_eq!(cn.to_string(), "CN");
        assert_eq!(Region::from_code(cn.code()), Some(cn));
        for bad in ["", "C", "XX", "CHN", "c1"] {
            assert!(bad.parse::<Region>().is_err(), "{bad:?}");
        }
        assert_eq!(
            normalizer(UsernameNormalization::Auto, Some("CN")).to_string(),
            "auto (default region CN)"
        );
        assert_eq!(
            normalizer(UsernameNormalization::Phone, None).to_string(),
            "phone (no default region)"
        );
        assert_eq!(
            normalizer(UsernameNormalization::Email, Some("CN")).to_string(),
            "email"
        );
    }
}
