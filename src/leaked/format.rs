//! The filter file: a versioned header, then the Bloom filter's bytes.
//!
//! ```text
//! offset  size  field (integers little-endian)
//!      0     8  magic "CGFILTER"
//!      8     2  format version (1 or 2, below)
//!     10     1  kind: 1 pairs, 2 passwords
//!     11     1  username normalisation: 0 none, 1 email, 2 auto, 3 phone, 4 id
//!     12     4  header length H, through the header checksum
//!     16     8  items inserted
//!     24     8  capacity: the items the filter was sized for
//!     32     8  target false-positive rate (f64)
//!     40     8  build time, unix seconds
//!     48     8  bits in the bitmap
//!     56     4  hash functions
//!     60     8  body length B
//!     68     4  body checksum: CRC-32 of the B body bytes
//!     72     2  number of source names, then each: u16 length, UTF-8 bytes
//!    H-6     2  version 2 only: the default region, two ASCII letters
//!               (`CN`), or two zero bytes for none
//!    H-4     4  header checksum: CRC-32 of bytes 0..H-4
//!      H     B  body: the bloomfilter 3 serialisation (`Bloom::as_slice`):
//!               version 1 (1 byte), bitmap bytes (u64), hash functions
//!               (u32), two SipHash-1-3 keys (32 bytes), the bitmap
//! ```
//!
//! Version 2 is version 1 with the region before the header checksum. A
//! filter whose rule needs no region (`none`, `email`) is written as version
//! 1, byte for byte what older credgates write and read, so a rolling
//! upgrade can share such files; `auto`, `phone` and `id` filters are
//! version 2, which an older credgate refuses by its version number rather
//! than misreading. Both versions load.
//!
//! CRC-32 detects every single flipped bit and every burst up to 32 bits,
//! and `crc32fast` checks a gigabyte in well under a second. It guards
//! against disks and truncated copies, not against an attacker who can write
//! the file (who could just as well write a valid filter).
//!
//! Loading reads the body in chunks straight into the `Vec` that becomes the
//! bitmap (`Bloom::from_bytes` takes ownership of it; `from_slice` would
//! copy), updating the checksum as each chunk arrives: one copy of the bits
//! in memory, and the file is read once.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use bloomfilter::Bloom;

use super::{Filter, FilterError, FilterKind};
use crate::username::{Normalizer, Region, UsernameNormalization};

pub const MAGIC: [u8; 8] = *b"CGFILTER";
/// The newest format version; every version from 1 up to it loads.
pub const FORMAT_VERSION: u16 = 2;
/// The header up to and including the source count.
const FIXED_LEN: usize = 74;
/// Way above any real header; bounds what a corrupt length field can make
/// us read.
const MAX_HEADER_LEN: usize = 1 << 20;
/// `bloomfilter`'s own header in the body: version, length, k, seed.
pub const BLOOM_HEADER_LEN: u64 = 1 + 8 + 4 + 32;
/// The body is read and checksummed in pieces of this size.
const CHUNK: usize = 8 << 20;

/// What a filter file says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub kind: FilterKind,
    /// The username rule (and default region) the pairs were built with.
    pub normalization: Normalizer,
    /// Distinct items inserted (an item whose bits were all set already, a
    /// duplicate or a false positive, is not counted).
    pub items: u64,
    /// The items the filter was sized for; beyond it the false-positive rate
    /// climbs above the target.
    pub capacity: u64,
    /// The target false-positive rate at `capacity` items.
    pub fp_rate: f64,
    /// Unix seconds.
    pub built_at: u64,
    /// The inputs' file names (no directories), `-` for stdin.
    pub sources: Vec<String>,
    pub bits: u64,
    pub hashes: u32,
    pub body_len: u64,
    pub body_checksum: u32,
}

// === impl Header ===

impl Header {
    /// The false-positive rate for the items actually inserted:
    /// `(1 - e^(-k·n/m))^k`.
    pub fn estimated_fp_rate(&self) -> f64 {
        if self.bits == 0 {
            return 1.0;
        }
        let k = f64::from(self.hashes);
        let filled = 1.0 - (-k * self.items as f64 / self.bits as f64).exp();
        filled.powf(k)
    }

    /// The size of the whole file.
    pub fn file_len(&self) -> u64 {
        self.encoded_len() as u64 + self.body_len
    }

    /// Reads and checks only the header: enough for `filter-info` to show a
    /// file whose body turns out to be corrupt.
    pub fn read_file(path: &Path) -> Result<Header, FilterError> {
        read_header(path, &mut open(path)?)
    }

