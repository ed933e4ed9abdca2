//! Decoding header blocks (RFC 7541 sections 3, 4 and 6).
//!
//! Owns the peer-to-us dynamic table and the bounds on what a block can make us do:
//! table size updates are capped by what we advertised, and the decoded list is counted
//! as RFC 9113 section 6.5.2 does (name + value + 32 per field) against
//! MAX_HEADER_LIST_SIZE. Nothing decoded is stored beyond the dynamic table itself, so
//! a block that expands a large entry many times (an "HPACK bomb") costs CPU bounded by
//! its length and no memory. Never: validating field names or pseudo-headers (the
//! connection does that, RFC 9113 section 8.2).

use super::table::{DynamicTable, Entry, ENTRY_OVERHEAD};
use super::{huffman, integer, HpackError, DEFAULT_TABLE_SIZE};

/// Huffman buffers above this capacity are given back after a block, so that one large
/// header cannot pin memory on an idle connection.
const SCRATCH_KEEP: usize = 4096;

/// One decoded field, borrowed for the duration of the callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// The name, as sent (HTTP/2 requires lowercase; not checked here).
    pub name: &'a [u8],
    /// The value, as sent.
    pub value: &'a [u8],
    /// Sent as never-indexed (section 6.2.3): an intermediary must keep it so.
    pub sensitive: bool,
}

/// The decoding side of one connection's HPACK context.
#[derive(Debug, Clone)]
pub struct Decoder {
    table: DynamicTable,
    /// The SETTINGS_HEADER_TABLE_SIZE in force for the peer's encoder.
    max_table_size: usize,
    /// Set when the limit was lowered: the next block must start with a size update.
    update_required: bool,
    max_header_list_size: usize,
    name_buf: Vec<u8>,
    value_buf: Vec<u8>,
}

impl Decoder {
    /// A decoder with the protocol's default table size (4096, in force until our
    /// SETTINGS is acknowledged) and a bound on each block's decoded list size.
    pub fn new(max_header_list_size: usize) -> Self {
        Decoder {
            table: DynamicTable::new(DEFAULT_TABLE_SIZE),
            max_table_size: DEFAULT_TABLE_SIZE,
            update_required: false,
            max_header_list_size,
            name_buf: Vec::new(),
            value_buf: Vec::new(),
        }
    }

    /// A decoder whose table limit starts at `table_size` instead of the default: for a
    /// peer known to have had our SETTINGS before its first header block.
    pub fn with_table_size(table_size: usize, max_header_list_size: usize) -> Self {
        let mut d = Decoder::new(max_header_list_size);
        d.table.set_max_size(table_size);
        d.max_table_size = table_size;
        d
    }

    /// Puts into force the SETTINGS_HEADER_TABLE_SIZE we advertised, once the peer has
    /// acknowledged it. A lower value than before obliges the peer to shrink its table
    /// with a size update at the start of its next block (section 4.2).
    pub fn set_max_table_size(&mut self, size: usize) {
        if size < self.table.max_size() {
            self.update_required = true;
        }
        self.max_table_size = size;
    }

    /// Changes the bound on a block's decoded list size.
    pub fn set_max_header_list_size(&mut self, size: usize) {
        self.max_header_list_size = size;
    }

    /// The dynamic table's current size (section 4.1).
    pub fn table_size(&self) -> usize {
        self.table.size()
    }

    /// How many entries the dynamic table holds.
    pub fn table_len(&self) -> usize {
        self.table.len()
    }

    /// The dynamic table's entries, newest first.
    #[cfg(test)]
    pub(crate) fn entries(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.table
            .iter()
            .map(|(_, e)| (e.name().to_vec(), e.value().to_vec()))
            .collect()
    }

