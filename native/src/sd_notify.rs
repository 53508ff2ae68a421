//! sd_notify(3) without libsystemd: one datagram to the unix socket systemd names in
//! $NOTIFY_SOCKET (a path, or `@name` for an abstract socket). Not a hot path, so the
//! binding uses napi-rs's own argument handling.
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use napi_derive::napi;

/// Bounds the one case where sending can block: the receiver's queue is full.
const SEND_TIMEOUT: Duration = Duration::from_millis(500);

/// The address `$NOTIFY_SOCKET` names: `/path` or `@abstract` (vsock is not supported).
pub fn notify_addr(spec: &str) -> io::Result<SocketAddr> {
  if let Some(name) = spec.strip_prefix('@') {
    SocketAddr::from_abstract_name(name.as_bytes())
  } else if spec.starts_with('/') {
    SocketAddr::from_pathname(spec)
  } else {
    Err(io::Error::new(
      io::ErrorKind::InvalidInput,
      format!("NOTIFY_SOCKET {spec:?} is neither a path nor @abstract"),
    ))
  }
}

/// Sends `state` (newline-separated `KEY=value` lines) as one datagram to `spec`.
pub fn notify_to(spec: &str, state: &str) -> io::Result<()> {
  let addr = notify_addr(spec)?;
  let sock = UnixDatagram::unbound()?;
  sock.set_write_timeout(Some(SEND_TIMEOUT))?;
  let sent = sock.send_to_addr(state.as_bytes(), &addr)?;
  if sent != state.len() {
    return Err(io::Error::new(io::ErrorKind::WriteZero, "short datagram"));
  }
  Ok(())
}

/// Tells the service manager `state`. False when $NOTIFY_SOCKET is unset or empty (not
/// run by systemd with Type=notify) or the datagram could not be sent.
#[napi(js_name = "sdNotify")]
#[cfg_attr(test, allow(dead_code))]
pub fn sd_notify(state: String) -> bool {
  match std::env::var("NOTIFY_SOCKET") {
    Ok(spec) if !spec.is_empty() => notify_to(&spec, &state).is_ok(),
    _ => false,
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn recv(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 256];
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let n = sock.recv(&mut buf).unwrap();
    String::from_utf8(buf[..n].to_vec()).unwrap()
  }

  #[test]
  fn sends_to_a_path_socket() {
    let dir = std::env::temp_dir().join(format!("moor-sd-notify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&path);
    let rx = UnixDatagram::bind(&path).unwrap();
    notify_to(path.to_str().unwrap(), "READY=1\nSTATUS=up").unwrap();
    assert_eq!(recv(&rx), "READY=1\nSTATUS=up");
    std::fs::remove_dir_all(&dir).unwrap();
  }

  #[test]
  fn sends_to_an_abstract_socket() {
    let name = format!("moor-sd-notify-test-{}", std::process::id());
    let rx = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
    notify_to(&format!("@{name}"), "WATCHDOG=1").unwrap();
    assert_eq!(recv(&rx), "WATCHDOG=1");
  }

  #[test]
  fn refuses_other_addresses_and_reports_a_missing_socket() {
    assert!(notify_to("vsock:2:1234", "READY=1").is_err());
    assert!(notify_to("/nonexistent/moor/notify.sock", "READY=1").is_err());
  }
}
