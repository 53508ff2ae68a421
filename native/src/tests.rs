//! Unit tests for the pure codec: byte-exact examples from protocol.md, every fault,
//! and split feeding (the same stream cut anywhere decodes the same).
use crate::decoder::*;
use crate::encoder::*;

/// A decoded frame with its payload resolved (from the chunk or the spill).
#[derive(Debug, PartialEq, Eq, Clone)]
struct Frame {
  ty: u32,
  flags: u32,
  stream: u32,
  payload: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
  frames: Vec<Frame>,
  fault: u32,
  fault_at: u32,
}

fn feed_all(d: &mut Decoder, chunks: &[&[u8]]) -> Outcome {
  let mut frames = Vec::new();
  let (mut fault, mut fault_at) = (0, 0);
  for chunk in chunks {
    let mut out = vec![0u32; out_size_for(chunk.len())];
    d.feed(chunk, &mut out).unwrap();
    assert_eq!(out[3] as usize, d.pending());
    for k in 0..out[0] as usize {
      let i = OUT_HEADER + OUT_STRIDE * k;
      let (off, len) = (out[i + 3], out[i + 4] as usize);
      let payload = if off == IN_SPILL {
        assert_eq!(k, 0, "only the first frame of a feed comes from the spill");
        d.take_spill().expect("spill")
      } else {
        chunk[off as usize..off as usize + len].to_vec()
      };
      assert_eq!(payload.len(), len);
      frames.push(Frame {
        ty: out[i],
        flags: out[i + 1],
        stream: out[i + 2],
        payload,
      });
    }
    if out[1] != 0 {
      fault = out[1];
      fault_at = out[2];
      break;
    }
  }
  Outcome {
    frames,
    fault,
    fault_at,
  }
}

fn decode(bytes: &[u8], max: u32) -> Outcome {
  feed_all(&mut Decoder::new(max), &[bytes])
}

fn frame(ty: u32, flags: u32, stream: u32, payload: &[u8]) -> Frame {
  Frame {
    ty,
    flags,
    stream,
    payload: payload.to_vec(),
  }
}

#[test]
fn ping_is_four_bytes() {
  assert_eq!(encode_frame(3, 0, 0, &[]), vec![0x03, 0x00, 0x00, 0x00]);
  let o = decode(&[0x03, 0x00, 0x00, 0x00], 65536);
  assert_eq!(
    o,
    Outcome {
      frames: vec![frame(3, 0, 0, &[])],
      fault: 0,
      fault_at: 0
    }
  );
}

#[test]
fn request_with_multibyte_varints() {
  let payload = vec![0xabu8; 300];
  let bytes = encode_frame(7, 2, 300, &payload);
  // stream 300 = ac 02, length 300 = ac 02
  assert_eq!(&bytes[..6], &[0x07, 0x02, 0xac, 0x02, 0xac, 0x02]);
  assert_eq!(bytes.len(), 306);
  assert_eq!(decode(&bytes, 65536).frames, vec![frame(7, 2, 300, &payload)]);
}

#[test]
fn varint_boundaries_round_trip() {
  for v in [
    0u32,
    0x7f,
    0x80,
    0x3fff,
    0x4000,
    0x1f_ffff,
    0x20_0000,
    0xfff_ffff,
    0x1000_0000,
    u32::MAX,
  ] {
    let bytes = encode_frame(8, 0, v, b"x");
    assert_eq!(bytes.len(), 2 + varint_size(v) + 1 + 1);
    assert_eq!(decode(&bytes, 65536).frames, vec![frame(8, 0, v, b"x")]);
  }
  assert_eq!(
    &encode_frame(8, 0, u32::MAX, &[])[2..7],
    &[0xff, 0xff, 0xff, 0xff, 0x0f]
  );
}

#[test]
fn non_minimal_varint_is_accepted() {
  // stream 0 written in 5 bytes is still < 2^32 and at most 5 bytes.
  let o = decode(&[0x03, 0x00, 0x80, 0x80, 0x80, 0x80, 0x00, 0x00], 65536);
  assert_eq!(o.frames, vec![frame(3, 0, 0, &[])]);
}

