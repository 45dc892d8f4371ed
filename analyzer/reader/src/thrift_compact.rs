//! Just enough of Thrift's compact protocol to walk a struct held in a
//! byte slice: field ids, i32 values, nested structs, and skipping the
//! rest. Hand-written because the ones at hand do not fit untrusted input:
//! parquet-rs keeps its Thrift reader private, and the `thrift` crate
//! allocates whatever length a string field declares (up to 4 GiB) before
//! reading it. Here every length is checked against the bytes that are
//! there, and nesting is bounded.

/// Damage found while walking: what and where.
#[derive(Debug, thiserror::Error)]
#[error("malformed Thrift at byte {at}: {what}")]
pub struct ThriftError {
    pub at: usize,
    pub what: &'static str,
}

const MAX_DEPTH: u8 = 32;

/// The error of a struct that runs past the bytes given.
pub const CUT_SHORT: &str = "cut short";

// Compact protocol element types.
const STOP: u8 = 0;
const TRUE: u8 = 1;
const FALSE: u8 = 2;
const BYTE: u8 = 3;
const I16: u8 = 4;
const I32: u8 = 5;
const I64: u8 = 6;
const DOUBLE: u8 = 7;
const BINARY: u8 = 8;
const LIST: u8 = 9;
const SET: u8 = 10;
const MAP: u8 = 11;
const STRUCT: u8 = 12;
const UUID: u8 = 13;

/// A struct being read, field by field.
pub struct Struct<'a> {
    buf: &'a [u8],
    pos: usize,
    last_id: i16,
    /// Type of the field whose header was read and value not yet.
    pending: Option<u8>,
    depth: u8,
}

impl<'a> Struct<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self::at(buf, 0, 0)
    }

    fn at(buf: &'a [u8], pos: usize, depth: u8) -> Self {
        Self {
            buf,
            pos,
            last_id: 0,
            pending: None,
            depth,
        }
    }

    /// Bytes read so far (after the last field: the struct's length).
    pub fn consumed(&self) -> usize {
        self.pos
    }

    /// The next field's id; `None` at the struct's end. A field whose
    /// value was not read is skipped first.
    pub fn next_field(&mut self) -> Result<Option<i16>, ThriftError> {
        if self.pending.is_some() {
            self.skip()?;
        }
        let head = self.byte()?;
        let kind = head & 0x0f;
        if kind == STOP {
            return Ok(None);
        }
        let delta = head >> 4;
        let id = if delta == 0 {
            zigzag(self.varint()?) as i16
        } else {
            self.last_id.wrapping_add(i16::from(delta))
        };
        self.last_id = id;
        self.pending = Some(kind);
        Ok(Some(id))
    }

    /// The current field's value as an i32.
    pub fn i32(&mut self) -> Result<i32, ThriftError> {
        match self.pending.take() {
            Some(I32) => {
                i32::try_from(zigzag(self.varint()?)).map_err(|_| self.err("i32 overflow"))
            }
            _ => Err(self.err("a field is not the i32 it should be")),
        }
    }

    /// The current field's value, a struct, to be read field by field;
    /// give it back with [`Struct::resume`].
    pub fn nested(&mut self) -> Result<Struct<'a>, ThriftError> {
        match self.pending.take() {
            Some(STRUCT) if self.depth < MAX_DEPTH => {
                Ok(Struct::at(self.buf, self.pos, self.depth + 1))
            }
            Some(STRUCT) => Err(self.err("nested too deep")),
            _ => Err(self.err("a field is not the struct it should be")),
        }
    }

    /// Continues after a nested struct that was read to its end.
    pub fn resume(&mut self, inner: Struct<'a>) {
        self.pos = inner.pos;
    }

    /// Skips the current field's value.
    pub fn skip(&mut self) -> Result<(), ThriftError> {
        match self.pending.take() {
            Some(kind) => self.skip_value(kind, self.depth),
            None => Ok(()),
        }
    }

    fn skip_value(&mut self, kind: u8, depth: u8) -> Result<(), ThriftError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nested too deep"));
        }
        match kind {
            TRUE | FALSE => Ok(()),
            BYTE => self.take(1),
            I16 | I32 | I64 => self.varint().map(drop),
            DOUBLE => self.take(8),
            UUID => self.take(16),
            BINARY => {
                let len = self.varint()?;
                let len = usize::try_from(len).map_err(|_| self.err("a length overflows"))?;
                self.take(len)
            }
            LIST | SET => {
                let head = self.byte()?;
                let elem = head & 0x0f;
                let size = match head >> 4 {
                    15 => self.varint()?,
                    n => u64::from(n),
                };
                self.skip_elements(size, elem, depth)
            }
            MAP => {
                let size = self.varint()?;
                if size == 0 {
                    return Ok(());
                }
                let kinds = self.byte()?;
                // Every entry takes two bytes at least: a huge size ends
                // here, not in a loop over nothing.
                if size > (self.buf.len() - self.pos) as u64 / 2 {
                    return Err(self.err("a map longer than the bytes left"));
                }
                for _ in 0..size {
                    self.skip_element(kinds >> 4, depth)?;
                    self.skip_element(kinds & 0x0f, depth)?;
                }
                Ok(())
            }
            STRUCT => {
                let mut inner = Struct::at(self.buf, self.pos, depth + 1);
                while inner.next_field()?.is_some() {
                    inner.skip()?;
                }
                self.pos = inner.pos;
                Ok(())
            }
            _ => Err(self.err("an unknown type")),
        }
    }

    /// A list's elements; every element takes at least one byte (a bool in
    /// a list is a byte), so a huge declared size ends at the buffer's end.
    fn skip_elements(&mut self, size: u64, elem: u8, depth: u8) -> Result<(), ThriftError> {
        if size > (self.buf.len() - self.pos) as u64 {
            return Err(self.err("a list longer than the bytes left"));
        }
        for _ in 0..size {
            self.skip_element(elem, depth)?;
        }
        Ok(())
    }

    /// One element of a list, set or map: a bool there is a byte (in a
    /// field it is the field's type), so every element moves forward.
    fn skip_element(&mut self, kind: u8, depth: u8) -> Result<(), ThriftError> {
        match kind {
            TRUE | FALSE => self.take(1),
            kind => self.skip_value(kind, depth + 1),
        }
    }

    fn byte(&mut self) -> Result<u8, ThriftError> {
        let b = *self.buf.get(self.pos).ok_or_else(|| self.err(CUT_SHORT))?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<(), ThriftError> {
        if n > self.buf.len() - self.pos {
            return Err(self.err(CUT_SHORT));
        }
        self.pos += n;
        Ok(())
    }

    fn varint(&mut self) -> Result<u64, ThriftError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.err("a varint longer than 10 bytes"))
    }

    fn err(&self, what: &'static str) -> ThriftError {
        ThriftError { at: self.pos, what }
    }
}

