//! Payload compression for moor/1 frames (protocol.md §2, flags bits 0-1): lz4 blocks
//! preceded by the uncompressed size as a varint, zstd frames (with a trained dictionary
//! whose id the frame header names, or none), decompression bounded by the caller's
//! limit (a zip-bomb guard), and dictionary training with the zstd crate's zdict
//! builder. Pure Rust; the Node bindings are in compress_fns.rs.
//!
//! Dictionaries live in a per-thread table keyed by their zstd dictionary id (each
//! Node thread has its own, so piscina workers never share state with the event loop).
use std::cell::RefCell;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::ptr::NonNull;

use zstd::zstd_safe::zstd_sys as sys;
use zstd::zstd_safe::{self, CCtx, DCtx, DDict};

/// Why a payload could not be decompressed.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Fault {
  /// The decompressed size would pass the limit (FRAME_TOO_LARGE).
  TooLarge = 1,
  /// Not a valid lz4 block / zstd frame, trailing bytes, or the wrong dictionary.
  Corrupt = 2,
  /// The zstd frame names a dictionary this thread has not loaded.
  UnknownDict = 3,
}

/// Appends `v` as an unsigned LEB128 varint (at most 5 bytes).
pub fn put_varint(out: &mut Vec<u8>, mut v: u32) {
  while v >= 0x80 {
    out.push((v as u8) | 0x80);
    v >>= 7;
  }
  out.push(v as u8);
}

/// A varint of at most 5 bytes whose value is < 2^32, and its length.
pub fn get_varint(src: &[u8]) -> Option<(u32, usize)> {
  let mut v: u64 = 0;
  for (i, &b) in src.iter().enumerate().take(5) {
    v |= u64::from(b & 0x7f) << (7 * i);
    if b & 0x80 == 0 {
      return u32::try_from(v).ok().map(|v| (v, i + 1));
    }
  }
  None
}

/// Decompress an lz4 payload into `dst`; its declared size must fit `dst` (else TooLarge).
pub fn lz4_decompress_into(src: &[u8], dst: &mut [u8]) -> Result<usize, Fault> {
  let (n, used) = get_varint(src).ok_or(Fault::Corrupt)?;
  let n = n as usize;
  if n > dst.len() {
    return Err(Fault::TooLarge);
  }
  match lz4_flex::block::decompress_into(&src[used..], &mut dst[..n]) {
    Ok(k) if k == n => Ok(n),
    _ => Err(Fault::Corrupt),
  }
}

/// A compression dictionary prepared with chosen parameters (zstd-safe's CDict only
/// takes a level).
struct PreparedDict(NonNull<sys::ZSTD_CDict>);

impl PreparedDict {
  /// What `ZSTD_createCDict(bytes, level)` prepares, except that fast and dfast levels
  /// (1-4) match from 4 bytes instead of 5: their parameters for a dictionary of 16 KiB
  /// or more are those of large inputs, while every payload is small. On held-out pushes
  /// under 1 KiB (three corpus seeds, fastCover d=6 dictionaries): 16 KiB +1.1-1.6% ratio,
  /// 64 KiB -0.1 to -0.4%, the same time; protobuf sensor batches (4-byte repeats) gain 6%.
  fn new(bytes: &[u8], level: i32) -> Option<PreparedDict> {
    // SAFETY: plain calls on a live buffer; zstd copies the bytes (dlm_byCopy).
    unsafe {
      let mut cp = sys::ZSTD_getCParams(level, 0, bytes.len());
      if (cp.strategy as u32) <= sys::ZSTD_strategy::ZSTD_dfast as u32 {
        cp.minMatch = cp.minMatch.min(4);
      }
      let mem = sys::ZSTD_customMem {
        customAlloc: None,
        customFree: None,
        opaque: std::ptr::null_mut(),
      };
      let p = sys::ZSTD_createCDict_advanced(
        bytes.as_ptr().cast(),
        bytes.len(),
        sys::ZSTD_dictLoadMethod_e::ZSTD_dlm_byCopy,
        sys::ZSTD_dictContentType_e::ZSTD_dct_auto,
        cp,
        mem,
      );
      NonNull::new(p).map(PreparedDict)
    }
  }
}

impl Drop for PreparedDict {
  fn drop(&mut self) {
    // SAFETY: created by ZSTD_createCDict_advanced, freed once.
    unsafe { sys::ZSTD_freeCDict(self.0.as_ptr()) };
  }
}

