//! Encoding header blocks (RFC 7541 sections 4 and 6), for responses a server sends.
//!
//! Owns the us-to-peer dynamic table and the indexing policy: a field the static table
//! holds whole is one byte; fields that repeat from response to response (`server`,
//! `content-type`, `date` within a second, ...) go into the dynamic table and are one
//! byte from the second response on; fields whose values rarely repeat
//! (`content-length`, `etag`, ...) are sent without indexing so as not to evict the
//! useful ones; credentials and cookies are sent never-indexed (section 7.1.3) so no
//! intermediary compresses them. Strings are Huffman coded when that is shorter.
//! Never: lowercasing or validating names (the caller gives HTTP/2-legal fields).

use super::table::{static_name_range, DynamicTable, Entry, ENTRY_OVERHEAD, STATIC};
use super::{huffman, integer, DEFAULT_TABLE_SIZE};

/// Fields never indexed: credentials and cookies (section 7.1.3).
fn is_sensitive(name: &[u8]) -> bool {
    matches!(
        name,
        b"authorization" | b"proxy-authorization" | b"cookie" | b"set-cookie"
    )
}

/// Fields whose values seldom repeat: indexing them would only evict useful entries.
fn is_unique_valued(name: &[u8]) -> bool {
    matches!(
        name,
        b"content-length"
            | b"etag"
            | b"last-modified"
            | b"location"
            | b"content-range"
            | b"age"
            | b"expires"
            | b":path"
            | b"x-request-id"
    )
}

/// The encoding side of one connection's HPACK context.
#[derive(Debug, Clone)]
pub struct Encoder {
    table: DynamicTable,
    /// The most this side will spend on the table, whatever the peer allows.
    cap: usize,
    /// A size change not yet signalled: (smallest size since the last block, final).
    pending: Option<(usize, usize)>,
}

impl Encoder {
    /// An encoder whose dynamic table never exceeds `cap` bytes (0: no dynamic table).
    /// The peer's SETTINGS_HEADER_TABLE_SIZE starts at 4096; a cap below it is
    /// signalled at the start of the first block.
    pub fn new(cap: usize) -> Self {
        let size = cap.min(DEFAULT_TABLE_SIZE);
        Encoder {
            table: DynamicTable::new(size),
            cap,
            pending: (size != DEFAULT_TABLE_SIZE).then_some((size, size)),
        }
    }

    /// Applies the peer's SETTINGS_HEADER_TABLE_SIZE. The change is signalled at the
    /// start of the next block (section 4.2, both the smallest and the final size when
    /// it went down and up again).
    pub fn set_max_table_size(&mut self, peer_size: usize) {
        let size = peer_size.min(self.cap);
        if size == self.table.max_size() && self.pending.is_none() {
            return;
        }
        self.table.set_max_size(size);
        let min = self.pending.map_or(size, |(min, _)| min.min(size));
        self.pending = Some((min, size));
    }

    /// Encodes a whole header block (pseudo-header fields first, as RFC 9113 section
    /// 8.3 requires of the caller's order).
    pub fn encode<'f, I>(&mut self, fields: I, out: &mut Vec<u8>)
    where
        I: IntoIterator<Item = (&'f [u8], &'f [u8])>,
    {
        self.start_block(out);
        for (name, value) in fields {
            self.encode_field(name, value, out);
        }
    }

    /// Starts a block: any pending table size update goes first (section 4.2). Call it
    /// once before the first [`Encoder::encode_field`] of every block.
    pub fn start_block(&mut self, out: &mut Vec<u8>) {
        if let Some((min, size)) = self.pending.take() {
            if min < size {
                integer::encode(out, 0x20, 5, min);
            }
            integer::encode(out, 0x20, 5, size);
        }
    }

    /// Appends one field with the policy of this module.
    pub fn encode_field(&mut self, name: &[u8], value: &[u8], out: &mut Vec<u8>) {
        if is_sensitive(name) {
            return self.encode_sensitive(name, value, out);
        }
        let static_range = static_name_range(name);
        let mut name_index = None;
        if let Some((first, last)) = static_range {
            name_index = Some(first);
            for i in first..=last {
                if STATIC.get(i - 1).is_some_and(|&(_, v)| v == value) {
                    return integer::encode(out, 0x80, 7, i);
                }
            }
        }
        for (i, e) in self.table.iter() {
            if e.name() == name {
                if e.value() == value {
                    return integer::encode(out, 0x80, 7, i);
                }
                name_index = name_index.or(Some(i));
            }
        }
        let size = name.len() + value.len() + ENTRY_OVERHEAD;
        // An entry above half the table would evict most of what is worth keeping.
        if is_unique_valued(name) || size > self.table.max_size() / 2 {
            literal(out, 0x00, 4, name_index, name, value);
        } else {
            literal(out, 0x40, 6, name_index, name, value);
            self.table.insert(Entry::new(name, value));
        }
    }

    /// Appends a field as never-indexed (section 6.2.3), for a value the caller knows
    /// to be secret.
    pub fn encode_sensitive(&mut self, name: &[u8], value: &[u8], out: &mut Vec<u8>) {
        let name_index = static_name_range(name).map(|(first, _)| first).or_else(|| {
            self.table
                .iter()
                .find(|(_, e)| e.name() == name)
                .map(|(i, _)| i)
        });
        literal(out, 0x10, 4, name_index, name, value);
    }

    /// The dynamic table's entries, newest first.
    #[cfg(test)]
    pub(crate) fn entries(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.table
            .iter()
            .map(|(_, e)| (e.name().to_vec(), e.value().to_vec()))
            .collect()
    }

    /// The dynamic table's current size (section 4.1).
    pub fn table_size(&self) -> usize {
        self.table.size()
    }
}

/// A literal field: the representation bits `flags` over an `n`-bit name index, then the
/// name (when not indexed) and the value.
fn literal(out: &mut Vec<u8>, flags: u8, n: u8, index: Option<usize>, name: &[u8], value: &[u8]) {
    match index {
        Some(i) => integer::encode(out, flags, n, i),
        None => {
            out.push(flags);
            string(out, name);
        }
    }
    string(out, value);
}

/// A string literal, Huffman coded when that is shorter (section 5.2).
fn string(out: &mut Vec<u8>, s: &[u8]) {
    let hlen = huffman::encoded_len(s);
    if hlen < s.len() {
        integer::encode(out, 0x80, 7, hlen);
        huffman::encode(s, out);
    } else {
        integer::encode(out, 0, 7, s.len());
        out.extend_from_slice(s);
    }
}
