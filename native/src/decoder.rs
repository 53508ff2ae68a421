//! The native `moor/1` frame decoder (protocol.md §2). Pure: no I/O, no N-API.
//!
//! Mirrors `src/protocol/decoder.ts` (`TsFrameDecoder`) byte for byte and fault for
//! fault: same output layout in `out`, same fault numbers, found at the same byte.

/// out[0] frames, out[1] fault, out[2] stream offset of the bad frame (mod 2^32),
/// out[3] bytes pending after the feed (so JS need not cross again to ask).
pub const OUT_HEADER: usize = 4;
/// Per frame: type, flags, stream, payload offset in chunk (or IN_SPILL), payload length.
pub const OUT_STRIDE: usize = 5;
/// Payload offset meaning "the payload spanned reads: call take_spill()".
pub const IN_SPILL: u32 = 0xffff_ffff;
/// type u8 + flags u8 + two 5-byte varints.
pub const MAX_HEADER_BYTES: usize = 12;
pub const MAX_FRAME_TYPE: u8 = 0x0c;
const FLAG_RESERVED_MASK: u8 = 0xfc;
const FLAG_CODEC_MASK: u8 = 0x03;

/// DecodeFault in src/protocol/constants.ts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Fault {
  None = 0,
  VarintOverflow = 1,
  ReservedFlags = 2,
  UnknownType = 3,
  TooLarge = 4,
  BadCodec = 5,
}

