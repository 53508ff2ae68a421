//! N-API bindings for moor's frame codec. Kept thin: the codec itself is pure Rust in
//! decoder.rs / encoder.rs; here we only move numbers and bytes across the boundary,
//! once per socket read (decode) or once per batch (encode).
#![deny(clippy::all)]

pub mod decoder;
pub mod encoder;

use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;

/// A Node Buffer we allocated and filled ourselves (one allocation, no external finalizer).
pub struct FreshBuffer(sys::napi_value);

impl ToNapiValue for FreshBuffer {
  unsafe fn to_napi_value(_env: sys::napi_env, val: Self) -> Result<sys::napi_value> {
    Ok(val.0)
  }
}

/// Allocate a Node Buffer of `len` bytes and let `fill` write all of them.
fn fresh_buffer(env: &Env, len: usize, fill: impl FnOnce(&mut [u8])) -> Result<FreshBuffer> {
  let mut data = std::ptr::null_mut();
  let mut value = std::ptr::null_mut();
  let status = unsafe { sys::napi_create_buffer(env.raw(), len, &mut data, &mut value) };
  if status != sys::Status::napi_ok {
    return Err(Error::new(Status::GenericFailure, "napi_create_buffer failed"));
  }
  if len > 0 {
    // SAFETY: napi_create_buffer returned `len` writable bytes at `data`, owned by `value`.
    fill(unsafe { std::slice::from_raw_parts_mut(data.cast::<u8>(), len) });
  }
  Ok(FreshBuffer(value))
}

/// Stateful decoder for one connection: see `FrameDecoderLike` in src/protocol/decoder.ts.
#[napi]
pub struct FrameDecoder {
  inner: decoder::Decoder,
}

#[napi]
impl FrameDecoder {
  #[napi(constructor)]
  pub fn new(max_frame: u32) -> Self {
    FrameDecoder {
      inner: decoder::Decoder::new(max_frame),
    }
  }

  /// Report every frame of one read in `out`: out[0] count, out[1] DecodeFault, out[2] fault
  /// offset, then 5 u32 per frame (type, flags, stream, payload offset or 0xffffffff, length).
  #[napi(ts_args_type = "chunk: Uint8Array, out: Uint32Array")]
  pub fn feed(&mut self, chunk: &[u8], mut out: Uint32ArraySlice) -> Result<()> {
    // SAFETY: we are on the JS thread inside a synchronous call, so nothing else touches
    // `out` meanwhile; overlap with `chunk` (same ArrayBuffer) is refused just below.
    let out = unsafe { out.as_mut() };
    let (c, o) = (chunk.as_ptr_range(), out.as_ptr_range());
    if !chunk.is_empty()
      && !out.is_empty()
      && (c.start as usize) < o.end as usize
      && (o.start as usize) < c.end as usize
    {
      return Err(Error::new(Status::InvalidArg, "feed: out overlaps chunk"));
    }
    self.inner.feed(chunk, out).map_err(|e| {
      Error::new(
        Status::InvalidArg,
        format!(
          "feed: out has {} slots, a chunk of {} bytes needs {}",
          e.have,
          chunk.len(),
          e.need
        ),
      )
    })
  }

  /// The payload reported with offset 0xffffffff by the last feed; the Vec is handed over, not copied.
  #[napi]
  pub fn take_spill(&mut self) -> Result<Buffer> {
    match self.inner.take_spill() {
      Some(v) => Ok(Buffer::from(v)),
      None => Err(Error::new(
        Status::GenericFailure,
        "takeSpill: no spilled payload",
      )),
    }
  }

  /// Bytes held for an incomplete frame.
  #[napi(getter)]
  pub fn pending(&self) -> u32 {
    self.inner.pending() as u32
  }

  #[napi]
  pub fn reset(&mut self) {
    self.inner.reset();
  }
}

fn check_stream(stream: f64) -> Result<u32> {
  if stream >= 0.0 && stream <= f64::from(u32::MAX) && stream.fract() == 0.0 {
    Ok(stream as u32)
  } else {
    Err(Error::new(
      Status::InvalidArg,
      format!("stream {stream} is not a u32"),
    ))
  }
}

/// One frame. type and flags keep their low 8 bits, as a Uint8Array store would.
#[napi(
  ts_args_type = "type: number, flags: number, stream: number, payload?: Uint8Array",
  ts_return_type = "Buffer"
)]
pub fn encode_frame(
  env: Env,
  ty: u32,
  flags: u32,
  stream: f64,
  payload: Option<&[u8]>,
) -> Result<FreshBuffer> {
  let stream = check_stream(stream)?;
  let payload = payload.unwrap_or(&[]);
  let size = encoder::frame_size(stream, payload.len());
  fresh_buffer(&env, size, |buf| {
    encoder::write_frame(buf, 0, ty as u8, flags as u8, stream, payload);
  })
}

/// Many frames into one buffer: `headers` holds type, flags, stream for each payload.
#[napi(
  ts_args_type = "headers: Uint32Array, payloads: Uint8Array[]",
  ts_return_type = "Buffer"
)]
pub fn encode_frames(env: Env, headers: &[u32], payloads: Vec<&[u8]>) -> Result<FreshBuffer> {
  if headers.len() != 3 * payloads.len() {
    return Err(Error::new(
      Status::InvalidArg,
      format!(
        "encodeFrames: {} header slots for {} payloads (need 3 each)",
        headers.len(),
        payloads.len()
      ),
    ));
  }
  let size = encoder::batch_size(headers, &payloads);
  fresh_buffer(&env, size, |buf| {
    encoder::write_batch(buf, headers, &payloads);
  })
}

#[cfg(test)]
mod tests;