fn zigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `PageHeader` as parquet-rs writes it: type 0 (field 1), sizes 100
    /// and 40, crc skipped, data_page_header { num_values 7, encodings... }.
    const HEADER: &[u8] = &[
        0x15, 0x00, // 1: i32 0
        0x15, 0xc8, 0x01, // 2: i32 100
        0x15, 0x50, // 3: i32 40
        0x2c, // 5: struct
        0x15, 0x0e, // 1: i32 7
        0x15, 0x00, // 2: i32 0
        0x19, 0x25, 0x00, 0x06, // 3: list<i32> [0, 3] (skipped)
        0x18, 0x03, b'a', b'b', b'c', // 4: binary "abc" (skipped)
        0x00, // end of data_page_header
        0x00, // end of PageHeader
        0xff, // the page's first byte
    ];

    #[test]
    fn fields_values_and_skips() {
        let mut s = Struct::new(HEADER);
        let mut seen = Vec::new();
        while let Some(id) = s.next_field().unwrap() {
            match id {
                2 | 3 => seen.push((id, s.i32().unwrap())),
                5 => {
                    let mut inner = s.nested().unwrap();
                    while let Some(f) = inner.next_field().unwrap() {
                        if f == 1 {
                            seen.push((50 + f, inner.i32().unwrap()));
                        }
                    }
                    s.resume(inner);
                }
                _ => s.skip().unwrap(),
            }
        }
        assert_eq!(seen, [(2, 100), (3, 40), (51, 7)]);
        assert_eq!(s.consumed(), HEADER.len() - 1);
    }

    #[test]
    fn lengths_past_the_end_and_deep_nesting_are_errors() {
        // A binary field declaring 2^31 bytes, with 2 there.
        let huge = [0x18, 0x80, 0x80, 0x80, 0x80, 0x08, 1, 2];
        let mut s = Struct::new(&huge);
        assert_eq!(s.next_field().unwrap(), Some(1));
        assert!(s.skip().is_err());
        // A list declaring 2^40 elements.
        let long = [0x19, 0xf5, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20];
        let mut s = Struct::new(&long);
        s.next_field().unwrap();
        assert!(s.skip().is_err());
        // Structs nested 100 deep.
        let deep = vec![0x1c; 100];
        let mut s = Struct::new(&deep);
        s.next_field().unwrap();
        assert!(s.skip().is_err());
        // A map of 0x2e62 bool entries with no bytes for them (the fuzzer's
        // input declared 2^62: it looped over nothing).
        let bools = [0x1b, 0xe2, 0x5c, 0x11];
        let mut s = Struct::new(&bools);
        s.next_field().unwrap();
        assert!(s.skip().is_err());
        // Nothing at all.
        assert!(Struct::new(&[]).next_field().is_err());
    }
}
