//! Hands free malloc memory back to the kernel (glibc malloc_trim(0)). glibc keeps freed
//! chunks resident: sessions that come and go (raw TCP sockets, TLS, request buffers) leave
//! whole free pages inside the heap and the per-thread arenas that count in RSS until a
//! later allocation reuses them. malloc_trim(0) releases the top of each arena and, since
//! glibc 2.8, madvise(MADV_DONTNEED)s every whole free page inside them; the address space
//! stays reserved, so a later allocation there is a page fault, not a syscall.
use napi::bindgen_prelude::AsyncTask;
use napi::{Env, Task};
use napi_derive::napi;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn trim() -> bool {
  extern "C" {
    fn malloc_trim(pad: usize) -> i32;
  }
  // SAFETY: malloc_trim takes each arena's lock itself; it is safe from any thread.
  unsafe { malloc_trim(0) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim() -> bool {
  false
}

// Used only through the binding, which test builds do not register.
#[cfg_attr(test, allow(dead_code))]
pub struct Trim;

impl Task for Trim {
  type Output = f64;
  type JsValue = f64;

  fn compute(&mut self) -> napi::Result<f64> {
    let start = std::time::Instant::now();
    let released = trim();
    let secs = start.elapsed().as_secs_f64();
    Ok(if released { secs } else { -secs })
  }

  fn resolve(&mut self, _env: Env, output: f64) -> napi::Result<f64> {
    Ok(output)
  }
}

/// Trims on a libuv pool thread (a trim walks every free chunk: tens of ms on a heap of
/// hundreds of MB, which the event loop must not wait for). Resolves to the seconds the
/// trim took, negated when nothing was returned to the kernel (or on a C library without
/// malloc_trim: musl, other systems).
#[napi(js_name = "mallocTrim")]
#[cfg_attr(test, allow(dead_code))]
pub fn malloc_trim() -> AsyncTask<Trim> {
  AsyncTask::new(Trim)
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
  #[test]
  fn trimming_after_frees_returns_memory() {
    // Small chunks (below the mmap threshold) with every 16th kept: the rest leave whole
    // free pages inside the heap for the trim to hand back.
    let mut v: Vec<Vec<u8>> = (0..20_000).map(|_| vec![1u8; 1000]).collect();
    let kept: Vec<Vec<u8>> = v.drain(..).step_by(16).collect();
    assert!(super::trim(), "some memory went back to the kernel");
    assert_eq!(kept.len(), 1250);
  }
}
