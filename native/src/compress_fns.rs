//! Compression bindings (compress.rs), hand-written against raw Node-API like
//! encode_fns.rs: one crossing per payload, arguments read without napi-rs's per-call
//! machinery. The hot functions write into a caller's buffer and answer a length:
//! napi_create_buffer costs ~1.2 us here, as much as compressing a small payload with
//! a prepared dictionary, while the caller's Buffer.allocUnsafe takes from Node's pool.
//! Decompression answers a negative number for a fault (-1 too large, -2 corrupt,
//! -3 unknown dictionary), so the hot path needs no exception.
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use napi::sys;

use crate::compress::{self, with_codec, Fault};
use crate::raw::{args, export_fn, new_buffer, throw, u32_view, view};

/// A JS number that is an integer in [0, 2^32).
unsafe fn u32_arg(env: sys::napi_env, v: sys::napi_value) -> Option<u32> {
  let mut d = 0f64;
  let ok = unsafe { sys::napi_get_value_double(env, v, &mut d) } == sys::Status::napi_ok;
  (ok && d >= 0.0 && d <= f64::from(u32::MAX) && d.fract() == 0.0).then_some(d as u32)
}

unsafe fn i32_arg(env: sys::napi_env, v: sys::napi_value) -> Option<i32> {
  let mut i = 0i32;
  (unsafe { sys::napi_get_value_int32(env, v, &mut i) } == sys::Status::napi_ok).then_some(i)
}

unsafe fn bytes_arg<'a>(env: sys::napi_env, v: sys::napi_value) -> Option<&'a [u8]> {
  // SAFETY: a live view for the duration of the call that reads it.
  unsafe { view(env, v) }.map(|(p, len)| unsafe { std::slice::from_raw_parts(p as *const u8, len) })
}

unsafe fn number(env: sys::napi_env, n: i64) -> sys::napi_value {
  let mut v = ptr::null_mut();
  unsafe { sys::napi_create_int64(env, n, &mut v) };
  v
}

/// A new Buffer holding `bytes`.
unsafe fn buffer_of(env: sys::napi_env, bytes: &[u8], what: &str) -> sys::napi_value {
  match unsafe { new_buffer(env, bytes.len()) } {
    Some((value, out)) => {
      out.copy_from_slice(bytes);
      value
    }
    None => unsafe { throw(env, false, &format!("{what}: could not allocate the output")) },
  }
}

fn panicked(what: &str) -> String {
  format!("{what}: internal error (panic in the native compressor)")
}

/// (src, dst) views; dst must not overlap src.
unsafe fn src_dst<'a>(
  env: sys::napi_env,
  src: sys::napi_value,
  dst: sys::napi_value,
) -> Option<(&'a [u8], &'a mut [u8])> {
  let (sp, slen) = unsafe { view(env, src) }?;
  let (dp, dlen) = unsafe { view(env, dst) }?;
  let (s0, d0) = (sp as usize, dp as usize);
  if slen > 0 && dlen > 0 && s0 < d0 + dlen && d0 < s0 + slen {
    return None;
  }
  // SAFETY: live views for this synchronous call that do not overlap.
  Some(unsafe {
    (
      std::slice::from_raw_parts(sp as *const u8, slen),
      std::slice::from_raw_parts_mut(dp, dlen),
    )
  })
}

fn fault_code(r: Result<usize, Fault>) -> i64 {
  match r {
    Ok(n) => n as i64,
    Err(f) => -(f as i64),
  }
}

unsafe extern "C" fn lz4_compress_into(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
  let Some((_, [src, dst])) = (unsafe { args::<2>(env, info) }) else {
    return ptr::null_mut();
  };
  let Some((src, dst)) = (unsafe { src_dst(env, src, dst) }) else {
    return unsafe {
      throw(
        env,
        false,
        "lz4CompressInto(src, dst): two Uint8Arrays that do not overlap",
      )
    };
  };
  if src.len() > u32::MAX as usize {
    return unsafe { throw(env, true, "lz4CompressInto: src is 4 GiB or more") };
  }
  match catch_unwind(AssertUnwindSafe(|| with_codec(|c| c.lz4_compress_into(src, dst)))) {
    Ok(n) => unsafe { number(env, n as i64) },
    Err(_) => unsafe { throw(env, false, &panicked("lz4CompressInto")) },
  }
}

