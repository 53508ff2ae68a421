//! The native `moor/1` frame encoder. Pure; agrees byte for byte with
//! `src/protocol/encoder.ts`.

pub fn varint_size(v: u32) -> usize {
  match v {
    0..=0x7f => 1,
    0x80..=0x3fff => 2,
    0x4000..=0x1f_ffff => 3,
    0x20_0000..=0xfff_ffff => 4,
    _ => 5,
  }
}

pub fn header_size(stream: u32, length: u32) -> usize {
  2 + varint_size(stream) + varint_size(length)
}

/// Bytes one frame takes on the wire.
pub fn frame_size(stream: u32, payload_len: usize) -> usize {
  header_size(stream, payload_len as u32) + payload_len
}

#[inline(always)]
fn write_varint(buf: &mut [u8], mut pos: usize, mut v: u32) -> usize {
  while v >= 0x80 {
    buf[pos] = (v as u8 & 0x7f) | 0x80;
    v >>= 7;
    pos += 1;
  }
  buf[pos] = v as u8;
  pos + 1
}

/// Write one frame at buf[pos..]; `buf` must have frame_size() bytes there. Returns the end.
#[inline(always)]
pub fn write_frame(buf: &mut [u8], pos: usize, ty: u8, flags: u8, stream: u32, payload: &[u8]) -> usize {
  buf[pos] = ty;
  buf[pos + 1] = flags;
  let p = write_varint(buf, pos + 2, stream);
  let p = write_varint(buf, p, payload.len() as u32);
  buf[p..p + payload.len()].copy_from_slice(payload);
  p + payload.len()
}

/// Bytes a batch takes: `headers` holds type, flags, stream per frame.
pub fn batch_size(headers: &[u32], payloads: &[&[u8]]) -> usize {
  payloads
    .iter()
    .enumerate()
    .map(|(i, p)| frame_size(headers[3 * i + 2], p.len()))
    .sum()
}

/// Write a batch into `buf` (exactly batch_size() bytes).
pub fn write_batch(buf: &mut [u8], headers: &[u32], payloads: &[&[u8]]) -> usize {
  let mut p = 0;
  for (i, payload) in payloads.iter().enumerate() {
    let h = &headers[3 * i..3 * i + 3];
    p = write_frame(buf, p, h[0] as u8, h[1] as u8, h[2], payload);
  }
  p
}

/// Convenience for tests and pure callers.
pub fn encode_frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
  let mut v = vec![0; frame_size(stream, payload.len())];
  write_frame(&mut v, 0, ty, flags, stream, payload);
  v
}
