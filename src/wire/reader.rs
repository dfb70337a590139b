//! A bounded cursor over untrusted bytes: every read is checked, every count
//! is weighed against the bytes left before anything is allocated for it.

use std::fmt;

/// Why bytes could not be read as the message they claim to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    pub what: &'static str,
    pub detail: String,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed {}: {}", self.what, self.detail)
    }
}

impl std::error::Error for WireError {}

/// Reads big-endian Kafka primitives from a byte slice.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// `what` names the message being read, for error messages.
    pub fn new(buf: &'a [u8], what: &'static str) -> Reader<'a> {
        Reader { buf, pos: 0, what }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn error(&self, detail: impl Into<String>) -> WireError {
        WireError {
            what: self.what,
            detail: detail.into(),
        }
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.remaining() {
            return Err(self.error(format!(
                "needs {n} bytes at offset {}, only {} left",
                self.pos,
                self.remaining()
            )));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    pub fn i8(&mut self) -> Result<i8, WireError> {
        Ok(i8::from_be_bytes(self.array()?))
    }

    pub fn i16(&mut self) -> Result<i16, WireError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    pub fn i32(&mut self) -> Result<i32, WireError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub fn i64(&mut self) -> Result<i64, WireError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    pub fn bool(&mut self) -> Result<bool, WireError> {
        Ok(self.i8()? != 0)
    }

    pub fn uuid(&mut self) -> Result<[u8; 16], WireError> {
        self.array()
    }

    pub fn unsigned_varint(&mut self) -> Result<u32, WireError> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let b = self.array::<1>()?[0];
            value |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.error("unsigned varint longer than 5 bytes"))
    }

    fn utf8(&self, raw: &'a [u8]) -> Result<&'a str, WireError> {
        std::str::from_utf8(raw).map_err(|_| self.error("string is not UTF-8"))
    }

    /// A nullable string: `int16` length (-1 = null), or in flexible
    /// versions an unsigned varint length + 1 (0 = null).
    pub fn nullable_string(&mut self, flexible: bool) -> Result<Option<&'a str>, WireError> {
        let len = if flexible {
            match self.unsigned_varint()? {
                0 => return Ok(None),
                n => (n - 1) as usize,
            }
        } else {
            match self.i16()? {
                -1 => return Ok(None),
                n if n < 0 => return Err(self.error(format!("string length {n} is negative"))),
                n => n as usize,
            }
        };
        let raw = self.bytes(len)?;
        self.utf8(raw).map(Some)
    }

    pub fn string(&mut self, flexible: bool) -> Result<&'a str, WireError> {
        self.nullable_string(flexible)?
            .ok_or_else(|| self.error("null where a string is required"))
    }

    /// An array's element count (`None` = null array), refused when the
    /// bytes left could not hold that many elements of at least `min_size`
    /// bytes each.
    pub fn array_len(
        &mut self,
        flexible: bool,
        min_size: usize,
    ) -> Result<Option<usize>, WireError> {
        let n = if flexible {
            match self.unsigned_varint()? {
                0 => return Ok(None),
                n => (n - 1) as usize,
            }
        } else {
            match self.i32()? {
                -1 => return Ok(None),
                n if n < 0 => return Err(self.error(format!("array length {n} is negative"))),
                n => n as usize,
            }
        };
        let needed = n.saturating_mul(min_size.max(1));
        if needed > self.remaining() {
            return Err(self.error(format!(
                "array claims {n} elements but only {} bytes are left",
                self.remaining()
            )));
        }
        Ok(Some(n))
    }

    /// Skips a tagged-field section (flexible versions only).
    pub fn skip_tagged_fields(&mut self) -> Result<(), WireError> {
        let count = self.unsigned_varint()?;
        for _ in 0..count {
            self.unsigned_varint()?;
            let size = self.unsigned_varint()? as usize;
            self.bytes(size)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_array_count_is_refused_before_allocation() {
        let bytes = [0x7f, 0xff, 0xff, 0xff, 0, 0];
        let mut r = Reader::new(&bytes, "test");
        let e = r.array_len(false, 2).unwrap_err();
        assert_eq!(
            e.to_string(),
            "malformed test: array claims 2147483647 elements but only 2 bytes are left"
        );
    }

    #[test]
    fn compact_strings_and_varints() {
        // compact string "ab" (len+1 = 3), then null compact string.
        let bytes = [3, b'a', b'b', 0];
        let mut r = Reader::new(&bytes, "test");
        assert_eq!(r.nullable_string(true).unwrap(), Some("ab"));
        assert_eq!(r.nullable_string(true).unwrap(), None);
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01], "test");
        assert!(r.unsigned_varint().is_err());
    }

    #[test]
    fn short_reads_fail_cleanly() {
        let mut r = Reader::new(&[0, 5, b'a'], "test");
        assert!(r.string(false).is_err());
        let mut r = Reader::new(&[0], "test");
        assert!(r.i32().is_err());
    }
}