/// A compression context of our own, for PreparedDict (zstd-safe's CCtx takes only its CDict).
struct RawCCtx(NonNull<sys::ZSTD_CCtx>);

impl Drop for RawCCtx {
  fn drop(&mut self) {
    // SAFETY: created by ZSTD_createCCtx, freed once.
    unsafe { sys::ZSTD_freeCCtx(self.0.as_ptr()) };
  }
}

struct Dict {
  cdict: PreparedDict,
  ddict: DDict<'static>,
  /// Same id, same bytes: loading it again only counts a reference.
  fingerprint: (usize, u64),
  refs: u32,
}

fn fingerprint(bytes: &[u8]) -> (usize, u64) {
  let mut h = DefaultHasher::new();
  bytes.hash(&mut h);
  (bytes.len(), h.finish())
}

/// One thread's contexts and dictionaries.
pub struct Codec {
  cctx: CCtx<'static>,
  /// Compresses with dictionaries.
  dict_cctx: RawCCtx,
  /// One-shot decompression (never holds a dictionary reference).
  dctx: DCtx<'static>,
  dicts: HashMap<u32, Dict>,
  /// lz4_flex compresses only into room for the worst case: it goes here first.
  lz4_out: Vec<u8>,
}

impl Default for Codec {
  fn default() -> Self {
    Self::new()
  }
}

impl Codec {
  pub fn new() -> Codec {
    Codec {
      cctx: CCtx::create(),
      // SAFETY: a plain allocation; null only when out of memory.
      dict_cctx: RawCCtx(
        NonNull::new(unsafe { sys::ZSTD_createCCtx() })
          .expect("zstd could not allocate a compression context"),
      ),
      dctx: DCtx::create(),
      dicts: HashMap::new(),
      lz4_out: Vec::new(),
    }
  }

  /// An lz4 payload (the varint, then the block) in `dst`; its length, or 0 when it does
  /// not fit (a caller passing a `dst` shorter than `src` gets 0 for "not worth it").
  pub fn lz4_compress_into(&mut self, src: &[u8], dst: &mut [u8]) -> usize {
    let out = &mut self.lz4_out;
    out.clear();
    put_varint(out, src.len() as u32);
    let head = out.len();
    out.resize(head + lz4_flex::block::get_maximum_output_size(src.len()), 0);
    let Ok(n) = lz4_flex::block::compress_into(src, &mut out[head..]) else {
      return 0;
    };
    let n = head + n;
    if n > dst.len() {
      return 0;
    }
    dst[..n].copy_from_slice(&out[..n]);
    n
  }

  /// Load a zstd-format dictionary (prepared for compression at `level`); returns its id.
  /// Loading the same bytes again counts a reference; other bytes under a loaded id fail.
  pub fn load_dict(&mut self, bytes: &[u8], level: i32) -> Result<u32, String> {
    let id = zstd_safe::get_dict_id_from_dict(bytes)
      .ok_or("not a zstd dictionary (no magic or dictionary id 0)")?
      .get();
    let fp = fingerprint(bytes);
    if let Some(d) = self.dicts.get_mut(&id) {
      if d.fingerprint != fp {
        return Err(format!("another dictionary with id {id} is already loaded"));
      }
      d.refs += 1;
      return Ok(id);
    }
    let cdict =
      PreparedDict::new(bytes, level).ok_or("zstd could not prepare the dictionary for compression")?;
    let ddict = DDict::try_create(bytes).ok_or("zstd could not prepare the dictionary for decompression")?;
    self.dicts.insert(
      id,
      Dict {
        cdict,
        ddict,
        fingerprint: fp,
        refs: 1,
      },
    );
    Ok(id)
  }

  /// Drop one reference; false when the id was not loaded.
  pub fn unload_dict(&mut self, id: u32) -> bool {
    let Some(d) = self.dicts.get_mut(&id) else {
      return false;
    };
    d.refs -= 1;
    if d.refs == 0 {
      self.dicts.remove(&id);
    }
    true
  }

  pub fn has_dict(&self, id: u32) -> bool {
    self.dicts.contains_key(&id)
  }