unsafe extern "C" fn lz4_decompress_into(
  env: sys::napi_env,
  info: sys::napi_callback_info,
) -> sys::napi_value {
  let Some((_, [src, dst])) = (unsafe { args::<2>(env, info) }) else {
    return ptr::null_mut();
  };
  let Some((src, dst)) = (unsafe { src_dst(env, src, dst) }) else {
    return unsafe {
      throw(
        env,
        false,
        "lz4DecompressInto(src, dst): two Uint8Arrays that do not overlap",
      )
    };
  };
  match catch_unwind(AssertUnwindSafe(|| compress::lz4_decompress_into(src, dst))) {
    Ok(r) => unsafe { number(env, fault_code(r)) },
    Err(_) => unsafe { throw(env, false, &panicked("lz4DecompressInto")) },
  }
}

unsafe extern "C" fn zstd_compress_into(
  env: sys::napi_env,
  info: sys::napi_callback_info,
) -> sys::napi_value {
  let Some((_, [src, dst, dict, level])) = (unsafe { args::<4>(env, info) }) else {
    return ptr::null_mut();
  };
  let Some((src, dst)) = (unsafe { src_dst(env, src, dst) }) else {
    return unsafe {
      throw(
        env,
        false,
        "zstdCompressInto(src, dst, dictId, level): src and dst are Uint8Arrays that do not overlap",
      )
    };
  };
  let (Some(dict), Some(level)) = (unsafe { (u32_arg(env, dict), i32_arg(env, level)) }) else {
    return unsafe {
      throw(
        env,
        false,
        "zstdCompressInto: dictId must be a u32 (0 = none), level an int",
      )
    };
  };
  match catch_unwind(AssertUnwindSafe(|| {
    with_codec(|c| c.zstd_compress_into(src, dst, dict, level))
  })) {
    Ok(Ok(n)) => unsafe { number(env, n as i64) },
    Ok(Err(e)) => unsafe { throw(env, false, &format!("zstdCompressInto: {e}")) },
    Err(_) => unsafe { throw(env, false, &panicked("zstdCompressInto")) },
  }
}

unsafe extern "C" fn zstd_decompress_into(
  env: sys::napi_env,
  info: sys::napi_callback_info,
) -> sys::napi_value {
  let Some((_, [src, dst])) = (unsafe { args::<2>(env, info) }) else {
    return ptr::null_mut();
  };
  let Some((src, dst)) = (unsafe { src_dst(env, src, dst) }) else {
    return unsafe {
      throw(
        env,
        false,
        "zstdDecompressInto(src, dst): two Uint8Arrays that do not overlap",
      )
    };
  };
  match catch_unwind(AssertUnwindSafe(|| {
    with_codec(|c| c.zstd_decompress_into(src, dst))
  })) {
    Ok(r) => unsafe { number(env, fault_code(r)) },
    Err(_) => unsafe { throw(env, false, &panicked("zstdDecompressInto")) },
  }
}

unsafe extern "C" fn zstd_frame_dict_id(
  env: sys::napi_env,
  info: sys::napi_callback_info,
) -> sys::napi_value {
  let Some((_, [src])) = (unsafe { args::<1>(env, info) }) else {
    return ptr::null_mut();
  };
  let Some(src) = (unsafe { bytes_arg(env, src) }) else {
    return unsafe { throw(env, false, "zstdFrameDictId: src must be a Uint8Array") };
  };
  let id = zstd::zstd_safe::get_dict_id_from_frame(src).map_or(0, |i| i.get());
  unsafe { number(env, i64::from(id)) }
}

