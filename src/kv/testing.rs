//! Test helpers: a throwaway redis-server for the unit tests of the
//! modules that use the store (the sessions, the token cache).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A throwaway redis-server; its directory lives as long as it.
pub struct Redis(Child, #[allow(dead_code)] tempfile::TempDir);
impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
impl Redis {
    pub fn start(port: u16) -> Redis {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--dir", dir.path().to_str().unwrap()])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server");
        let t0 = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(10), "redis-server");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis(child, dir)
    }
    /// Stops answering (SIGSTOP) without losing its data.
    pub fn pause(&self, stop: bool) {
        let sig = if stop { "-STOP" } else { "-CONT" };
        let ok = Command::new("kill")
            .args([sig, &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }
}
