//! A bounds check of a Parquet footer's schema, run before the parquet crate decodes it.
//!
//! Why: the parquet crate (59.3 and 60.1, the newest release when this was written) reserves
//! `Vec::with_capacity(num_children)` for every group element of the footer's schema before
//! it checks that that many elements follow (`schema_from_array_helper`). AFL++ found a
//! 1,380-byte file that asks for 6.9 GB that way (kept as
//! `fuzz/regressions/parquet_table/afl-schema-num-children-6.9GB-reserve.parquet`); a child
//! count can claim up to 2^31 elements, 17 GB. Where the allocator honours the request
//! lazily the read then fails cleanly, but in a process with a memory limit (a container, an
//! `ulimit -v`, a fuzzer) it aborts the process, which no `Result` or `catch_unwind` can
//! turn into an error. A Parquet file is untrusted input, so before the parquet crate sees a
//! footer, mmnet walks its Thrift compact encoding (reading nothing but the footer bytes,
//! allocating one entry per schema element those bytes actually hold, nesting depth bounded)
//! and refuses a schema element whose child count is negative or larger than the number of
//! elements after it: the same bound the upstream fix (apache/arrow-rs#9884) applies.
//!
//! Everything else about the footer is left to the parquet crate: a file this check cannot
//! make sense of (no `PAR1` magic, an encrypted footer, a length past the file) passes here
//! and gets the parquet crate's own error.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::{Result, TableError};

/// Nesting depth beyond which a footer is refused (Parquet's own structures nest a few
/// levels; the bound keeps a hostile footer from recursing without end).
const MAX_DEPTH: usize = 64;

/// Checks the schema of the Parquet footer of the file at `path` (see the module doc).
pub fn check(path: &Path) -> Result<()> {
    let mut file = File::open(path).map_err(TableError::io(path))?;
    let len = file.metadata().map_err(TableError::io(path))?.len();
    if len < 12 {
        return Ok(());
    }
    let mut tail = [0u8; 8];
    file.seek(SeekFrom::End(-8))
        .and_then(|_| file.read_exact(&mut tail))
        .map_err(TableError::io(path))?;
    if &tail[4..] != b"PAR1" {
        return Ok(());
    }
    let footer_len = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if footer_len + 8 > len {
        return Ok(());
    }
    let mut footer = vec![0u8; footer_len as usize];
    file.seek(SeekFrom::End(-8 - footer_len as i64))
        .and_then(|_| file.read_exact(&mut footer))
        .map_err(TableError::io(path))?;
    check_footer(&footer).map_err(|reason| {
        TableError::malformed(path, format!("malformed Parquet footer: {reason}"))
    })
}

/// Checks the Thrift-encoded `FileMetaData` of a footer; the error says which schema element
/// is wrong. Encodings it cannot follow are left to the parquet crate (`Ok`).
pub fn check_footer(footer: &[u8]) -> std::result::Result<(), String> {
    let mut r = Compact {
        buf: footer,
        pos: 0,
    };
    match schema_children(&mut r) {
        Ok(Some(elements)) => check_children(&elements),
        // No schema list, or bytes this walk cannot follow: the parquet crate will say what
        // is wrong with them; this check only exists to stop one allocation.
        Ok(None) | Err(_) => Ok(()),
    }
}

/// One schema element: its name (for the error) and `num_children`.
struct Element {
    name: String,
    num_children: Option<i32>,
}

fn check_children(elements: &[Element]) -> std::result::Result<(), String> {
    for (i, e) in elements.iter().enumerate() {
        let Some(n) = e.num_children else { continue };
        let after = elements.len() - i - 1;
        if n < 0 || n as usize > after {
            return Err(format!(
                "schema element {i} (`{}`) claims {n} children, but {after} schema elements \
                 follow it",
                e.name
            ));
        }
    }
    Ok(())
}

