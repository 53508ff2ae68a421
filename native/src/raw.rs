//! Small helpers for the hand-written Node-API callbacks (decoder_class.rs, encode_fns.rs).
use std::ffi::{c_char, c_void, CStr};
use std::ptr;

use napi::sys;

/// Throws `msg` as a TypeError (or RangeError) and returns the napi "no value".
pub unsafe fn throw(env: sys::napi_env, range: bool, msg: &str) -> sys::napi_value {
  let mut text = msg.as_bytes().to_vec();
  text.push(0);
  let msg = text.as_ptr() as *const c_char;
  unsafe {
    if range {
      sys::napi_throw_range_error(env, ptr::null(), msg);
    } else {
      sys::napi_throw_type_error(env, ptr::null(), msg);
    }
  }
  ptr::null_mut()
}

/// `this` and up to N arguments (missing ones are `undefined`).
pub unsafe fn args<const N: usize>(
  env: sys::napi_env,
  info: sys::napi_callback_info,
) -> Option<(sys::napi_value, [sys::napi_value; N])> {
  let mut argc = N;
  let mut argv = [ptr::null_mut(); N];
  let mut this = ptr::null_mut();
  let st = unsafe {
    sys::napi_get_cb_info(
      env,
      info,
      &mut argc,
      argv.as_mut_ptr(),
      &mut this,
      ptr::null_mut(),
    )
  };
  (st == sys::Status::napi_ok).then_some((this, argv))
}

/// Bytes of any ArrayBufferView. napi_get_buffer_info is used rather than
/// napi_get_typedarray_info, whose element-type probe (up to 11 V8 type checks) cost
/// more than the rest of a small feed; the element type is left to the TypeScript types.
pub unsafe fn view(env: sys::napi_env, v: sys::napi_value) -> Option<(*mut u8, usize)> {
  let mut len = 0usize;
  let mut data: *mut c_void = ptr::null_mut();
  if unsafe { sys::napi_get_buffer_info(env, v, &mut data, &mut len) } != sys::Status::napi_ok {
    return None;
  }
  // Empty views may report a null pointer; slices need a non-null one.
  Some((
    if len == 0 {
      ptr::NonNull::dangling().as_ptr()
    } else {
      data as *mut u8
    },
    len,
  ))
}

/// A Uint32Array's elements (start must be 4-byte aligned, as every Uint32Array's is).
pub unsafe fn u32_view(env: sys::napi_env, v: sys::napi_value) -> Option<(*mut u32, usize)> {
  let (p, bytes) = unsafe { view(env, v) }?;
  if bytes == 0 {
    // view() stands in a dangling u8 pointer, which is not aligned for u32.
    return Some((ptr::NonNull::dangling().as_ptr(), 0));
  }
  ((p as usize).is_multiple_of(4) && bytes.is_multiple_of(4)).then_some((p as *mut u32, bytes / 4))
}

/// A new Node Buffer of `len` bytes (zero-filled by Node) and its bytes.
pub unsafe fn new_buffer<'a>(env: sys::napi_env, len: usize) -> Option<(sys::napi_value, &'a mut [u8])> {
  let mut data: *mut c_void = ptr::null_mut();
  let mut value = ptr::null_mut();
  if unsafe { sys::napi_create_buffer(env, len, &mut data, &mut value) } != sys::Status::napi_ok {
    return None;
  }
  // SAFETY: Node returned `len` writable bytes owned by `value`, which outlives this call.
  let bytes = if len == 0 {
    &mut [][..]
  } else {
    unsafe { std::slice::from_raw_parts_mut(data as *mut u8, len) }
  };
  Some((value, bytes))
}

/// exports[name] = function(cb).
pub unsafe fn export_fn(
  env: sys::napi_env,
  exports: sys::napi_value,
  name: &'static CStr,
  cb: sys::napi_callback,
) -> sys::napi_status {
  let mut f = ptr::null_mut();
  let len = name.count_bytes() as isize;
  let st = unsafe { sys::napi_create_function(env, name.as_ptr(), len, cb, ptr::null_mut(), &mut f) };
  if st != sys::Status::napi_ok {
    return st;
  }
  unsafe { sys::napi_set_named_property(env, exports, name.as_ptr(), f) }
}
