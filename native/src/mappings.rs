//! Drops this process's page-table entries for a shared file mapping (madvise
//! MADV_DONTNEED), so pages of the store file that a worker once read stop counting in its
//! RSS. The pages stay in the kernel's page cache, counted once for the machine; the next
//! read of one is a minor fault. lmdb maps its data file read-only and shared (without
//! MDB_WRITEMAP), where this is safe while other threads read: "subsequent accesses of pages
//! in the range will succeed, but will result in repopulating the memory contents from the
//! up-to-date contents of the underlying mapped file" (madvise(2)). Private mappings are
//! never touched: there it would discard data.
use napi_derive::napi;

/// (start, length) of every shared mapping of `path` in a /proc/<pid>/maps text.
pub fn shared_mappings_of(maps: &str, path: &str) -> Vec<(usize, usize)> {
  let mut out = Vec::new();
  for line in maps.lines() {
    // "start-end perms offset dev inode<spaces>path"
    let mut fields = line.splitn(6, ' ');
    let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
      continue;
    };
    let Some(rest) = fields.nth(3) else { continue };
    if rest.trim_start() != path || perms.as_bytes().get(3) != Some(&b's') {
      continue;
    }
    let Some((a, b)) = range.split_once('-') else {
      continue;
    };
    let (Ok(start), Ok(end)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) else {
      continue;
    };
    if end > start {
      out.push((start, end - start));
    }
  }
  out
}

#[cfg(target_os = "linux")]
fn dont_need(start: usize, len: usize) -> bool {
  extern "C" {
    fn madvise(addr: *mut std::ffi::c_void, len: usize, advice: i32) -> i32;
  }
  const MADV_DONTNEED: i32 = 4;
  // SAFETY: the range is a whole shared file mapping of this process, read from
  // /proc/self/maps; MADV_DONTNEED on it only drops page-table entries (see the top).
  unsafe { madvise(start as *mut std::ffi::c_void, len, MADV_DONTNEED) == 0 }
}

#[cfg(not(target_os = "linux"))]
fn dont_need(_start: usize, _len: usize) -> bool {
  false
}

/// Releases this process's resident pages of every shared mapping of `path` (an absolute,
/// symlink-free path as /proc/self/maps shows it). Returns the bytes of address space
/// advised, 0 when the file is not mapped or on a platform without /proc.
#[napi(js_name = "releaseFileMapping")]
pub fn release_file_mapping(path: String) -> f64 {
  let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
    return 0.0;
  };
  let mut bytes = 0usize;
  for (start, len) in shared_mappings_of(&maps, &path) {
    if dont_need(start, len) {
      bytes += len;
    }
  }
  bytes as f64
}

#[cfg(test)]
mod tests {
  use super::*;

  const MAPS: &str = "\
55d0c0a00000-55d0c0a21000 r--p 00000000 08:01 131 /usr/bin/node
7f0000000000-7f1000000000 r--s 00000000 08:01 4242                       /tmp/s/lmdb/data.mdb
7f2000000000-7f2000001000 rw-p 00000000 08:01 4242                       /tmp/s/lmdb/data.mdb
7f3000000000-7f3000002000 r--s 00000000 08:01 4243                       /tmp/s/lmdb/data.mdb.bak
7f4000000000-7f4000002000 rw-s 00000000 00:05 9                          /tmp/s/lmdb/data.mdb (deleted)
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
";

  #[test]
  fn finds_only_shared_mappings_of_exactly_that_file() {
    assert_eq!(
      shared_mappings_of(MAPS, "/tmp/s/lmdb/data.mdb"),
      vec![(0x7f00_0000_0000, 0x10_0000_0000)]
    );
    assert!(shared_mappings_of(MAPS, "/tmp/s/lmdb").is_empty());
    assert!(shared_mappings_of("garbage\n\n1-2 r--s", "/x").is_empty());
  }

  /// Rss in kB of the mapping that starts at `start` (/proc/self/smaps).
  fn rss_kb(start: usize) -> usize {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let head = format!("{start:x}-");
    let block = smaps.split('\n').skip_while(|l| !l.starts_with(&head)).skip(1);
    let line = block
      .take_while(|l| !l.contains('-') || l.contains(':'))
      .find(|l| l.starts_with("Rss:"))
      .unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
  }

  #[test]
  fn releasing_a_mapped_file_keeps_its_contents() {
    use std::io::Write;
    let path = std::env::temp_dir().join(format!("moor-map-{}", std::process::id()));
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(&vec![7u8; 1 << 20]).unwrap();
    drop(f);
    // Map it shared and read-only through the C library, as lmdb does.
    extern "C" {
      fn mmap(a: *mut std::ffi::c_void, l: usize, p: i32, f: i32, fd: i32, o: i64) -> *mut std::ffi::c_void;
      fn munmap(a: *mut std::ffi::c_void, l: usize) -> i32;
    }
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(&path).unwrap();
    let (prot_read, map_shared) = (1, 1);
    let p = unsafe {
      mmap(
        std::ptr::null_mut(),
        1 << 20,
        prot_read,
        map_shared,
        file.as_raw_fd(),
        0,
      )
    };
    assert!(!p.is_null() && p as isize != -1);
    let bytes = unsafe { std::slice::from_raw_parts(p as *const u8, 1 << 20) };
    assert_eq!(bytes.iter().map(|&b| b as usize).sum::<usize>(), 7 << 20);
    assert_eq!(rss_kb(p as usize), 1024, "read: all resident");
    let real = std::fs::canonicalize(&path).unwrap();
    assert_eq!(
      release_file_mapping(real.to_string_lossy().into_owned()),
      (1u64 << 20) as f64
    );
    assert_eq!(rss_kb(p as usize), 0, "released: none resident in this process");
    // Still readable, same contents (repopulated from the page cache).
    assert_eq!(bytes.iter().map(|&b| b as usize).sum::<usize>(), 7 << 20);
    unsafe { munmap(p, 1 << 20) };
    std::fs::remove_file(&path).unwrap();
  }
}
