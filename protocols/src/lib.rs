//! Sans-IO protocol handlers for ringmaster.
//!
//! Each protocol is a state machine: bytes in, bytes out. The glue to the runtime is a
//! [`ringmaster_runtime::Handler`] implementation; nothing here touches a socket or a ring.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod echo;
pub mod http1;
pub mod http2;
pub mod tls;
pub mod udp_echo;
pub mod websocket;

/// docs/EMBEDDING.md, compiled as doctests (`cargo test --doc`) so that every code block
/// in it keeps up with the API.
#[cfg(doctest)]
#[doc = include_str!("../../docs/EMBEDDING.md")]
struct EmbeddingDoc;

#[cfg(test)]
mod embedding_tests {
    /// The gateway docs/EMBEDDING.md shows is the example CI builds and
    /// `tests/gateway.rs` runs, line for line (its `//!` header aside).
    #[test]
    fn the_gateway_in_embedding_md_is_the_example() {
        let md = include_str!("../../docs/EMBEDDING.md");
        let example = include_str!("../examples/gateway.rs");
        let code: Vec<&str> = example.lines().filter(|l| !l.starts_with("//!")).collect();
        let code = code.join("\n");
        assert!(
            md.contains(code.trim()),
            "docs/EMBEDDING.md's gateway differs from protocols/examples/gateway.rs"
        );
    }
}
