//! Leaked-credential filters: Bloom filters of breach corpora, the file that
//! holds one, and the checks on the login path.
//!
//! A filter answers "was this seen in a breach?" with no false negatives and
//! a small, chosen rate of false positives (1e-5 by default). A false
//! positive tells a real customer that a password is leaked, which costs a
//! password reset, not an account; a false negative would let a stuffed login
//! through. Holding hundreds of millions of credentials exactly would take
//! gigabytes of plaintext secrets in the proxy's memory; the filter takes
//! about 3 bytes per credential and holds only seeded hash bits, never a
//! username or a password in clear.
//!
//! Two kinds of filter:
//!
//! - **pairs**: the item is `normalised_username \0 password`, fed to the
//!   hasher piece by piece (no buffer is built);
//! - **passwords**: the item is the 20-byte SHA-1 of the password, so Have I
//!   Been Pwned's `SHA1HEX:count` lists load directly.
//!
//! [`format`] is the file (header, checksums, loading without a second copy of
//! the bits), [`FilterBuilder`] fills a filter in memory, [`build`] compiles
//! corpora into a file (`credgate build-filter`), `input` reads the corpora,
//! [`progress`] reports on long builds.

pub mod format;
pub mod store;

use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::slice;

use bloomfilter::Bloom;
use sha1::digest::generic_array::GenericArray;
use zeroize::{Zeroize, Zeroizing};

pub use format::{verify, Header, FORMAT_VERSION};
pub use store::{Found, LeakedFilters};

/// What a filter holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum FilterKind {
    /// `normalised_username \0 password` items.
    Pairs,
    /// SHA-1 digests of passwords.
    Passwords,
}

impl FilterKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pairs => "pairs",
            Self::Passwords => "passwords",
        }
    }
}

impl fmt::Display for FilterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A loaded filter: its header and its bits. Cheap to query from many
/// threads at once (`&self` only); share it behind an `Arc`.
pub struct Filter {
    header: Header,
    bloom: Bloom<Item<'static>>,
}

// === impl Filter ===

impl Filter {
    /// Loads and verifies a filter file: magic, format version, header and
    /// body checksums, lengths. The body is read straight into the bitmap the
    /// filter keeps, so a 1 GB filter needs 1 GB, not 2.
    pub fn load(path: &Path) -> Result<Filter, FilterError> {
        format::load(path, None)
    }

    /// Like [`Filter::load`], and refuses a filter of another kind before
    /// reading its body.
    pub fn load_kind(path: &Path, kind: FilterKind) -> Result<Filter, FilterError> {
        format::load(path, Some(kind))
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Returns true if and only if the pair is (probably) in the filter.
    /// Always false for a passwords filter, which holds no pairs.
    ///
    /// `normalized_username` must already be normalised with the filter's
    /// [`Header::normalization`] (see [`crate::username::Normalizer`]).
    /// Allocates nothing.
    pub fn contains_pair(&self, normalized_username: &str, password: &[u8]) -> bool {
        self.header.kind == FilterKind::Pairs
            && self.check(&Item::Pair {
                username: normalized_username,
                password,
            })
    }

    /// Returns true if and only if the password is (probably) in the filter.
    /// Always false for a pairs filter. Allocates nothing; the digest lives on
    /// the stack and is zeroed after use.
    pub fn contains_password(&self, password: &[u8]) -> bool {
        let digest = Zeroizing::new(password_digest(password));
        self.contains_password_digest(&digest)
    }

    /// Like [`Filter::contains_password`], for a SHA-1 digest computed
    /// elsewhere (e.g. a Have I Been Pwned hash).
    pub fn contains_password_digest(&self, digest: &[u8; 20]) -> bool {
        self.header.kind == FilterKind::Passwords && self.check(&Item::Digest(digest))
    }

    fn check(&self, item: &Item<'_>) -> bool {
        // `Bloom<T>` is covariant in `T`, so the stored `Item<'static>` filter
        // is also a filter of shorter-lived items behind a shared reference.
        let bloom: &Bloom<Item<'_>> = &self.bloom;
        bloom.check(item)
    }
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Filter")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

/// Why a filter file could not be loaded, verified or written.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("{}: cannot read the filter file", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: cannot write the filter file", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a credgate filter file (wrong magic bytes)", path.display())]
    NotAFilter { path: PathBuf },
    #[error(
        "{}: filter format version {found} is not supported (this credgate reads versions 1 to {supported})",
        path.display()
    )]
    UnsupportedVersion {
        path: PathBuf,
        found: u16,
        supported: u16,
    },
    #[error("{}: truncated: {found} bytes, the header announces {expected}", path.display())]
    Truncated {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
    #[error("{}: {found} bytes, {} more than the header announces", path.display(), found - expected)]
    TrailingBytes {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
    #[error(
        "{}: the header is corrupt (checksum {computed:08x}, stored {stored:08x})",
        path.display()
    )]
    HeaderCorrupt {
        path: PathBuf,
        stored: u32,
        computed: u32,
    },
    #[error(
        "{}: the filter body is corrupt (checksum {computed:08x}, stored {stored:08x})",
        path.display()
    )]
    BodyCorrupt {
        path: PathBuf,
        stored: u32,
        computed: u32,
    },
    #[error("{}: invalid header: {what}", path.display())]
    Malformed { path: PathBuf, what: &'static str },
    #[error("{}: a {found} filter, where a {expected} filter is expected", path.display())]
    WrongKind {
        path: PathBuf,
        expected: FilterKind,
        found: FilterKind,
    },
}

