//! A filter under construction, in memory: what `build-filter` feeds from
//! files, and what a test, a bench or the demo can feed directly.

use std::time::{SystemTime, UNIX_EPOCH};

use bloomfilter::Bloom;
use zeroize::Zeroizing;

use super::input::Entry;
use super::BuildError;
use crate::leaked::{password_digest, Filter, FilterKind, Header, Item};
use crate::username::Normalizer;

/// The fewest items a filter's bits are sized for.
const MIN_SIZED_ITEMS: u64 = 1024;

/// A filter under construction, in memory. `build` feeds it from files; a
/// test or a demo can feed it directly.
pub struct FilterBuilder {
    kind: FilterKind,
    normalization: Normalizer,
    capacity: u64,
    fp_rate: f64,
    /// The Bloom filter, as the bytes `Bloom::into_bytes` gives (see
    /// [`FilterBuilder::insert`] for why not a `Bloom`).
    bytes: Vec<u8>,
    items: u64,
    duplicates: u64,
}

// === impl FilterBuilder ===

impl FilterBuilder {
    /// An empty filter sized for `capacity` items at `fp_rate`, with fresh
    /// random hash keys (so nobody can precompute which inputs collide).
    pub fn new(
        kind: FilterKind,
        normalization: impl Into<Normalizer>,
        capacity: u64,
        fp_rate: f64,
    ) -> Result<Self, BuildError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        bloomfilter::reexports::getrandom::getrandom(&mut *seed).map_err(|e| {
            // getrandom 0.2 implements `std::error::Error` only with its `std`
            // feature; its OS error code carries the cause.
            BuildError::Seed(match e.raw_os_error() {
                Some(code) => std::io::Error::from_raw_os_error(code),
                None => std::io::Error::other(format!("getrandom error {}", e.code())),
            })
        })?;
        Self::with_seed(kind, normalization, capacity, fp_rate, &seed)
    }

    /// Like [`FilterBuilder::new`] with given hash keys: for tests that need
    /// the same bits every run.
    pub(crate) fn with_seed(
        kind: FilterKind,
        normalization: impl Into<Normalizer>,
        capacity: u64,
        fp_rate: f64,
        seed: &[u8; 32],
    ) -> Result<Self, BuildError> {
        check_fp_rate(fp_rate)?;
        let too_large = BuildError::TooLarge {
            items: capacity,
            fp_rate,
        };
        // A filter of a few dozen bits misses its rate by orders of magnitude:
        // the double hashing `h1 + i*h2 mod m` collapses onto a few bits
        // whenever gcd(h2, m) is large. Sizing for at least MIN_SIZED_ITEMS
        // costs 3 KB and keeps even a demo's filter near its target.
        let items = usize::try_from(capacity.max(MIN_SIZED_ITEMS)).map_err(|_| too_large)?;
        let bitmap_bytes = Bloom::<Item<'_>>::compute_bitmap_size(items, fp_rate);
        if bitmap_bytes >= isize::MAX as usize / 2 {
            return Err(BuildError::TooLarge {
                items: capacity,
                fp_rate,
            });
        }
        let bloom = Bloom::<Item<'_>>::new_with_seed(bitmap_bytes, items, seed)
            .expect("bitmap size and item count are positive");
        Ok(Self {
            kind,
            normalization: normalization.into(),
            capacity,
            fp_rate,
            bytes: bloom.into_bytes(),
            items: 0,
            duplicates: 0,
        })
    }

    pub fn kind(&self) -> FilterKind {
        self.kind
    }

    /// Distinct items so far.
    pub fn items(&self) -> u64 {
        self.items
    }

    /// Inserts that changed no bit: repeated items, and the rare new item
    /// that is already a false positive of the filter so far.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Inserts a pair; returns true if and only if it was new.
    ///
    /// # Panics
    ///
    /// If this is a passwords filter.
    pub fn insert_pair(&mut self, normalized_username: &str, password: &[u8]) -> bool {
        assert_eq!(
            self.kind,
            FilterKind::Pairs,
            "a pair for a passwords filter"
        );
        self.insert(&Item::Pair {
            username: normalized_username,
            password,
        })
    }

    /// Inserts a password's SHA-1; returns true if and only if it was new.
    ///
    /// # Panics
    ///
    /// If this is a pairs filter.
    pub fn insert_password(&mut self, password: &[u8]) -> bool {
        let digest = Zeroizing::new(password_digest(password));
        self.insert_password_digest(&digest)
    }

    /// Like [`FilterBuilder::insert_password`], for a digest (an HIBP line).
    pub fn insert_password_digest(&mut self, digest: &[u8; 20]) -> bool {
        assert_eq!(
            self.kind,
            FilterKind::Passwords,
            "a password for a pairs filter"
        );
        self.insert(&Item::Digest(digest))
    }

    /// Inserts a parsed line; returns false if and only if it is malformed.
    pub(super) fn insert_entry(&mut self, entry: Entry<'_>, normalization: Normalizer) -> bool {
        match entry {
            Entry::Pair {
                usernames,
                password,
            } if self.kind == FilterKind::Pairs => {
                let mut inserted = false;
                for username in usernames.iter() {
                    let username = normalization.normalize(username);
                    if !username.is_empty() {
                        self.insert_pair(&username, password);
                        inserted = true;
                    }
                }
                return inserted;
            }
            Entry::Pair { password, .. } | Entry::Password(password) => {
                self.insert_password(password);
            }
            Entry::Digest(digest) => {
                self.insert_password_digest(&digest);
            }
            Entry::Blank | Entry::Rare => {}
            Entry::Malformed => return false,
        }
        true
    }

    fn insert(&mut self, item: &Item<'_>) -> bool {
        // `Bloom<T>` is invariant in `T` behind `&mut`, so a long-lived
        // `Bloom<Item<'static>>` cannot take an item borrowed from a line
        // buffer. Re-typing the bytes for each insert moves the bitmap's Vec,
        // it does not copy it: a few nanoseconds against the cache misses of
        // setting the bits.
        let mut bloom = Bloom::<Item<'_>>::from_bytes(std::mem::take(&mut self.bytes))
            .expect("the bytes came from a Bloom");
        let seen = bloom.check_and_set(item);
        self.bytes = bloom.into_bytes();
        if seen {
            self.duplicates += 1;
        } else {
            self.items += 1;
        }
        !seen
    }

    /// The finished filter; `sources` are the inputs' names for its header.
    pub fn finish(self, mut sources: Vec<String>) -> Filter {
        sources.truncate(usize::from(u16::MAX));
        for name in &mut sources {
            truncate_at_char(name, 255);
        }
        let bloom = Bloom::from_bytes(self.bytes).expect("the bytes came from a Bloom");
        let body = bloom.as_slice();
        let header = Header {
            kind: self.kind,
            normalization: self.normalization,
            items: self.items,
            capacity: self.capacity,
            fp_rate: self.fp_rate,
            built_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            sources,
            bits: bloom.len(),
            hashes: bloom.number_of_hash_functions(),
            body_len: body.len() as u64,
            body_checksum: crc32fast::hash(body),
        };
        Filter::from_parts(header, bloom)
    }
}

fn truncate_at_char(s: &mut String, max: usize) {
    if s.len() > max {
        let end = (0..=max)
            .rev()
            .find(|&i| s.is_char_boundary(i))
            .unwrap_or(0);
        s.truncate(end);
    }
}

pub(super) fn check_fp_rate(rate: f64) -> Result<(), BuildError> {
    if rate > 0.0 && rate < 1.0 {
        Ok(())
    } else {
        Err(BuildError::FpRate { rate })
    }
}
