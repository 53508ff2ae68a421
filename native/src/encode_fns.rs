//! `encodeFrame` and `encodeFrames`, hand-written against raw Node-API: napi-rs's
//! argument conversion added a borrow-tracking registration per payload (~300 ns), more
//! than encoding a small frame costs. One call, one output buffer.
use std::ptr;

use napi::sys;

use crate::encoder::{frame_size, write_frame};
use crate::raw::{args, export_fn, new_buffer, throw, u32_view, view};

/// A JS number that is an integer in [0, 2^32).
unsafe fn u32_arg(env: sys::napi_env, v: sys::napi_value) -> Option<u32> {
  let mut d = 0f64;
  let ok = unsafe { sys::napi_get_value_double(env, v, &mut d) } == sys::Status::napi_ok;
  (ok && d >= 0.0 && d <= f64::from(u32::MAX) && d.fract() == 0.0).then_some(d as u32)
}

/// The low 8 bits of a number, as a Uint8Array store keeps them.
unsafe fn u8_arg(env: sys::napi_env, v: sys::napi_value) -> Option<u8> {
  let mut i = 0i32;
  (unsafe { sys::napi_get_value_int32(env, v, &mut i) } == sys::Status::napi_ok).then_some(i as u8)
}

unsafe extern "C" fn encode_frame(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
  let Some((_, [ty, flags, stream, payload])) = (unsafe { args::<4>(env, info) }) else {
    return ptr::null_mut();
  };
  let (Some(ty), Some(flags)) = (unsafe { (u8_arg(env, ty), u8_arg(env, flags)) }) else {
    return unsafe { throw(env, false, "encodeFrame: type and flags must be numbers") };
  };
  let Some(stream) = (unsafe { u32_arg(env, stream) }) else {
    return unsafe { throw(env, true, "encodeFrame: stream must be an integer in [0, 2^32)") };
  };
  let mut kind = 0;
  unsafe { sys::napi_typeof(env, payload, &mut kind) };
  let (p, len) = if kind == sys::ValueType::napi_undefined {
    (ptr::NonNull::<u8>::dangling().as_ptr(), 0)
  } else {
    match unsafe { view(env, payload) } {
      Some(v) => v,
      None => return unsafe { throw(env, false, "encodeFrame: payload must be a Uint8Array") },
    }
  };
  // SAFETY: a live view for this call; the output is a fresh buffer, so no overlap.
  let payload = unsafe { std::slice::from_raw_parts(p as *const u8, len) };
  let Some((value, out)) = (unsafe { new_buffer(env, frame_size(stream, len)) }) else {
    return unsafe { throw(env, false, "encodeFrame: could not allocate the output") };
  };
  write_frame(out, 0, ty, flags, stream, payload);
  value
}

unsafe extern "C" fn encode_frames(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
  let Some((_, [headers, payloads])) = (unsafe { args::<2>(env, info) }) else {
    return ptr::null_mut();
  };
  let Some((hp, hlen)) = (unsafe { u32_view(env, headers) }) else {
    return unsafe { throw(env, false, "encodeFrames: headers must be a Uint32Array") };
  };
  let mut n = 0u32;
  if unsafe { sys::napi_get_array_length(env, payloads, &mut n) } != sys::Status::napi_ok {
    return unsafe { throw(env, false, "encodeFrames: payloads must be an array") };
  }
  let n = n as usize;
  if hlen != 3 * n {
    return unsafe {
      throw(
        env,
        true,
        &format!("encodeFrames: {hlen} header slots for {n} payloads (need 3 each)"),
      )
    };
  }
  // SAFETY: a live, aligned Uint32Array for the duration of this call.
  let headers = unsafe { std::slice::from_raw_parts(hp as *const u32, hlen) };
  let mut parts: Vec<(*const u8, usize)> = Vec::with_capacity(n);
  let mut total = 0usize;
  for i in 0..n {
    let mut el = ptr::null_mut();
    if unsafe { sys::napi_get_element(env, payloads, i as u32, &mut el) } != sys::Status::napi_ok {
      return ptr::null_mut();
    }
    let Some((p, len)) = (unsafe { view(env, el) }) else {
      return unsafe {
        throw(
          env,
          false,
          &format!("encodeFrames: payloads[{i}] is not a Uint8Array"),
        )
      };
    };
    total += frame_size(headers[3 * i + 2], len);
    parts.push((p, len));
  }
  let Some((value, out)) = (unsafe { new_buffer(env, total) }) else {
    return unsafe { throw(env, false, "encodeFrames: could not allocate the output") };
  };
  let mut pos = 0;
  for (i, &(p, len)) in parts.iter().enumerate() {
    // SAFETY: payload views stay alive (held by the `payloads` array) during this call;
    // the output is a fresh buffer, so they cannot overlap it.
    let payload = unsafe { std::slice::from_raw_parts(p, len) };
    pos = write_frame(
      out,
      pos,
      headers[3 * i] as u8,
      headers[3 * i + 1] as u8,
      headers[3 * i + 2],
      payload,
    );
  }
  value
}

pub unsafe fn register(env: sys::napi_env, exports: sys::napi_value) -> sys::napi_status {
  match unsafe { export_fn(env, exports, c"encodeFrame", Some(encode_frame)) } {
    sys::Status::napi_ok => unsafe { export_fn(env, exports, c"encodeFrames", Some(encode_frames)) },
    st => st,
  }
}