/// One member of a filter, fed to the hasher piece by piece so that no
/// buffer holding a password is ever built: the bytes `username \0 password`
/// for a pair, the 20 digest bytes for a password. (`str` and `[u8]`'s own
/// `Hash` would add length prefixes and terminators; these are the exact
/// bytes `docs/filters.md` documents.)
#[derive(Clone, Copy)]
pub(crate) enum Item<'a> {
    Pair {
        username: &'a str,
        password: &'a [u8],
    },
    Digest(&'a [u8; 20]),
}

impl Hash for Item<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match *self {
            Item::Pair { username, password } => {
                state.write(username.as_bytes());
                state.write(&[0]);
                state.write(password);
            }
            Item::Digest(digest) => state.write(digest),
        }
    }
}

/// The SHA-1 of `password`, as Have I Been Pwned publishes it.
///
/// Whole blocks are compressed straight from `password`; the padded final
/// block is the only copy made, on the stack, and it is zeroed before
/// returning. (The `sha1` crate's own hasher would keep that block in a
/// buffer it never zeroes.)
pub fn password_digest(password: &[u8]) -> [u8; 20] {
    let mut state = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut blocks = password.chunks_exact(64);
    for block in &mut blocks {
        sha1::compress(&mut state, slice::from_ref(GenericArray::from_slice(block)));
    }
    let rest = blocks.remainder();
    let mut tail = Zeroizing::new([0u8; 128]);
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    let tail_len = if rest.len() < 56 { 64 } else { 128 };
    let bit_len = (password.len() as u64).wrapping_mul(8);
    tail[tail_len - 8..tail_len].copy_from_slice(&bit_len.to_be_bytes());
    for block in tail[..tail_len].chunks_exact(64) {
        sha1::compress(&mut state, slice::from_ref(GenericArray::from_slice(block)));
    }
    let mut digest = [0u8; 20];
    for (out, word) in digest.chunks_exact_mut(4).zip(state) {
        out.copy_from_slice(&word.to_be_bytes());
    }
    state.zeroize();
    digest
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter_build::FilterBuilder;
    use crate::username::{Normalizer, UsernameNormalization};
    use sha1::Digest as _;

    #[test]
    fn password_digest_is_sha1() {
        // Have I Been Pwned's hash of "password".
        let digest = password_digest(b"password");
        let hex: String = digest.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(hex, "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8");
        // Every length around the padding boundaries.
        let long: Vec<u8> = (0..=255u8).collect();
        for len in 0..=200 {
            let input = &long[..len];
            let expected: [u8; 20] = sha1::Sha1::digest(input).into();
            assert_eq!(password_digest(input), expected, "length {len}");
        }
    }

    #[test]
    fn a_filter_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Filter>();
    }

    #[test]
    fn lookups_do_not_allocate() {
        let mut builder =
            FilterBuilder::new(FilterKind::Pairs, Normalizer::default(), 1000, 1e-5).unwrap();
        builder.insert_pair("alice@example.com", b"hunter2");
        let pairs = builder.finish(vec![]);
        let none = Normalizer::from(UsernameNormalization::None);
        let mut builder = FilterBuilder::new(FilterKind::Passwords, none, 1000, 1e-5).unwrap();
        builder.insert_password(b"hunter2");
        let passwords = builder.finish(vec![]);
        let long = vec![b'x'; 1000];
        let allocations = counting::allocations_during(|| {
            assert!(pairs.contains_pair("alice@example.com", b"hunter2"));
            assert!(!pairs.contains_pair("alice@example.com", &long));
            assert!(passwords.contains_password(b"hunter2"));
            assert!(!passwords.contains_password(&long));
            for kind in [UsernameNormalization::Email, UsernameNormalization::Auto] {
                let username = Normalizer::from(kind).normalize("bob@example.com");
                assert!(!pairs.contains_pair(&username, b"hunter2"));
            }
        });
        assert_eq!(allocations, 0);
    }

    /// Counts this thread's heap allocations, for the test above. (A global
    /// allocator is process-wide; the count is per thread so that tests
    /// running in parallel do not disturb each other.)
    mod counting {
        use std::alloc::{GlobalAlloc, Layout, System};
        use std::cell::Cell;

        struct Counting;

        thread_local! {
            static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
        }

        // SAFETY: forwards every call to the system allocator unchanged.
        unsafe impl GlobalAlloc for Counting {
            unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
                ALLOCATIONS.with(|n| n.set(n.get() + 1));
                System.alloc(layout)
            }

            unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
                System.dealloc(ptr, layout)
            }
        }

        #[global_allocator]
        static GLOBAL: Counting = Counting;

        pub fn allocations_during(f: impl FnOnce()) -> u64 {
            let before = ALLOCATIONS.with(Cell::get);
            f();
            ALLOCATIONS.with(Cell::get) - before
        }
    }

    #[test]
    fn pair_item_hashes_the_documented_bytes() {
        use bloomfilter::reexports::siphasher::sip::SipHasher13;
        let key = [7u8; 16];
        let mut piecewise = SipHasher13::new_with_key(&key);
        Item::Pair {
            username: "alice@example.com",
            password: b"hunter2",
        }
        .hash(&mut piecewise);
        let mut whole = SipHasher13::new_with_key(&key);
        whole.write(b"alice@example.com\0hunter2");
        assert_eq!(piecewise.finish(), whole.finish());
    }
}