fn assert_fault(bytes: &[u8], max: u32, fault: Fault, at: u32, frames_before: usize) {
  let o = decode(bytes, max);
  assert_eq!(
    (o.fault, o.fault_at, o.frames.len()),
    (fault as u32, at, frames_before),
    "{bytes:02x?}"
  );
  // Byte at a time: same verdict, same place.
  let chunks: Vec<&[u8]> = bytes.chunks(1).collect();
  let o1 = feed_all(&mut Decoder::new(max), &chunks);
  assert_eq!(o1, o);
}

#[test]
fn unknown_type() {
  for ty in [0x00u8, 0x0d, 0xff] {
    assert_fault(&[ty, 0, 0, 0], 65536, Fault::UnknownType, 0, 0);
  }
  // Found at the type byte, after one good PING.
  assert_fault(&[3, 0, 0, 0, 0x0d], 65536, Fault::UnknownType, 4, 1);
}

#[test]
fn reserved_flags() {
  for flags in [0x04u8, 0x80, 0xfc] {
    assert_fault(&[3, flags, 0, 0], 65536, Fault::ReservedFlags, 0, 0);
  }
  // Decided at the flags byte: no varint needed.
  assert_fault(&[3, 0x10], 65536, Fault::ReservedFlags, 0, 0);
}

#[test]
fn codec_bits_three() {
  assert_fault(&[5, 0x03, 0, 0], 65536, Fault::BadCodec, 0, 0);
}

#[test]
fn varint_overflow() {
  // 6th continuation byte: detected at the 5th byte, which has its high bit set.
  assert_fault(
    &[7, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0],
    65536,
    Fault::VarintOverflow,
    0,
    0,
  );
  // 5 bytes but >= 2^32.
  assert_fault(
    &[7, 0, 0xff, 0xff, 0xff, 0xff, 0x10, 0],
    65536,
    Fault::VarintOverflow,
    0,
    0,
  );
  // In the length varint, after a good frame.
  assert_fault(
    &[3, 0, 0, 0, 7, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x1f],
    65536,
    Fault::VarintOverflow,
    4,
    1,
  );
}

#[test]
fn too_large_is_decided_on_the_header_alone() {
  // length 65537 = 81 80 04; no payload byte follows.
  assert_fault(&[5, 0, 0, 0x81, 0x80, 0x04], 65536, Fault::TooLarge, 0, 0);
  // Exactly max_frame is fine, and spills.
  let mut d = Decoder::new(65536);
  let mut out = vec![0u32; out_size_for(6)];
  d.feed(&[5, 0, 0, 0x80, 0x80, 0x04], &mut out).unwrap();
  assert_eq!((out[0], out[1], d.pending()), (0, 0, 6));
  assert_fault(&[3, 0, 0, 2, 9, 9], 1, Fault::TooLarge, 0, 0);
}

#[test]
fn failed_decoder_repeats_its_verdict() {
  let mut d = Decoder::new(65536);
  let mut out = vec![0u32; out_size_for(8)];
  d.feed(&[3, 0, 0, 0, 3, 4], &mut out).unwrap();
  assert_eq!(&out[..3], &[1, Fault::ReservedFlags as u32, 4]);
  d.feed(&[3, 0, 0, 0], &mut out).unwrap();
  assert_eq!(&out[..3], &[0, Fault::ReservedFlags as u32, 4]);
  d.reset();
  d.feed(&[3, 0, 0, 0], &mut out).unwrap();
  assert_eq!(&out[..3], &[1, 0, 0]);
}

