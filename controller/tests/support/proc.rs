//! Process and port helpers shared by the servers.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// How long a server may take to accept connections.
const READY: Duration = Duration::from_secs(20);

pub use gitseal_testenv::e2e::free_port;

/// Waits until `port` accepts connections; panics (with the server's log) if `child` exits
/// first or it takes too long.
pub fn wait_port(port: u16, child: &mut Child, what: &str, log: &Path) {
    let deadline = Instant::now() + READY;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited ({status}) before listening on {port}: {}",
                read_log(log)
            );
        }
        if Instant::now() > deadline {
            panic!(
                "{what} not listening on {port} after {READY:?}: {}",
                read_log(log)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn read_log(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// A server process: killed and reaped on drop.
#[derive(Debug)]
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