    /// The format version this header is written in: 1 unless the rule
    /// needs version 2's region field.
    pub fn version(&self) -> u16 {
        match self.normalization.kind() {
            UsernameNormalization::None | UsernameNormalization::Email => 1,
            UsernameNormalization::Auto
            | UsernameNormalization::Phone
            | UsernameNormalization::Id => 2,
        }
    }

    fn encoded_len(&self) -> usize {
        let names: usize = self.sources.iter().map(|s| 2 + s.len()).sum();
        FIXED_LEN + names + region_len(self.version()) + 4
    }

    fn encode(&self) -> Vec<u8> {
        let len = self.encoded_len();
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&self.version().to_le_bytes());
        out.push(kind_code(self.kind));
        out.push(normalization_code(self.normalization.kind()));
        out.extend_from_slice(&(len as u32).to_le_bytes());
        for n in [self.items, self.capacity, self.fp_rate.to_bits()] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        out.extend_from_slice(&self.built_at.to_le_bytes());
        out.extend_from_slice(&self.bits.to_le_bytes());
        out.extend_from_slice(&self.hashes.to_le_bytes());
        out.extend_from_slice(&self.body_len.to_le_bytes());
        out.extend_from_slice(&self.body_checksum.to_le_bytes());
        out.extend_from_slice(&(self.sources.len() as u16).to_le_bytes());
        for name in &self.sources {
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
        }
        if self.version() >= 2 {
            out.extend_from_slice(&self.normalization.region().map_or([0; 2], Region::code));
        }
        let checksum = crc32fast::hash(&out);
        out.extend_from_slice(&checksum.to_le_bytes());
        debug_assert_eq!(out.len(), len);
        out
    }

    /// Parses a header of `version` whose length and checksum were already
    /// verified.
    fn decode(path: &Path, version: u16, bytes: &[u8]) -> Result<Header, FilterError> {
        let malformed = |what| FilterError::Malformed {
            path: path.to_owned(),
            what,
        };
        let (fields, region) = bytes[10..bytes.len() - 4]
            .split_at_checked(bytes.len() - 14 - region_len(version))
            .ok_or_else(|| malformed("header length out of range"))?;
        let mut fields = Fields(fields);
        let kind = kind_from_code(fields.u8()).ok_or_else(|| malformed("unknown filter kind"))?;
        let normalization = normalization_from_code(fields.u8())
            .ok_or_else(|| malformed("unknown username normalisation"))?;
        let region = match region {
            [] | [0, 0] => None,
            &[a, b] => {
                Some(Region::from_code([a, b]).ok_or_else(|| malformed("unknown default region"))?)
            }
            _ => unreachable!("the region field is 0 or 2 bytes"),
        };
        let _header_len = fields.u32();
        let header = Header {
            kind,
            normalization: Normalizer::new(normalization, region),
            items: fields.u64(),
            capacity: fields.u64(),
            fp_rate: f64::from_bits(fields.u64()),
            built_at: fields.u64(),
            bits: fields.u64(),
            hashes: fields.u32(),
            body_len: fields.u64(),
            body_checksum: fields.u32(),
            sources: fields
                .names()
                .ok_or_else(|| malformed("bad source names"))?,
        };
        if !(header.fp_rate > 0.0 && header.fp_rate < 1.0) {
            return Err(malformed("target false-positive rate out of range"));
        }
        if header.body_len < BLOOM_HEADER_LEN + 1
            || header.bits != (header.body_len - BLOOM_HEADER_LEN) * 8
            || header.hashes == 0
        {
            return Err(malformed("bloom parameters do not fit the body length"));
        }
        Ok(header)
    }
}

impl std::fmt::Display for Header {
    /// The report `credgate filter-info` prints.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let size = self.file_len();
        let built = UNIX_EPOCH + Duration::from_secs(self.built_at);
        writeln!(f, "kind:            {}", self.kind)?;
        writeln!(f, "normalization:   {}", self.normalization)?;
        writeln!(f, "items:           {}", self.items)?;
        writeln!(f, "capacity:        {}", self.capacity)?;
        writeln!(f, "fp rate target:  {:.3e}", self.fp_rate)?;
        writeln!(f, "fp rate now:     {:.3e}", self.estimated_fp_rate())?;
        writeln!(
            f,
            "size:            {} ({size} bytes, {:.2} bytes/item)",
            bytesize::ByteSize::b(size).display().iec(),
            size as f64 / self.items.max(1) as f64
        )?;
        writeln!(
            f,
            "bloom:           {} bits, {} hash functions",
            self.bits, self.hashes
        )?;
        writeln!(
            f,
            "built:           {}",
            humantime::format_rfc3339_seconds(built)
        )?;
        writeln!(f, "sources:         {}", self.sources.join(", "))?;
        write!(f, "format version:  {}", self.version())
    }
}