/// Three frames: a PING, a REQUEST with a 200-byte payload and 2-byte varints, a PUSH.
fn sample_stream() -> (Vec<u8>, Vec<Frame>) {
  let big: Vec<u8> = (0..200).map(|i| i as u8).collect();
  let frames = vec![
    frame(3, 0, 0, &[]),
    frame(7, 1, 1000, &big),
    frame(5, 2, 0, b"hello"),
  ];
  let mut bytes = Vec::new();
  for f in &frames {
    bytes.extend(encode_frame(f.ty as u8, f.flags as u8, f.stream, &f.payload));
  }
  (bytes, frames)
}

#[test]
fn every_split_position_decodes_the_same() {
  let (bytes, frames) = sample_stream();
  for cut in 0..=bytes.len() {
    let o = feed_all(&mut Decoder::new(65536), &[&bytes[..cut], &bytes[cut..]]);
    assert_eq!(o.frames, frames, "cut at {cut}");
    assert_eq!(o.fault, 0);
  }
  for size in 1..=bytes.len() {
    let chunks: Vec<&[u8]> = bytes.chunks(size).collect();
    assert_eq!(
      feed_all(&mut Decoder::new(65536), &chunks).frames,
      frames,
      "chunks of {size}"
    );
  }
}

#[test]
fn pending_counts_held_bytes() {
  let (bytes, _) = sample_stream();
  let mut d = Decoder::new(65536);
  let mut out = vec![0u32; out_size_for(bytes.len())];
  // PING + 3 bytes of the REQUEST header.
  d.feed(&bytes[..7], &mut out).unwrap();
  assert_eq!((out[0], d.pending()), (1, 3));
  // Rest of the header (5 bytes) and 10 payload bytes: the payload spills.
  d.feed(&bytes[7..19], &mut out).unwrap();
  assert_eq!((out[0], d.pending()), (0, 15));
  d.feed(&bytes[19..], &mut out).unwrap();
  assert_eq!((out[0], out[3 + 1 + 3], d.pending()), (2, IN_SPILL, 0));
  assert_eq!(d.take_spill().unwrap().len(), 200);
  assert!(d.take_spill().is_none());
}

#[test]
fn untaken_spill_is_dropped_by_the_next_feed() {
  let (bytes, _) = sample_stream();
  let mut d = Decoder::new(65536);
  let mut out = vec![0u32; out_size_for(bytes.len())];
  d.feed(&bytes[..50], &mut out).unwrap();
  d.feed(&bytes[50..], &mut out).unwrap();
  d.feed(&[3, 0, 0, 0], &mut out).unwrap();
  assert!(d.take_spill().is_none());
}

#[test]
fn out_too_small_is_refused() {
  let mut d = Decoder::new(65536);
  let mut out = vec![0u32; 8];
  assert_eq!(
    d.feed(&[3, 0, 0, 0, 3, 0, 0, 0], &mut out),
    Err(OutTooSmall {
      need: 4 + 5 * 4,
      have: 8
    })
  );
}

#[test]
fn batch_equals_concatenated_frames() {
  let (bytes, frames) = sample_stream();
  let headers: Vec<u32> = frames.iter().flat_map(|f| [f.ty, f.flags, f.stream]).collect();
  let payloads: Vec<&[u8]> = frames.iter().map(|f| f.payload.as_slice()).collect();
  let size = batch_size(&headers, &payloads);
  assert_eq!(size, bytes.len());
  let mut buf = vec![0u8; size];
  assert_eq!(write_batch(&mut buf, &headers, &payloads), size);
  assert_eq!(buf, bytes);
}

#[test]
fn take_spill_into_copies_exactly() {
  let (bytes, frames) = sample_stream();
  let mut d = Decoder::new(65536);
  let mut out = vec![0u32; out_size_for(bytes.len())];
  d.feed(&bytes[..50], &mut out).unwrap();
  d.feed(&bytes[50..], &mut out).unwrap();
  assert_eq!(d.take_spill_into(&mut [0u8; 10]), Err(Some(200)));
  let mut dst = vec![0u8; 200];
  assert_eq!(d.take_spill_into(&mut dst), Ok(()));
  assert_eq!(dst, frames[1].payload);
  assert_eq!(d.take_spill_into(&mut dst), Err(None));
}
