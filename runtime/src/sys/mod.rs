//! The only place that talks to the kernel through raw pointers.
//!
//! `ring` sets up io_uring and turns typed requests into submission entries; `buf_ring`
//! owns the provided-buffer ring the kernel receives into; `fd` wraps the handful of
//! raw file-descriptor and signal calls. Every `unsafe` block of the runtime is in this
//! module, each with a `// SAFETY:` line. Everything above it is safe code that relies
//! on one rule, kept by the shard's in-flight accounting: memory named in a submission
//! stays alive and unmoved until that submission's final completion has been reaped.

pub(crate) mod buf_ring;
pub(crate) mod fd;
pub(crate) mod ring;