/// Size `out` needs for a chunk of `len` bytes; same formula as `outSizeFor` in TS.
pub fn out_size_for(len: usize) -> usize {
  OUT_HEADER + OUT_STRIDE * (len / 3 + 2)
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
  pub ty: u8,
  pub flags: u8,
  pub stream: u32,
  pub length: u32,
  /// Bytes the header took on the wire.
  pub size: u8,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Parse {
  NeedMore,
  Done(Header),
  Bad(Fault),
}

/// One LEB128 varint from buf[*p..]: Ok(value), Err(None) = need more, Err(Some) = overflow.
#[inline(always)]
fn varint(buf: &[u8], p: &mut usize) -> Result<u32, Option<Fault>> {
  let mut value: u32 = 0;
  let mut i = 0u32;
  loop {
    let Some(&b) = buf.get(*p) else { return Err(None) };
    *p += 1;
    // The 5th byte may carry only 4 bits: more means a 6th byte or a value >= 2^32.
    if i == 4 && b > 0x0f {
      return Err(Some(Fault::VarintOverflow));
    }
    value |= u32::from(b & 0x7f) << (7 * i);
    if b & 0x80 == 0 {
      return Ok(value);
    }
    i += 1;
  }
}

/// Parse one header at the start of `buf`. Faults are found at the earliest byte that
/// shows them, so a stream split anywhere gives the same verdict.
#[inline(always)]
pub fn parse_header(buf: &[u8], max_frame: u32) -> Parse {
  let Some(&ty) = buf.first() else {
    return Parse::NeedMore;
  };
  if ty == 0 || ty > MAX_FRAME_TYPE {
    return Parse::Bad(Fault::UnknownType);
  }
  let Some(&flags) = buf.get(1) else {
    return Parse::NeedMore;
  };
  if flags & FLAG_RESERVED_MASK != 0 {
    return Parse::Bad(Fault::ReservedFlags);
  }
  if flags & FLAG_CODEC_MASK == 3 {
    return Parse::Bad(Fault::BadCodec);
  }
  let mut p = 2;
  let stream = match varint(buf, &mut p) {
    Ok(v) => v,
    Err(None) => return Parse::NeedMore,
    Err(Some(f)) => return Parse::Bad(f),
  };
  let length = match varint(buf, &mut p) {
    Ok(v) => v,
    Err(None) => return Parse::NeedMore,
    Err(Some(f)) => return Parse::Bad(f),
  };
  // Decided on the header alone: the payload is never read or buffered.
  if length > max_frame {
    return Parse::Bad(Fault::TooLarge);
  }
  Parse::Done(Header {
    ty,
    flags,
    stream,
    length,
    size: p as u8,
  })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
  Header,
  Payload,
  Failed,
}

/// `out` cannot hold every frame a chunk of this size may contain.
#[derive(Debug, PartialEq, Eq)]
pub struct OutTooSmall {
  pub need: usize,
  pub have: usize,
}

pub struct Decoder {
  max_frame: u32,
  state: State,
  /// Header bytes of a frame whose header spans reads.
  hdr: [u8; MAX_HEADER_BYTES],
  hdr_len: usize,
  /// Header of the frame whose payload is being spilled.
  cur: Header,
  /// Payload of a frame that spans reads; capacity is exactly its length.
  spill: Vec<u8>,
  /// Completed spilled payload, until take_spill() or the next feed.
  done: Option<Vec<u8>>,
  /// Stream offset of the first byte not yet part of a completed frame.
  consumed: u64,
  failed: Fault,
}

impl Decoder {
  pub fn new(max_frame: u32) -> Self {
    Decoder {
      max_frame,
      state: State::Header,
      hdr: [0; MAX_HEADER_BYTES],
      hdr_len: 0,
      cur: Header::default(),
      spill: Vec::new(),
      done: None,
      consumed: 0,
      failed: Fault::None,
    }
  }

  pub fn pending(&self) -> usize {
    match self.state {
      State::Payload => self.cur.size as usize + self.spill.len(),
      _ => self.hdr_len,
    }
  }

  pub fn reset(&mut self) {
    *self = Decoder::new(self.max_frame);
  }

  /// The payload of the frame reported with IN_SPILL by the last feed.
  pub fn take_spill(&mut self) -> Option<Vec<u8>> {
    self.done.take()
  }

  /// Copy the spilled payload into `dst`, which must be exactly its length, and drop it.
  /// Err(None): no spilled payload; Err(Some(len)): `dst` has the wrong length.
  pub fn take_spill_into(&mut self, dst: &mut [u8]) -> Result<(), Option<usize>> {
    let done = self.done.as_ref().ok_or(None)?;
    if dst.len() != done.len() {
      return Err(Some(done.len()));
    }
    dst.copy_from_slice(done);
    self.done = None;
    Ok(())
  }

  /// Decode every frame of one socket read into `out` (layout above).
  pub fn feed(&mut self, chunk: &[u8], out: &mut [u32]) -> Result<(), OutTooSmall> {
    let need = out_size_for(chunk.len());
    if out.len() < need {
      return Err(OutTooSmall {
        need,
        have: out.len(),
      });
    }
    // An untaken spill is dropped: never more than one max frame held between reads.
    self.done = None;
    out[1] = 0;
    out[2] = 0;
    let mut n = 0usize;
    let fault = self.run(chunk, out, &mut n);
    out[0] = n as u32;
    if fault != Fault::None {
      self.state = State::Failed;
      self.failed = fault;
      self.hdr_len = 0;
      self.spill = Vec::new();
      out[1] = fault as u32;
      out[2] = self.consumed as u32;
    }
    out[3] = self.pending() as u32;
    Ok(())
  }

  /// Returns the fault that stopped decoding, or Fault::None.
  #[inline(always)]
  fn run(&mut self, chunk: &[u8], out: &mut [u32], n: &mut usize) -> Fault {
    let end = chunk.len();
    let mut pos;
    match self.state {
      State::Failed => return self.failed,
      State::Payload => {
        let take = end.min(self.cur.length as usize - self.spill.len());
        self.spill.extend_from_slice(&chunk[..take]);
        if self.spill.len() < self.cur.length as usize {
          return Fault::None;
        }
        self.emit(out, n, self.cur, IN_SPILL);
        self.done = Some(std::mem::take(&mut self.spill));
        self.state = State::Header;
        pos = take;
      }
      State::Header if self.hdr_len > 0 => {
        // A header spans reads: extend the saved bytes until it parses.
        let add = end.min(MAX_HEADER_BYTES - self.hdr_len);
        self.hdr[self.hdr_len..self.hdr_len + add].copy_from_slice(&chunk[..add]);
        match parse_header(&self.hdr[..self.hdr_len + add], self.max_frame) {
          Parse::Bad(f) => return f,
          Parse::NeedMore => {
            self.hdr_len += add;
            return Fault::None;
          }
          Parse::Done(h) => {
            pos = h.size as usize - self.hdr_len;
            self.hdr_len = 0;
            if !self.payload(chunk, pos, out, n, h) {
              return Fault::None;
            }
            pos += h.length as usize;
          }
        }
      }
      State::Header => pos = 0,
    }
    while pos < end {
      match parse_header(&chunk[pos..], self.max_frame) {
        Parse::Done(h) => {
          pos += h.size as usize;
          if !self.payload(chunk, pos, out, n, h) {
            return Fault::None;
          }
          pos += h.length as usize;
        }
        Parse::NeedMore => {
          let rest = &chunk[pos..];
          self.hdr[..rest.len()].copy_from_slice(rest);
          self.hdr_len = rest.len();
          return Fault::None;
        }
        Parse::Bad(f) => return f,
      }
    }
    Fault::None
  }

  /// Header `h` is complete and its payload starts at chunk[pos]: emit, or start a spill.
  #[inline(always)]
  fn payload(&mut self, chunk: &[u8], pos: usize, out: &mut [u32], n: &mut usize, h: Header) -> bool {
    let len = h.length as usize;
    if chunk.len() - pos >= len {
      self.emit(out, n, h, pos as u32);
      return true;
    }
    let mut spill = Vec::with_capacity(len);
    spill.extend_from_slice(&chunk[pos..]);
    self.spill = spill;
    self.cur = h;
    self.state = State::Payload;
    false
  }

  #[inline(always)]
  fn emit(&mut self, out: &mut [u32], n: &mut usize, h: Header, offset: u32) {
    let i = OUT_HEADER + OUT_STRIDE * *n;
    out[i..i + OUT_STRIDE].copy_from_slice(&[
      u32::from(h.ty),
      u32::from(h.flags),
      h.stream,
      offset,
      h.length,
    ]);
    *n += 1;
    self.consumed += u64::from(h.size) + u64::from(h.length);
  }
}
