//! `FrameDecoder`, the JS class around decoder::Decoder, written against raw Node-API.
//!
//! Why not `#[napi] impl`: napi-rs 3.16 wraps every method call in borrow-tracking
//! (a global Mutex<HashMap>, Arc allocations, class-identity lookups) that measured
//! ~450 ns per `feed` here, against ~30 ns for the calls themselves; `feed` runs once
//! per socket read, so it is written by hand. `napi_define_class` gives the methods a
//! V8 receiver signature, so `napi_unwrap` can only return our own `Decoder`.
//! Its types are in native/bindings.d.ts (prepended to the generated index.d.ts).
use std::ffi::{c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use napi::bindgen_prelude::{Buffer, ToNapiValue};
use napi::sys;

use crate::decoder::Decoder;
use crate::raw::{args, throw, u32_view, view};

unsafe fn unwrap<'a>(env: sys::napi_env, this: sys::napi_value) -> Option<&'a mut Decoder> {
  let mut data: *mut c_void = ptr::null_mut();
  let st = unsafe { sys::napi_unwrap(env, this, &mut data) };
  // SAFETY: only `construct` wraps, always with a Box<Decoder>; the class signature keeps
  // other receivers out, and JS is single-threaded so the &mut is exclusive for the call.
  (st == sys::Status::napi_ok && !data.is_null()).then(|| unsafe { &mut *(data as *mut Decoder) })
}

unsafe extern "C" fn finalize(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
  drop(unsafe { Box::from_raw(data as *mut Decoder) });
}

unsafe extern "C" fn construct(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
  let Some((this, [max])) = (unsafe { args::<1>(env, info) }) else {
    return ptr::null_mut();
  };
  // Without `new`, `this` would be the global object, which we must not wrap.
  let mut new_target = ptr::null_mut();
  if unsafe { sys::napi_get_new_target(env, info, &mut new_target) } != sys::Status::napi_ok
    || new_target.is_null()
  {
    return unsafe {
      throw(
        env,
        false,
        "Class constructor FrameDecoder cannot be invoked without 'new'",
      )
    };
  }
  let mut max_frame = 0f64;
  if unsafe { sys::napi_get_value_double(env, max, &mut max_frame) } != sys::Status::napi_ok {
    return unsafe { throw(env, false, "FrameDecoder(maxFrame): maxFrame must be a number") };
  }
  if !(max_frame >= 0.0 && max_frame <= f64::from(u32::MAX) && max_frame.fract() == 0.0) {
    return unsafe {
      throw(
        env,
        true,
        "FrameDecoder(maxFrame): maxFrame must be an integer in [0, 2^32)",
      )
    };
  }
  let raw = Box::into_raw(Box::new(Decoder::new(max_frame as u32)));
  let st = unsafe {
    sys::napi_wrap(
      env,
      this,
      raw.cast(),
      Some(finalize),
      ptr::null_mut(),
      ptr::null_mut(),
    )
  };
  if st != sys::Status::napi_ok {
    drop(unsafe { Box::from_raw(raw) });
    return unsafe { throw(env, false, "FrameDecoder: napi_wrap failed") };
  }
  this
}

unsafe extern "C" fn feed(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
  let Some((this, [chunk, out])) = (unsafe { args::<2>(env, info) }) else {
    return ptr::null_mut();
  };
  let Some(dec) = (unsafe { unwrap(env, this) }) else {
    return unsafe { throw(env, false, "feed: receiver is not a FrameDecoder") };
  };
  let Some((cp, clen)) = (unsafe { view(env, chunk) }) else {
    return unsafe { throw(env, false, "feed: chunk must be a Uint8Array") };
  };
  let Some((op, olen)) = (unsafe { u32_view(env, out) }) else {
    return unsafe { throw(env, false, "feed: out must be a Uint32Array") };
  };
  let (c0, o0) = (cp as usize, op as usize);
  if clen > 0 && olen > 0 && c0 < o0 + 4 * olen && o0 < c0 + clen {
    return unsafe { throw(env, false, "feed: out overlaps chunk") };
  }
  // SAFETY: both views are live for this synchronous call, aligned, and do not overlap.
  let (chunk, out) = unsafe {
    (
      std::slice::from_raw_parts(cp, clen),
      std::slice::from_raw_parts_mut(op, olen),
    )
  };
  match catch_unwind(AssertUnwindSafe(|| dec.feed(chunk, out))) {
    Ok(Ok(())) => ptr::null_mut(),
    Ok(Err(e)) => unsafe {
      throw(
        env,
        true,
        &format!(
          "feed: out has {} slots, a chunk of {} bytes needs {}",
          e.have, clen, e.need
        ),
      )
    },
    Err(_) => unsafe { throw(env, false, "feed: internal error (panic in the native decoder)") },
  }
}

unsafe extern "C" fn take_spill(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
  let Some((this, [])) = (unsafe { args::<0>(env, info) }) else {
    return ptr::null_mut();
  };
  let Some(dec) = (unsafe { unwrap(env, this) }) else {
    return unsafe { throw(env, false, "takeSpill: receiver is not a FrameDecoder") };
  };
  let Some(spill) = dec.take_spill() else {
    return unsafe { throw(env, false, "takeSpill: no spilled payload") };
  };
  // The Vec becomes an external Buffer: handed over, not copied.
  match unsafe { Buffer::to_napi_value(env, Buffer::from(spill)) } {
    Ok(v) => v,
    Err(_) => unsafe { throw(env, false, "takeSpill: could not create the Buffer") },
  }
}

/// takeSpillInto(dst): copy the spill into a JS-allocated buffer. For small payloads
/// this beats takeSpill: Buffer.allocUnsafe takes from Node's pool (~100 ns) while an
/// external Buffer costs ~2 us to create and finalize.
unsafe extern "C" fn take_spill_into(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
  let Some((this, [dst])) = (unsafe { args::<1>(env, info) }) else {
    return ptr::null_mut();
  };
  let Some(dec) = (unsafe { unwrap(env, this) }) else {
    return unsafe { throw(env, false, "takeSpillInto: receiver is not a FrameDecoder") };
  };
  let Some((p, len)) = (unsafe { view(env, dst) }) else {
    return unsafe { throw(env, false, "takeSpillInto: dst must be a Uint8Array") };
  };
  // SAFETY: a live view for this call; the spill is Rust-owned, so they cannot overlap.
  let dst = unsafe { std::slice::from_raw_parts_mut(p, len) };
  match dec.take_spill_into(dst) {
    Ok(()) => ptr::null_mut(),
    Err(None) => unsafe { throw(env, false, "takeSpillInto: no spilled payload") },
    Err(Some(need)) => unsafe {
      throw(
        env,
        true,
        &format!("takeSpillInto: dst has {len} bytes, the payload {need}"),
      )
    },
  }
}

unsafe extern "C" fn pending(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
  let Some((this, [])) = (unsafe { args::<0>(env, info) }) else {
    return ptr::null_mut();
  };
  let Some(dec) = (unsafe { unwrap(env, this) }) else {
    return unsafe { throw(env, false, "pending: receiver is not a FrameDecoder") };
  };
  let mut v = ptr::null_mut();
  unsafe { sys::napi_create_uint32(env, dec.pending() as u32, &mut v) };
  v
}

unsafe extern "C" fn reset(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
  let Some((this, [])) = (unsafe { args::<0>(env, info) }) else {
    return ptr::null_mut();
  };
  let Some(dec) = (unsafe { unwrap(env, this) }) else {
    return unsafe { throw(env, false, "reset: receiver is not a FrameDecoder") };
  };
  dec.reset();
  ptr::null_mut()
}

fn method(name: &'static CStr, cb: sys::napi_callback) -> sys::napi_property_descriptor {
  sys::napi_property_descriptor {
    utf8name: name.as_ptr(),
    name: ptr::null_mut(),
    method: cb,
    getter: None,
    setter: None,
    value: ptr::null_mut(),
    attributes: sys::PropertyAttributes::writable | sys::PropertyAttributes::configurable,
    data: ptr::null_mut(),
  }
}

/// Define the class and set it as `exports.FrameDecoder`.
pub unsafe fn register(env: sys::napi_env, exports: sys::napi_value) -> sys::napi_status {
  let mut getter = method(c"pending", None);
  getter.getter = Some(pending);
  getter.attributes = sys::PropertyAttributes::configurable;
  let props = [
    method(c"feed", Some(feed)),
    method(c"takeSpill", Some(take_spill)),
    method(c"takeSpillInto", Some(take_spill_into)),
    method(c"reset", Some(reset)),
    getter,
  ];
  let name = c"FrameDecoder";
  let mut class = ptr::null_mut();
  let st = unsafe {
    sys::napi_define_class(
      env,
      name.as_ptr(),
      name.count_bytes() as isize,
      Some(construct),
      ptr::null_mut(),
      props.len(),
      props.as_ptr(),
      &mut class,
    )
  };
  if st != sys::Status::napi_ok {
    return st;
  }
  unsafe { sys::napi_set_named_property(env, exports, name.as_ptr(), class) }
}