/// Little-endian fields from a header, in order. Callers checked the length.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let (head, rest) = self.0.split_at(N);
        self.0 = rest;
        head.try_into().expect("split_at gave N bytes")
    }

    fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.take())
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }

    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }

    /// The counted source names, which must fill the rest exactly.
    fn names(&mut self) -> Option<Vec<String>> {
        let count = self.u16();
        let mut names = Vec::with_capacity(usize::from(count).min(self.0.len() / 2));
        for _ in 0..count {
            let len = usize::from(u16::from_le_bytes(self.0.get(..2)?.try_into().ok()?));
            let name = self.0.get(2..2 + len)?;
            names.push(String::from_utf8(name.to_vec()).ok()?);
            self.0 = &self.0[2 + len..];
        }
        self.0.is_empty().then_some(names)
    }
}

fn kind_code(kind: FilterKind) -> u8 {
    match kind {
        FilterKind::Pairs => 1,
        FilterKind::Passwords => 2,
    }
}

fn kind_from_code(code: u8) -> Option<FilterKind> {
    match code {
        1 => Some(FilterKind::Pairs),
        2 => Some(FilterKind::Passwords),
        _ => None,
    }
}

fn normalization_code(n: UsernameNormalization) -> u8 {
    match n {
        UsernameNormalization::None => 0,
        UsernameNormalization::Email => 1,
        UsernameNormalization::Auto => 2,
        UsernameNormalization::Phone => 3,
        UsernameNormalization::Id => 4,
    }
}

fn normalization_from_code(code: u8) -> Option<UsernameNormalization> {
    match code {
        0 => Some(UsernameNormalization::None),
        1 => Some(UsernameNormalization::Email),
        2 => Some(UsernameNormalization::Auto),
        3 => Some(UsernameNormalization::Phone),
        4 => Some(UsernameNormalization::Id),
        _ => None,
    }
}

/// The bytes of the region field in a header of `version`.
fn region_len(version: u16) -> usize {
    if version >= 2 {
        2
    } else {
        0
    }
}

// === loading ===

/// Loads a filter; with `expected`, refuses another kind before reading the
/// body.
pub(super) fn load(path: &Path, expected: Option<FilterKind>) -> Result<Filter, FilterError> {
    let mut file = open(path)?;
    let header = read_header(path, &mut file)?;
    if let Some(expected) = expected.filter(|&kind| kind != header.kind) {
        return Err(FilterError::WrongKind {
            path: path.to_owned(),
            expected,
            found: header.kind,
        });
    }
    check_file_len(path, &file, &header)?;
    let body = read_body(path, &mut file, &header)?;
    let bloom = Bloom::from_bytes(body).map_err(|_| FilterError::Malformed {
        path: path.to_owned(),
        what: "the body is not a bloom filter",
    })?;
    if bloom.len() != header.bits || bloom.number_of_hash_functions() != header.hashes {
        return Err(FilterError::Malformed {
            path: path.to_owned(),
            what: "bloom parameters differ between header and body",
        });
    }
    Ok(Filter { header, bloom })
}

/// Checks a filter file completely (everything [`Filter::load`] checks) in
/// constant memory, without building the filter.
pub fn verify(path: &Path) -> Result<Header, FilterError> {
    let mut file = open(path)?;
    let header = read_header(path, &mut file)?;
    check_file_len(path, &file, &header)?;
    let mut crc = crc32fast::Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    let mut left = header.body_len;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        read_exact(path, &mut file, &mut buf[..n])?;
        crc.update(&buf[..n]);
        left -= n as u64;
    }
    check_body(path, &header, crc.finalize())?;
    Ok(header)
}

fn open(path: &Path) -> Result<File, FilterError> {
    File::open(path).map_err(|source| read_error(path, source))
}

fn read_error(path: &Path, source: io::Error) -> FilterError {
    FilterError::Read {
        path: path.to_owned(),
        source,
    }
}

