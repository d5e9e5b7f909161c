//! [`Text`]: a borrowed field of a log line that may not be valid UTF-8.
//!
//! Log lines are bytes. A user name typed at a login prompt can be anything, including invalid
//! UTF-8, so parsers never convert a line to `&str` up front (that would either reject the line or
//! need a copy). Fields stay bytes; invalid sequences are replaced by U+FFFD only when a field is
//! displayed or written as JSON.

use core::fmt;

/// A borrowed field of a log line: bytes that are usually, but not always, UTF-8.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Text<'a>(pub &'a [u8]);

impl<'a> Text<'a> {
    /// Wraps bytes.
    #[inline]
    pub const fn new(bytes: &'a [u8]) -> Self {
        Text(bytes)
    }

    /// The raw bytes.
    #[inline]
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// The field as `&str` when it is valid UTF-8.
    #[inline]
    pub fn to_str(&self) -> Option<&'a str> {
        core::str::from_utf8(self.0).ok()
    }

    /// True when the field holds no bytes.
    #[inline]
    pub const fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Length in bytes.
    #[inline]
    pub const fn len(&self) -> usize {
        self.0.len()
    }

    /// Runs of valid UTF-8, each followed by the invalid bytes after it (empty at the end).
    #[inline]
    pub fn utf8_chunks(&self) -> core::str::Utf8Chunks<'a> {
        self.0.utf8_chunks()
    }

    /// The bytes a hex encoding stands for (Linux audit writes a name it cannot quote as hex),
    /// decoded into `buf`; `None` when the field is not even-length hex or does not fit.
    pub fn hex_decoded<'b>(&self, buf: &'b mut [u8]) -> Option<Text<'b>> {
        let hex = self.0;
        if !hex.len().is_multiple_of(2) || hex.len() / 2 > buf.len() {
            return None;
        }
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'A'..=b'F' => Some(c - b'A' + 10),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        for (i, pair) in hex.chunks_exact(2).enumerate() {
            buf[i] = (digit(pair[0])? << 4) | digit(pair[1])?;
        }
        Some(Text(&buf[..hex.len() / 2]))
    }

    /// The field decoded from hex into `buf` when `hex` is set and it decodes, else the field
    /// itself.
    pub fn decoded_if<'b>(self, hex: bool, buf: &'b mut [u8]) -> Text<'b>
    where
        'a: 'b,
    {
        if hex {
            self.hex_decoded(buf).unwrap_or(self)
        } else {
            self
        }
    }

    /// An owned copy with invalid UTF-8 replaced by U+FFFD.
    #[cfg(feature = "alloc")]
    pub fn to_string_lossy(&self) -> alloc::string::String {
        alloc::string::String::from_utf8_lossy(self.0).into_owned()
    }
}

impl<'a> From<&'a str> for Text<'a> {
    fn from(s: &'a str) -> Self {
        Text(s.as_bytes())
    }
}

impl<'a> From<&'a [u8]> for Text<'a> {
    fn from(b: &'a [u8]) -> Self {
        Text(b)
    }
}

impl PartialEq<str> for Text<'_> {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<&str> for Text<'_> {
    fn eq(&self, other: &&str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.utf8_chunks() {
            f.write_str(chunk.valid())?;
            if !chunk.invalid().is_empty() {
                f.write_str("\u{FFFD}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for chunk in self.utf8_chunks() {
            for c in chunk.valid().chars() {
                fmt::Display::fmt(&c.escape_debug(), f)?;
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        f.write_str("\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_replaces_invalid_utf8() {
        let t = Text(b"ro\xffot");
        assert_eq!(format!("{t}"), "ro\u{FFFD}ot");
        assert_eq!(format!("{t:?}"), "\"ro\\xffot\"");
        assert_eq!(t.to_str(), None);
        assert_eq!(Text::from("root").to_str(), Some("root"));
    }
}
