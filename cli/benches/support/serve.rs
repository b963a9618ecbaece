//! `taskflow serve` as the benches run it: the real binary on a free loopback port, with no
//! config file, killed when dropped; and what /proc says about a process's CPU and memory.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_taskflow");

pub struct Serve {
    pub child: Child,
    /// `http://ADDR`.
    pub url: String,
}

impl Serve {
    pub fn start(db: &Path) -> Serve {
        let mut child = Command::new(BIN)
            .arg("--db")
            .arg(db)
            .args(["--owner", "bench", "serve", "--listen", "127.0.0.1:0"])
            .env_remove("TASKFLOW_OWNER")
            .env("TASKFLOW_CONFIG", "/dev/null")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the taskflow binary starts");
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        let url = first.trim().strip_prefix("listening on ").expect("serve started").to_owned();
        Serve { child, url }
    }

    /// CPU time the serve process used so far (None where /proc is missing).
    pub fn cpu(&self) -> Option<Duration> {
        cpu_of(&self.child.id().to_string())
    }

    /// Resident memory, from /proc (None elsewhere).
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// User plus system CPU time of a process so far, from `/proc/PID/stat` (in USER_HZ ticks,
/// which Linux fixes at 100 per second for user space).
pub fn cpu_of(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let user: u64 = fields.nth(11)?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((user + system) * 10))
}