fn read_header(path: &Path, file: &mut File) -> Result<Header, FilterError> {
    let mut bytes = Vec::with_capacity(FIXED_LEN);
    (&mut *file)
        .take(FIXED_LEN as u64)
        .read_to_end(&mut bytes)
        .map_err(|source| read_error(path, source))?;
    if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
        return Err(FilterError::NotAFilter {
            path: path.to_owned(),
        });
    }
    let truncated = |found: usize, expected: usize| FilterError::Truncated {
        path: path.to_owned(),
        expected: expected as u64,
        found: found as u64,
    };
    if bytes.len() < FIXED_LEN {
        return Err(truncated(bytes.len(), FIXED_LEN));
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if !(1..=FORMAT_VERSION).contains(&version) {
        return Err(FilterError::UnsupportedVersion {
            path: path.to_owned(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let len = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")) as usize;
    if !(FIXED_LEN + region_len(version) + 4..=MAX_HEADER_LEN).contains(&len) {
        return Err(FilterError::Malformed {
            path: path.to_owned(),
            what: "header length out of range",
        });
    }
    (&mut *file)
        .take((len - FIXED_LEN) as u64)
        .read_to_end(&mut bytes)
        .map_err(|source| read_error(path, source))?;
    if bytes.len() < len {
        return Err(truncated(bytes.len(), len));
    }
    let stored = u32::from_le_bytes(bytes[len - 4..].try_into().expect("4 bytes"));
    let computed = crc32fast::hash(&bytes[..len - 4]);
    if stored != computed {
        return Err(FilterError::HeaderCorrupt {
            path: path.to_owned(),
            stored,
            computed,
        });
    }
    Header::decode(path, version, &bytes)
}

/// Refuses a file of the wrong size before allocating for its body.
fn check_file_len(path: &Path, file: &File, header: &Header) -> Result<(), FilterError> {
    let found = file
        .metadata()
        .map_err(|source| read_error(path, source))?
        .len();
    let expected = header.file_len();
    let path = path.to_owned();
    match found.cmp(&expected) {
        std::cmp::Ordering::Less => Err(FilterError::Truncated {
            path,
            expected,
            found,
        }),
        std::cmp::Ordering::Greater => Err(FilterError::TrailingBytes {
            path,
            expected,
            found,
        }),
        std::cmp::Ordering::Equal => Ok(()),
    }
}

/// Reads the body into the buffer that becomes the bitmap, checksumming each
/// chunk as it arrives.
fn read_body(path: &Path, file: &mut File, header: &Header) -> Result<Vec<u8>, FilterError> {
    let len = usize::try_from(header.body_len).map_err(|_| FilterError::Malformed {
        path: path.to_owned(),
        what: "body larger than this machine can address",
    })?;
    let mut body = vec![0u8; len];
    let mut crc = crc32fast::Hasher::new();
    for chunk in body.chunks_mut(CHUNK) {
        read_exact(path, file, chunk)?;
        crc.update(chunk);
    }
    check_body(path, header, crc.finalize())?;
    Ok(body)
}

fn read_exact(path: &Path, file: &mut File, buf: &mut [u8]) -> Result<(), FilterError> {
    file.read_exact(buf)
        .map_err(|source| read_error(path, source))
}

fn check_body(path: &Path, header: &Header, computed: u32) -> Result<(), FilterError> {
    if computed == header.body_checksum {
        return Ok(());
    }
    Err(FilterError::BodyCorrupt {
        path: path.to_owned(),
        stored: header.body_checksum,
        computed,
    })
}

// === writing ===

impl Filter {
    /// Assembles a filter from its parts; `header`'s body fields must
    /// describe `bloom`.
    pub(crate) fn from_parts(header: Header, bloom: Bloom<super::Item<'static>>) -> Filter {
        debug_assert_eq!(header.body_len, bloom.as_slice().len() as u64);
        Filter { header, bloom }
    }

    /// Writes the whole file to `out`; returns its length.
    pub fn write_to(&self, out: &mut impl Write) -> io::Result<u64> {
        out.write_all(&self.header.encode())?;
        out.write_all(self.bloom.as_slice())?;
        Ok(self.header.file_len())
    }

    /// Writes the file to `path` atomically: to a temporary file in the same
    /// directory, synced, then renamed over `path`, so a proxy reloading the
    /// filter never sees half a file. Returns the file's length.
    pub fn save(&self, path: &Path) -> Result<u64, FilterError> {
        let write_error = |source| FilterError::Write {
            path: path.to_owned(),
            source,
        };
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let mut temp = tempfile::Builder::new()
            .prefix(".credgate-filter-")
            .suffix(".tmp")
            .permissions(std::fs::Permissions::from_mode(0o644))
            .tempfile_in(dir)
            .map_err(write_error)?;
        let mut out = BufWriter::new(temp.as_file_mut());
        let len = self.write_to(&mut out).map_err(write_error)?;
        out.flush().map_err(write_error)?;
        drop(out);
        temp.as_file().sync_all().map_err(write_error)?;
        temp.persist(path).map_err(|e| write_error(e.error))?;
        Ok(len)
    }
}

#[cfg(test)]
mod tests;