/// The schema list (field 2 of `FileMetaData`), or `None` when the struct has none.
fn schema_children(r: &mut Compact<'_>) -> std::result::Result<Option<Vec<Element>>, String> {
    let mut last = 0i16;
    while let Some((id, ty)) = r.field_header(&mut last)? {
        if id == 2 && ty == LIST {
            let (size, elem) = r.collection_header()?;
            if elem != STRUCT {
                return Ok(None);
            }
            let mut out = Vec::with_capacity(size);
            for _ in 0..size {
                out.push(schema_element(r)?);
            }
            return Ok(Some(out));
        }
        r.skip(ty, false, 0)?;
    }
    Ok(None)
}

/// One `SchemaElement` struct: field 4 is the name, field 5 `num_children`.
fn schema_element(r: &mut Compact<'_>) -> std::result::Result<Element, String> {
    let mut e = Element {
        name: String::new(),
        num_children: None,
    };
    let mut last = 0i16;
    while let Some((id, ty)) = r.field_header(&mut last)? {
        match (id, ty) {
            (4, BINARY) => {
                let b = r.binary()?;
                e.name = String::from_utf8_lossy(&b[..b.len().min(64)]).into_owned();
            }
            (5, I32) => e.num_children = Some(r.zigzag()? as i32),
            _ => r.skip(ty, false, 1)?,
        }
    }
    Ok(e)
}

const BOOL_TRUE: u8 = 1;
const BOOL_FALSE: u8 = 2;
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

