//! Text encodings of breach corpora: dumps of Chinese shops come in GBK, and
//! Windows tools write UTF-16. Lines are split and parsed as UTF-8, so such
//! an input is decoded first, as a stream (`encoding_rs`), into buffers that
//! are zeroed when dropped: they hold passwords.
//!
//! UTF-8 input is not decoded at all: its bytes pass through as they are, so
//! that a password that is not valid UTF-8 is still the password it was, and
//! the common case costs nothing.

use std::fmt;
use std::io::{self, Read};
use std::ops::Range;

use encoding_rs::{CoderResult, Decoder, GBK, UTF_16BE, UTF_16LE};
use zeroize::Zeroizing;

/// The encoding `build-filter` reads its inputs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Encoding {
    /// UTF-16 when the input starts with a UTF-16 byte-order mark; UTF-8
    /// (bytes as they are) otherwise.
    #[default]
    Auto,
    #[value(name = "utf-8", alias = "utf8")]
    Utf8,
    /// GBK (decoded as GB 18030, its superset); a UTF-16 byte-order mark
    /// still wins.
    #[value(alias = "gb18030", alias = "gb2312")]
    Gbk,
    #[value(name = "utf-16le", alias = "utf16le")]
    Utf16le,
    #[value(name = "utf-16be", alias = "utf16be")]
    Utf16be,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Utf8 => "utf-8",
            Self::Gbk => "gbk",
            Self::Utf16le => "utf-16le",
            Self::Utf16be => "utf-16be",
        }
    }

    /// `source` as UTF-8 (or as the bytes it is, for UTF-8).
    pub fn decode(self, source: Box<dyn Read>) -> io::Result<Box<dyn Read>> {
        // Each decoder sniffs a byte-order mark, which overrides the
        // encoding it was made for, and removes it.
        let decoder = match self {
            Self::Utf8 => return Ok(source),
            Self::Auto => return sniff(source),
            Self::Gbk => GBK.new_decoder(),
            Self::Utf16le => UTF_16LE.new_decoder(),
            Self::Utf16be => UTF_16BE.new_decoder(),
        };
        Ok(Box::new(Decoded::new(source, decoder)))
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `auto`: decodes UTF-16 if the first two bytes are its byte-order mark.
fn sniff(mut source: Box<dyn Read>) -> io::Result<Box<dyn Read>> {
    let mut head = [0u8; 2];
    let mut len = 0;
    while len < head.len() {
        match source.read(&mut head[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let utf16 = matches!(head, [0xFF, 0xFE] | [0xFE, 0xFF]) && len == 2;
    let whole: Box<dyn Read> = Box::new(io::Cursor::new(head).take(len as u64).chain(source));
    Ok(match utf16 {
        // The mark says which UTF-16; the decoder reads and removes it.
        true => Box::new(Decoded::new(whole, UTF_16LE.new_decoder())),
        false => whole,
    })
}

/// How much raw input is decoded at a time.
const RAW_CHUNK: usize = 64 << 10;

/// A reader of UTF-8 decoded from `source`. Malformed sequences become
/// U+FFFD, as a browser would show them.
struct Decoded {
    source: Box<dyn Read>,
    decoder: Decoder,
    raw: Zeroizing<Vec<u8>>,
    pending: Range<usize>,
    /// Decoded text not yet read: `read_to_end` and friends may ask for
    /// fewer bytes than a character needs.
    out: Zeroizing<Vec<u8>>,
    ready: Range<usize>,
    eof: bool,
    done: bool,
}

impl Decoded {
    fn new(source: Box<dyn Read>, decoder: Decoder) -> Self {
        Self {
            source,
            decoder,
            raw: Zeroizing::new(vec![0; RAW_CHUNK]),
            pending: 0..0,
            out: Zeroizing::new(vec![0; RAW_CHUNK * 2]),
            ready: 0..0,
            eof: false,
            done: false,
        }
    }

    /// Decodes more into `out`; false at the end of the input.
    fn decode_more(&mut self) -> io::Result<bool> {
        while !self.done {
            if self.pending.is_empty() && !self.eof {
                match self.source.read(&mut self.raw) {
                    Ok(0) => self.eof = true,
                    Ok(n) => self.pending = 0..n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
            let input = &self.raw[self.pending.clone()];
            let (result, read, written, _) =
                self.decoder.decode_to_utf8(input, &mut self.out, self.eof);
            self.pending.start += read;
            self.done = self.eof && result == CoderResult::InputEmpty;
            if written > 0 {
                self.ready = 0..written;
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl Read for Decoded {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.ready.is_empty() && !self.decode_more()? {
            return Ok(0);
        }
        let n = buf.len().min(self.ready.len());
        buf[..n].copy_from_slice(&self.out[self.ready.start..self.ready.start + n]);
        self.ready.start += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(encoding: Encoding, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let source: Box<dyn Read> = Box::new(io::Cursor::new(bytes.to_vec()));
        encoding
            .decode(source)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn encodings_decode_to_utf8() {
        let text = "张三@example.cn----密码123\n";
        let (gbk, _, _) = GBK.encode(text);
        let utf16le: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        let utf16be: Vec<u8> = [0xFE, 0xFF]
            .into_iter()
            .chain(text.encode_utf16().flat_map(u16::to_be_bytes))
            .collect();
        let bare_le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let cases: [(Encoding, &[u8]); 7] = [
            (Encoding::Gbk, &gbk),
            (Encoding::Auto, &utf16le),
            (Encoding::Auto, &utf16be),
            (Encoding::Gbk, &utf16le),
            (Encoding::Utf16le, &bare_le),
            (Encoding::Auto, text.as_bytes()),
            (Encoding::Utf8, text.as_bytes()),
        ];
        for (encoding, bytes) in cases {
            assert_eq!(decoded(encoding, bytes), text.as_bytes(), "{encoding}");
        }
        // Not UTF-8, and not told otherwise: the bytes as they are.
        assert_eq!(decoded(Encoding::Auto, &gbk), &gbk[..]);
        assert_eq!(decoded(Encoding::Auto, b"a"), b"a");
        assert_eq!(decoded(Encoding::Auto, b""), b"");
    }

    #[test]
    fn long_inputs_decode_across_chunks() {
        let text: String = (0..20_000)
            .map(|i| format!("用户{i}----密码{i}\n"))
            .collect();
        let (gbk, _, _) = GBK.encode(&text);
        assert!(gbk.len() > 3 * RAW_CHUNK);
        assert_eq!(decoded(Encoding::Gbk, &gbk), text.as_bytes());
    }
}
