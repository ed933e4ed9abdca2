//! HPACK, header compression for HTTP/2 (RFC 7541), written here rather than taken from
//! a crate: the decoder calls back with fields borrowed from the header block, the
//! dynamic table or one reusable Huffman buffer, so a warmed-up request decodes without
//! allocating, and every bound an HTTP/2 server needs (table size, decoded list size,
//! integer size) is explicit.
//!
//! - [`Decoder`]: header blocks in, fields out through a callback;
//! - [`Encoder`]: fields in, a header block out, indexing repeated fields;
//! - private: `integer` (section 5.1), `huffman` (section 5.2, Appendix B), `table`
//!   (section 2.3, Appendix A: static and dynamic tables).
//!
//! One decoder and one encoder per connection: the dynamic tables are shared state with
//! the peer, so every header block must go through them in order, even one whose stream
//! is being reset.

mod decoder;
mod encoder;
mod huffman;
mod integer;
mod table;
#[cfg(test)]
mod tests;

pub use decoder::{Decoder, Field};
pub use encoder::Encoder;

use super::error::ErrorCode;

/// SETTINGS_HEADER_TABLE_SIZE until a SETTINGS frame says otherwise (RFC 9113 6.5.2).
pub const DEFAULT_TABLE_SIZE: usize = 4096;

/// Why a header block could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HpackError {
    /// The block ends inside a representation.
    #[error("header block truncated")]
    Truncated,
    /// An integer longer or larger than any HPACK quantity can be.
    #[error("integer too large")]
    IntegerOverflow,
    /// Index 0, or past the end of the dynamic table (section 2.3.3).
    #[error("invalid table index {0}")]
    InvalidIndex(usize),
    /// Bad padding or an EOS symbol in a Huffman string (section 5.2).
    #[error("invalid Huffman code")]
    InvalidHuffman,
    /// A dynamic table size update above the SETTINGS_HEADER_TABLE_SIZE we advertised
    /// (section 6.3).
    #[error("table size update to {0} above the advertised maximum")]
    TableSizeTooLarge(usize),
    /// A table size update after the first field of a block, or a missing one after the
    /// table size was lowered (section 4.2).
    #[error("table size update out of place")]
    MisplacedSizeUpdate,
    /// The decoded fields add up past MAX_HEADER_LIST_SIZE (RFC 9113 6.5.2). Unlike the
    /// others this one leaves the decoder in sync: the rest of the block was still
    /// decoded (without calling back), so only the stream need be refused.
    #[error("header list larger than {limit} bytes")]
    HeaderListTooLarge {
        /// The limit in force.
        limit: usize,
    },
}

impl HpackError {
    /// The HTTP/2 error code: COMPRESSION_ERROR, a connection error, for all but
    /// [`HpackError::HeaderListTooLarge`], which is answered on its stream (a 431
    /// response, or RST_STREAM with PROTOCOL_ERROR).
    pub fn code(&self) -> ErrorCode {
        match self {
            HpackError::HeaderListTooLarge { .. } => ErrorCode::ProtocolError,
            _ => ErrorCode::CompressionError,
        }
    }

    /// Whether the decoder is out of step with the peer and the connection must end.
    pub fn is_connection_error(&self) -> bool {
        !matches!(self, HpackError::HeaderListTooLarge { .. })
    }
}