/// A reader of the Thrift compact protocol over a byte slice: every length it reads is
/// checked against the bytes left, and nothing is allocated from one.
struct Compact<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Compact<'a> {
    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn byte(&mut self) -> std::result::Result<u8, String> {
        let b = *self.buf.get(self.pos).ok_or("footer ends inside a value")?;
        self.pos += 1;
        Ok(b)
    }

    fn advance(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        if n > self.left() {
            return Err(format!("a value of {n} bytes, {} left", self.left()));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// A ULEB128 varint read the way the parquet crate reads it (any length, bits past the
    /// 64th wrapping around): the value checked must be the value it will see.
    fn varint(&mut self) -> std::result::Result<u64, String> {
        let mut v = 0u64;
        let mut shift = 0u32;
        loop {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f).wrapping_shl(shift);
            if b & 0x80 == 0 {
                return Ok(v);
            }
            shift = shift.wrapping_add(7);
        }
    }

    fn zigzag(&mut self) -> std::result::Result<i64, String> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    fn binary(&mut self) -> std::result::Result<&'a [u8], String> {
        let n = usize::try_from(self.varint()?).map_err(|_| "binary length overflows")?;
        self.advance(n)
    }

    /// The next field's (id, type), or `None` at the struct's end.
    fn field_header(&mut self, last: &mut i16) -> std::result::Result<Option<(i16, u8)>, String> {
        let b = self.byte()?;
        if b == 0 {
            return Ok(None);
        }
        let delta = b >> 4;
        let id = if delta == 0 {
            self.zigzag()? as i16
        } else {
            last.wrapping_add(i16::from(delta))
        };
        *last = id;
        Ok(Some((id, b & 0x0f)))
    }

    /// A list or set header: (size, element type). Every element takes at least one byte,
    /// so a size larger than the bytes left is refused before anything is reserved for it.
    fn collection_header(&mut self) -> std::result::Result<(usize, u8), String> {
        let h = self.byte()?;
        let size = match h >> 4 {
            15 => usize::try_from(self.varint()?).map_err(|_| "list size overflows")?,
            n => usize::from(n),
        };
        if size > self.left() {
            return Err(format!(
                "a list of {size} elements in {} bytes",
                self.left()
            ));
        }
        Ok((size, h & 0x0f))
    }

    /// Skips one value of type `ty` (a boolean has a byte of its own only inside a
    /// collection; in a field it is the field header's type).
    fn skip(
        &mut self,
        ty: u8,
        in_collection: bool,
        depth: usize,
    ) -> std::result::Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("nested deeper than 64 levels".into());
        }
        match ty {
            BOOL_TRUE | BOOL_FALSE if !in_collection => {}
            BOOL_TRUE | BOOL_FALSE | BYTE => {
                self.byte()?;
            }
            I16 | I32 | I64 => {
                self.varint()?;
            }
            DOUBLE => {
                self.advance(8)?;
            }
            BINARY => {
                self.binary()?;
            }
            UUID => {
                self.advance(16)?;
            }
            LIST | SET => {
                let (size, elem) = self.collection_header()?;
                for _ in 0..size {
                    self.skip(elem, true, depth + 1)?;
                }
            }
            MAP => {
                let size = usize::try_from(self.varint()?).map_err(|_| "map size overflows")?;
                if size > 0 {
                    if size > self.left() {
                        return Err(format!("a map of {size} entries in {} bytes", self.left()));
                    }
                    let kv = self.byte()?;
                    for _ in 0..size {
                        self.skip(kv >> 4, true, depth + 1)?;
                        self.skip(kv & 0x0f, true, depth + 1)?;
                    }
                }
            }
            STRUCT => {
                let mut last = 0i16;
                while let Some((_, t)) = self.field_header(&mut last)? {
                    self.skip(t, false, depth + 1)?;
                }
            }
            other => return Err(format!("unknown Thrift type {other}")),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `FileMetaData` holding only field 1 (version) and the schema list, in compact
    /// encoding: each element `(name, num_children)`.
    fn footer(elements: &[(&str, Option<i32>)]) -> Vec<u8> {
        let zz = |v: i64| ((v << 1) ^ (v >> 63)) as u64;
        let varint = |out: &mut Vec<u8>, mut v: u64| loop {
            if v < 0x80 {
                out.push(v as u8);
                break;
            }
            out.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        };
        let mut out = vec![0x15]; // field 1, i32
        varint(&mut out, zz(2));
        out.push(0x19); // field 2 (delta 1), list
        if elements.len() < 15 {
            out.push(((elements.len() as u8) << 4) | STRUCT);
        } else {
            out.push(0xf0 | STRUCT);
            varint(&mut out, elements.len() as u64);
        }
        for (name, n) in elements {
            out.push(0x48); // field 4, binary
            varint(&mut out, name.len() as u64);
            out.extend_from_slice(name.as_bytes());
            if let Some(n) = n {
                out.push(0x15); // field 5 (delta 1), i32
                varint(&mut out, zz(i64::from(*n)));
            }
            out.push(0);
        }
        out.push(0);
        out
    }

    #[test]
    fn a_consistent_schema_passes() {
        let f = footer(&[("schema", Some(2)), ("a", None), ("b", Some(0))]);
        assert_eq!(check_footer(&f), Ok(()));
    }

    #[test]
    fn a_child_count_past_the_schema_is_refused_naming_the_element() {
        let f = footer(&[("schema", Some(1)), ("g", Some(1_000_000_000))]);
        let e = check_footer(&f).unwrap_err();
        assert!(e.contains("schema element 1 (`g`)"), "{e}");
        assert!(e.contains("1000000000 children"), "{e}");
    }

    #[test]
    fn a_negative_child_count_is_refused() {
        let e = check_footer(&footer(&[("schema", Some(-3))])).unwrap_err();
        assert!(e.contains("-3 children"), "{e}");
    }

    #[test]
    fn a_list_longer_than_its_bytes_is_left_to_parquet() {
        // 2^31 elements claimed in a few bytes: refused by the walk before any reservation,
        // and passed on (the parquet crate bounds list sizes by the bytes left itself).
        let mut f = vec![0x29, 0xfc]; // field 2, a list of structs, size in a varint
        f.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x07]);
        assert_eq!(check_footer(&f), Ok(()));
    }

    #[test]
    fn deep_nesting_and_garbage_do_not_panic() {
        let deep: Vec<u8> = std::iter::once(0x1c).chain([0x1c; 10_000]).collect();
        assert_eq!(check_footer(&deep), Ok(()));
        for seed in 0..2_000u32 {
            let bytes: Vec<u8> = (0..64u32)
                .map(|i| (seed.wrapping_mul(2_654_435_761).wrapping_add(i * 40_503) >> 13) as u8)
                .collect();
            let _ = check_footer(&bytes);
        }
    }
}