  /// zstd-compress `src` into `dst` with dictionary `dict_id` (0 = none) or, without
  /// one, at `level`: one frame, content size and dictionary id in its header. Its
  /// length, or 0 when it does not fit `dst`.
  pub fn zstd_compress_into(
    &mut self,
    src: &[u8],
    dst: &mut [u8],
    dict_id: u32,
    level: i32,
  ) -> Result<usize, String> {
    let r = if dict_id == 0 {
      self.cctx.compress(dst, src, level)
    } else {
      let d = self
        .dicts
        .get(&dict_id)
        .ok_or_else(|| format!("dictionary {dict_id} is not loaded"))?;
      // SAFETY: live, non-overlapping buffers of the lengths passed; our context and dictionary.
      let n = unsafe {
        sys::ZSTD_compress_usingCDict(
          self.dict_cctx.0.as_ptr(),
          dst.as_mut_ptr().cast(),
          dst.len(),
          src.as_ptr().cast(),
          src.len(),
          d.cdict.0.as_ptr(),
        )
      };
      if unsafe { sys::ZSTD_isError(n) } != 0 {
        Err(n)
      } else {
        Ok(n)
      }
    };
    match r {
      Ok(n) => Ok(n),
      Err(c) if unsafe { sys::ZSTD_getErrorCode(c) } == sys::ZSTD_ErrorCode::ZSTD_error_dstSize_tooSmall => {
        Ok(0)
      }
      Err(c) => Err(zstd_safe::get_error_name(c).to_string()),
    }
  }

  /// Decompress one zstd frame into `dst`, whose length is the limit: a frame that
  /// declares or produces more is TooLarge. Returns the decompressed length.
  pub fn zstd_decompress_into(&mut self, src: &[u8], dst: &mut [u8]) -> Result<usize, Fault> {
    match self.zstd_size(src, dst.len())? {
      // More or less than the size it declared (which fits) means a damaged frame.
      Some(n) => match self.zstd_decompress_one_shot(src, &mut dst[..n]) {
        Ok(k) if k == n => Ok(n),
        _ => Err(Fault::Corrupt),
      },
      None => self.zstd_decompress_one_shot(src, dst),
    }
  }

  /// The content size a zstd payload declares (None: not in the header), after checking
  /// that it is exactly one frame and its dictionary (if any) is loaded.
  pub fn zstd_size(&self, src: &[u8], max: usize) -> Result<Option<usize>, Fault> {
    match zstd_safe::find_frame_compressed_size(src) {
      Ok(n) if n == src.len() => {}
      _ => return Err(Fault::Corrupt),
    }
    if let Some(id) = zstd_safe::get_dict_id_from_frame(src) {
      if !self.dicts.contains_key(&id.get()) {
        return Err(Fault::UnknownDict);
      }
    }
    match zstd_safe::get_frame_content_size(src) {
      Ok(Some(n)) if n > max as u64 => Err(Fault::TooLarge),
      Ok(Some(n)) => Ok(Some(n as usize)),
      Ok(None) => Ok(None),
      Err(_) => Err(Fault::Corrupt),
    }
  }

  /// Decompress one frame into `dst` in a single pass. `dst` is the decoder's window as
  /// well, so no window buffer is allocated whatever size the frame header asks for (a
  /// level-19 streaming encoder asks for 8 MiB), and output that would pass `dst.len()`
  /// stops the decoder there: TooLarge (the zip-bomb guard).
  fn zstd_decompress_one_shot(&mut self, src: &[u8], dst: &mut [u8]) -> Result<usize, Fault> {
    let r = match zstd_safe::get_dict_id_from_frame(src).and_then(|id| self.dicts.get(&id.get())) {
      Some(d) => self.dctx.decompress_using_ddict(dst, src, &d.ddict),
      None => self.dctx.decompress(dst, src),
    };
    match r {
      Ok(n) => Ok(n),
      // SAFETY: ZSTD_getErrorCode only classifies the returned code.
      Err(code)
        if unsafe { sys::ZSTD_getErrorCode(code) } == sys::ZSTD_ErrorCode::ZSTD_error_dstSize_tooSmall =>
      {
        Err(Fault::TooLarge)
      }
      Err(_) => Err(Fault::Corrupt),
    }
  }
}

thread_local! {
  static CODEC: RefCell<Codec> = RefCell::new(Codec::new());
}

/// This thread's codec (N-API calls run on the JS thread that made them).
pub fn with_codec<R>(f: impl FnOnce(&mut Codec) -> R) -> R {
  CODEC.with(|c| f(&mut c.borrow_mut()))
}

/// fastCover segment and d-mer sizes. zdict's default (`ZDICT_trainFromBuffer`) tries
/// k on a 75/25 split with d = 8; on push payloads (bench/lib/push-corpus.ts, three
/// seeds, held out, under 1 KiB) d = 6 with k = 400 gives 0.4-1.6% more ratio for a
/// 16 KiB dictionary (64 KiB: -0.4 to +0.3%) and trains in ~0.2 s instead of ~1 s: short
/// payloads repeat short strings (JSON keys, protobuf tags with their lengths).
const TRAIN_K: u32 = 400;
const TRAIN_D: u32 = 6;

