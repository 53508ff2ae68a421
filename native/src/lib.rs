//! N-API bindings for moor's frame codec. The codec itself is pure Rust (decoder.rs,
//! encoder.rs); the bindings only move numbers and bytes across the boundary, once per
//! socket read (decoder_class.rs) or once per frame or batch (encode_fns.rs). They are written
//! against raw Node-API because napi-rs's per-call argument machinery measured several
//! times the cost of the calls themselves; napi-rs still registers the module.
//! `sdNotify` (sd_notify.rs) tells systemd about readiness and health; it is no hot path.
//! `releaseFileMapping` (mappings.rs) drops a worker's page-table entries for the store file.
//! `mallocTrim` (heap_trim.rs) hands free malloc pages back to the kernel.
//! Payload compression (lz4, zstd with trained dictionaries, zdict training) is
//! compress.rs, bound in compress_fns.rs.
#![deny(clippy::all)]

pub mod compress;
mod compress_fns;
pub mod decoder;
mod decoder_class;
mod encode_fns;
pub mod encoder;
mod heap_trim;
mod mappings;
mod raw;
mod sd_notify;

use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;

/// Registers the bindings; their types are in native/bindings.d.ts (prepended to index.d.ts).
#[napi(module_exports)]
pub fn init(exports: Object, env: Env) -> Result<()> {
  for (name, register) in [
    (
      "FrameDecoder",
      decoder_class::register as unsafe fn(sys::napi_env, sys::napi_value) -> sys::napi_status,
    ),
    ("encodeFrame, encodeFrames", encode_fns::register),
    ("the compression functions", compress_fns::register),
  ] {
    let st = unsafe { register(env.raw(), exports.raw()) };
    if st != sys::Status::napi_ok {
      return Err(Error::new(
        Status::GenericFailure,
        format!("defining {name} failed: status {st}"),
      ));
    }
  }
  Ok(())
}

/// The `out` layout, exported so the loader can refuse a build whose layout differs
/// from src/protocol/decoder.ts (a stale module must not half-work).
#[napi]
pub const OUT_HEADER: u32 = decoder::OUT_HEADER as u32;
#[napi]
pub const OUT_STRIDE: u32 = decoder::OUT_STRIDE as u32;
#[napi]
pub const IN_SPILL: u32 = decoder::IN_SPILL;

#[cfg(test)]
mod tests;