    /// Decodes one complete header block (all CONTINUATION fragments joined), calling
    /// `on_field` for each field in order.
    ///
    /// Any error but [`HpackError::HeaderListTooLarge`] leaves the table out of step
    /// with the peer's: the connection must end with COMPRESSION_ERROR. Past the list
    /// limit the rest of the block is still decoded, without calling back, so that the
    /// table stays in step and only the stream is refused.
    pub fn decode<F>(&mut self, block: &[u8], mut on_field: F) -> Result<(), HpackError>
    where
        F: FnMut(Field<'_>),
    {
        let result = self.decode_inner(block, &mut on_field);
        for buf in [&mut self.name_buf, &mut self.value_buf] {
            if buf.capacity() > SCRATCH_KEEP {
                *buf = Vec::new();
            }
        }
        result
    }

    fn decode_inner<F>(&mut self, block: &[u8], on_field: &mut F) -> Result<(), HpackError>
    where
        F: FnMut(Field<'_>),
    {
        let Decoder {
            table,
            max_table_size,
            update_required,
            max_header_list_size,
            name_buf,
            value_buf,
        } = self;
        let limit = *max_header_list_size;
        let mut list_size = 0usize;
        let mut over = false;
        let mut seen_field = false;
        let mut emit = |f: Field<'_>| {
            list_size = list_size.saturating_add(f.name.len() + f.value.len() + ENTRY_OVERHEAD);
            if list_size > limit {
                over = true;
            }
            if !over {
                on_field(f);
            }
        };
        let mut pos = 0;
        while let Some(&b) = block.get(pos) {
            if b & 0xe0 == 0x20 {
                // 001xxxxx: dynamic table size update (section 6.3), only before the
                // first field (section 4.2).
                if seen_field {
                    return Err(HpackError::MisplacedSizeUpdate);
                }
                let size = integer::decode(block, &mut pos, 5)?;
                if size > *max_table_size {
                    return Err(HpackError::TableSizeTooLarge(size));
                }
                table.set_max_size(size);
                *update_required = false;
                continue;
            }
            if *update_required {
                return Err(HpackError::MisplacedSizeUpdate);
            }
            seen_field = true;
            if b & 0x80 != 0 {
                // 1xxxxxxx: indexed field (section 6.1).
                let index = integer::decode(block, &mut pos, 7)?;
                let (name, value) = table.get(index).ok_or(HpackError::InvalidIndex(index))?;
                emit(Field {
                    name,
                    value,
                    sensitive: false,
                });
            } else if b & 0x40 != 0 {
                // 01xxxxxx: literal with incremental indexing (section 6.2.1). The entry
                // is copied before it is added: its name may be an entry that adding it
                // evicts (section 4.4).
                let entry = {
                    let index = integer::decode(block, &mut pos, 6)?;
                    let name = literal_name(table, block, &mut pos, index, name_buf)?;
                    let value = string(block, &mut pos, value_buf)?;
                    Entry::new(name, value)
                };
                emit(Field {
                    name: entry.name(),
                    value: entry.value(),
                    sensitive: false,
                });
                table.insert(entry);
            } else {
                // 0000xxxx without indexing, 0001xxxx never indexed (6.2.2, 6.2.3).
                let sensitive = b & 0x10 != 0;
                let index = integer::decode(block, &mut pos, 4)?;
                let name = literal_name(table, block, &mut pos, index, name_buf)?;
                let value = string(block, &mut pos, value_buf)?;
                emit(Field {
                    name,
                    value,
                    sensitive,
                });
            }
        }
        if *update_required {
            // An empty block still had to carry the update.
            return Err(HpackError::MisplacedSizeUpdate);
        }
        if over {
            return Err(HpackError::HeaderListTooLarge { limit });
        }
        Ok(())
    }
}

/// The name of a literal: a table entry's (index > 0) or a string that follows.
fn literal_name<'a>(
    table: &'a DynamicTable,
    block: &'a [u8],
    pos: &mut usize,
    index: usize,
    buf: &'a mut Vec<u8>,
) -> Result<&'a [u8], HpackError> {
    if index == 0 {
        string(block, pos, buf)
    } else {
        table
            .get(index)
            .map(|(name, _)| name)
            .ok_or(HpackError::InvalidIndex(index))
    }
}

/// A string literal (section 5.2): borrowed from the block when plain, decoded into
/// `buf` when Huffman coded.
fn string<'a>(
    block: &'a [u8],
    pos: &mut usize,
    buf: &'a mut Vec<u8>,
) -> Result<&'a [u8], HpackError> {
    let huffman = block.get(*pos).ok_or(HpackError::Truncated)? & 0x80 != 0;
    let len = integer::decode(block, pos, 7)?;
    let end = pos.checked_add(len).ok_or(HpackError::Truncated)?;
    let raw = block.get(*pos..end).ok_or(HpackError::Truncated)?;
    *pos = end;
    if huffman {
        buf.clear();
        huffman::decode(raw, buf)?;
        Ok(buf)
    } else {
        Ok(raw)
    }
}