/// zdict (fastCover, TRAIN_K/TRAIN_D): a dictionary of at most `max_size` bytes trained
/// on the samples (concatenated in `samples`, lengths in `sizes`), its statistics for
/// zstd's default level.
pub fn train(samples: &[u8], sizes: &[usize], max_size: usize) -> Result<Vec<u8>, String> {
  if sizes.iter().sum::<usize>() != samples.len() {
    return Err("sample sizes do not add up to the samples' length".into());
  }
  let nb = u32::try_from(sizes.len()).map_err(|_| "too many samples")?;
  let params = sys::ZDICT_fastCover_params_t {
    k: TRAIN_K.min(max_size as u32),
    d: TRAIN_D,
    f: 20,
    steps: 0,
    nbThreads: 1,
    splitPoint: 1.0,
    accel: 1,
    shrinkDict: 0,
    shrinkDictMaxRegression: 0,
    zParams: sys::ZDICT_params_t {
      compressionLevel: 0,
      notificationLevel: 0,
      dictID: 0,
    },
  };
  let mut out = vec![0u8; max_size];
  // SAFETY: the buffers are live and their lengths are the ones passed.
  let r = unsafe {
    sys::ZDICT_trainFromBuffer_fastCover(
      out.as_mut_ptr().cast(),
      out.len(),
      samples.as_ptr().cast(),
      sizes.as_ptr(),
      nb,
      params,
    )
  };
  if unsafe { sys::ZDICT_isError(r) } != 0 {
    // SAFETY: zdict's error names are static C strings.
    return Err(
      unsafe { std::ffi::CStr::from_ptr(sys::ZDICT_getErrorName(r)) }
        .to_string_lossy()
        .into_owned(),
    );
  }
  out.truncate(r);
  Ok(out)
}

/// Rewrite a trained dictionary's id (bytes 4..8 of the zstd dictionary format).
pub fn set_dict_id(dict: &mut [u8], id: u32) -> bool {
  if dict.len() < 8 || zstd_safe::get_dict_id_from_dict(dict).is_none() || id == 0 {
    return false;
  }
  dict[4..8].copy_from_slice(&id.to_le_bytes());
  true
}

#[cfg(test)]
mod tests {
  use super::*;

  fn corpus() -> (Vec<u8>, Vec<usize>) {
    let mut data = Vec::new();
    let mut sizes = Vec::new();
    for i in 0..2000u32 {
      let s = format!(
        "{{\"type\":\"order.update\",\"order_id\":\"ord-{:08}\",\"status\":\"{}\",\"amount\":{},\"currency\":\"EUR\",\"title\":\"Your order has shipped\"}}",
        i * 7919 % 100_000,
        ["paid", "shipped", "delivered", "cancelled"][(i % 4) as usize],
        i * 37 % 9999
      );
      sizes.push(s.len());
      data.extend_from_slice(s.as_bytes());
    }
    (data, sizes)
  }

