//! What the tests of several crates share, so that each sends exactly the same hostile input.
//! A dev-dependency only: nothing here is compiled into a service.
//!
//! # Layout
//! - [`bombs`]: decompression bombs built in code (PNG, JPEG, GIF headers that declare billions
//!   of pixels), used by the inference service's tests and the pipeline's hostile-input corpus.
//! - [`onnxruntime`]: the onnxruntime library from `ORT_DYLIB_PATH`, or a loud skip.

#![allow(clippy::unwrap_used)]

pub mod bombs;
pub mod onnxruntime;