unsafe extern "C" fn zstd_load_dict(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
  let Some((_, [bytes, level])) = (unsafe { args::<2>(env, info) }) else {
    return ptr::null_mut();
  };
  let (Some(bytes), Some(level)) = (unsafe { (bytes_arg(env, bytes), i32_arg(env, level)) }) else {
    return unsafe { throw(env, false, "zstdLoadDict(bytes, level): a Uint8Array and an int") };
  };
  let r = catch_unwind(AssertUnwindSafe(|| with_codec(|c| c.load_dict(bytes, level))));
  match r {
    Ok(Ok(id)) => unsafe { number(env, i64::from(id)) },
    Ok(Err(e)) => unsafe { throw(env, false, &format!("zstdLoadDict: {e}")) },
    Err(_) => unsafe { throw(env, false, &panicked("zstdLoadDict")) },
  }
}

unsafe extern "C" fn zstd_unload_dict(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
  let Some((_, [id])) = (unsafe { args::<1>(env, info) }) else {
    return ptr::null_mut();
  };
  let Some(id) = (unsafe { u32_arg(env, id) }) else {
    return unsafe { throw(env, false, "zstdUnloadDict(id): id must be a u32") };
  };
  let done = with_codec(|c| c.unload_dict(id));
  let mut v = ptr::null_mut();
  unsafe { sys::napi_get_boolean(env, done, &mut v) };
  v
}

unsafe extern "C" fn train_dictionary(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
  let Some((_, [samples, sizes, max])) = (unsafe { args::<3>(env, info) }) else {
    return ptr::null_mut();
  };
  let Some(samples) = (unsafe { bytes_arg(env, samples) }) else {
    return unsafe { throw(env, false, "trainDictionary: samples must be a Uint8Array") };
  };
  let Some((sp, slen)) = (unsafe { u32_view(env, sizes) }) else {
    return unsafe { throw(env, false, "trainDictionary: sizes must be a Uint32Array") };
  };
  let Some(max) = (unsafe { u32_arg(env, max) }) else {
    return unsafe { throw(env, false, "trainDictionary: maxSize must be a u32") };
  };
  // SAFETY: a live, aligned Uint32Array for this call.
  let sizes: Vec<usize> = unsafe { std::slice::from_raw_parts(sp as *const u32, slen) }
    .iter()
    .map(|&s| s as usize)
    .collect();
  if sizes.iter().sum::<usize>() != samples.len() {
    return unsafe {
      throw(
        env,
        true,
        "trainDictionary: sizes do not add up to samples.length",
      )
    };
  }
  match catch_unwind(AssertUnwindSafe(|| {
    compress::train(samples, &sizes, max as usize)
  })) {
    Ok(Ok(dict)) => unsafe { buffer_of(env, &dict, "trainDictionary") },
    Ok(Err(e)) => unsafe { throw(env, false, &format!("trainDictionary: {e}")) },
    Err(_) => unsafe { throw(env, false, &panicked("trainDictionary")) },
  }
}

pub unsafe fn register(env: sys::napi_env, exports: sys::napi_value) -> sys::napi_status {
  let fns: [(&'static std::ffi::CStr, sys::napi_callback); 8] = [
    (c"lz4CompressInto", Some(lz4_compress_into)),
    (c"lz4DecompressInto", Some(lz4_decompress_into)),
    (c"zstdCompressInto", Some(zstd_compress_into)),
    (c"zstdDecompressInto", Some(zstd_decompress_into)),
    (c"zstdFrameDictId", Some(zstd_frame_dict_id)),
    (c"zstdLoadDict", Some(zstd_load_dict)),
    (c"zstdUnloadDict", Some(zstd_unload_dict)),
    (c"trainDictionary", Some(train_dictionary)),
  ];
  for (name, cb) in fns {
    let st = unsafe { export_fn(env, exports, name, cb) };
    if st != sys::Status::napi_ok {
      return st;
    }
  }
  sys::Status::napi_ok
}