  #[test]
  fn varints_round_trip_and_refuse_a_sixth_byte() {
    for v in [0u32, 1, 127, 128, 16_383, 16_384, u32::MAX] {
      let mut b = Vec::new();
      put_varint(&mut b, v);
      assert_eq!(get_varint(&b), Some((v, b.len())));
    }
    assert_eq!(get_varint(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01]), None);
    assert_eq!(
      get_varint(&[0xff, 0xff, 0xff, 0xff, 0x1f]),
      None,
      "2^35 - 1 is not a u32"
    );
  }

  #[test]
  fn lz4_round_trip_and_bounds() {
    let src = b"hello hello hello hello hello hello".repeat(20);
    let mut out = vec![0; src.len()];
    let mut c = Codec::new();
    let n = c.lz4_compress_into(&src, &mut out);
    assert!(n > 0 && n < src.len());
    let mut dst = vec![0; 1 << 16];
    assert_eq!(lz4_decompress_into(&out[..n], &mut dst), Ok(src.len()));
    assert_eq!(&dst[..src.len()], &src[..]);
    assert_eq!(
      lz4_decompress_into(&out[..n], &mut dst[..100]),
      Err(Fault::TooLarge)
    );
    assert_eq!(lz4_decompress_into(&out[..n - 3], &mut dst), Err(Fault::Corrupt));
    assert_eq!(
      c.lz4_compress_into(b"incompressible", &mut [0u8; 8]),
      0,
      "does not fit"
    );
  }

  #[test]
  fn trained_dictionary_round_trip_and_bomb_guard() {
    let (data, sizes) = corpus();
    let mut dict = train(&data, &sizes, 16 * 1024).unwrap();
    assert!(set_dict_id(&mut dict, 123_456));
    let mut c = Codec::new();
    assert_eq!(c.load_dict(&dict, 3).unwrap(), 123_456);
    let msg = &data[..sizes[0]];
    let mut with = vec![0; 1024];
    let n = c.zstd_compress_into(msg, &mut with, 123_456, 3).unwrap();
    with.truncate(n);
    let mut plain = vec![0; 1024];
    let m = c.zstd_compress_into(msg, &mut plain, 0, 3).unwrap();
    assert!(n * 2 < m, "dict {n} vs plain {m}");
    assert_eq!(
      zstd_safe::get_dict_id_from_frame(&with).map(|i| i.get()),
      Some(123_456)
    );
    let mut dst = vec![0; 1 << 16];
    assert_eq!(c.zstd_decompress_into(&with, &mut dst), Ok(msg.len()));
    assert_eq!(&dst[..msg.len()], msg);
    assert_eq!(
      c.zstd_decompress_into(&with, &mut dst[..10]),
      Err(Fault::TooLarge)
    );
    assert_eq!(c.zstd_compress_into(msg, &mut [0u8; 4], 123_456, 3), Ok(0));
    let other = Codec::new();
    assert_eq!(other.zstd_size(&with, 1 << 16), Err(Fault::UnknownDict));
    assert!(c.unload_dict(123_456));
    assert!(!c.has_dict(123_456));
  }

  #[test]
  fn streamed_frames_are_bounded() {
    let big = vec![b'a'; 1 << 20];
    let mut enc = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
    std::io::Write::write_all(&mut enc, &big).unwrap();
    let frame = enc.finish().unwrap();
    let mut c = Codec::new();
    assert_eq!(c.zstd_size(&frame, 1 << 16), Ok(None));
    let mut dst = vec![0; 1 << 16];
    assert_eq!(c.zstd_decompress_into(&frame, &mut dst), Err(Fault::TooLarge));
    let mut dst = vec![0; 1 << 20];
    assert_eq!(c.zstd_decompress_into(&frame, &mut dst), Ok(1 << 20));
    assert_eq!(dst, big);
    let mut cut = frame.clone();
    cut.truncate(frame.len() - 2);
    assert_eq!(c.zstd_size(&cut, 1 << 20), Err(Fault::Corrupt));
  }

  #[test]
  fn large_windows_decode_without_a_window_buffer() {
    // What zstd's streaming encoder makes at level 19: an 8 MiB window, no content size.
    let small = b"a small payload from a device, compressed with a large window".repeat(4);
    let mut enc = zstd::stream::Encoder::new(Vec::new(), 19).unwrap();
    enc.include_contentsize(false).unwrap();
    enc.window_log(23).unwrap();
    std::io::Write::write_all(&mut enc, &small).unwrap();
    let frame = enc.finish().unwrap();
    let mut c = Codec::new();
    assert_eq!(c.zstd_size(&frame, 1 << 16), Ok(None));
    let mut dst = vec![0; 1 << 16];
    assert_eq!(c.zstd_decompress_into(&frame, &mut dst), Ok(small.len()));
    assert_eq!(&dst[..small.len()], &small[..]);
    // A bomb with that window: cut at the destination's size, not refused as corrupt.
    let mut enc = zstd::stream::Encoder::new(Vec::new(), 19).unwrap();
    enc.include_contentsize(false).unwrap();
    enc.window_log(23).unwrap();
    std::io::Write::write_all(&mut enc, &vec![0u8; 16 << 20]).unwrap();
    let bomb = enc.finish().unwrap();
    assert!(bomb.len() < 4096, "{} B", bomb.len());
    assert_eq!(c.zstd_decompress_into(&bomb, &mut dst), Err(Fault::TooLarge));
  }

  #[test]
  fn garbage_is_corrupt() {
    let c = Codec::new();
    assert_eq!(
      c.zstd_size(b"not a zstd frame at all", 1 << 16),
      Err(Fault::Corrupt)
    );
    let mut frame = zstd::bulk::compress(b"hello world hello world", 3).unwrap();
    frame.push(0);
    assert_eq!(c.zstd_size(&frame, 1 << 16), Err(Fault::Corrupt), "trailing byte");
  }
}
