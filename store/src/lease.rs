//! Leases: how one runner at a time gets to drive a managed flow.
//!
//! A runner takes a lease with an expiry and renews it while it works; a second runner is refused
//! while the lease is live. A lease is given up on in two ways: it expired, or its holder is a
//! process on this host that no longer exists (so `resume` right after a kill -9 need not wait
//! for the expiry). The holder is identified by host, process id and process start time, so a
//! recycled process id is not mistaken for the old holder.
//!
//! The decision itself is the pure function [`decide`]; backends call it inside the transaction
//! that writes the new lease.

use std::fmt;
use std::time::Duration;

use crate::id::FlowId;
use crate::time::Timestamp;

/// Who holds a lease.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LeaseHolder {
    pub host: String,
    pub pid: u32,
    /// When the process started, in the operating system's own unit (clock ticks since boot on
    /// Linux); `None` where it cannot be read.
    pub process_start: Option<u64>,
}

impl LeaseHolder {
    /// This process.
    pub fn current() -> Self {
        let pid = std::process::id();
        LeaseHolder { host: host_name(), pid, process_start: process_start(pid) }
    }

    /// Whether this holder is a process on `this_host` that is known to be gone: no process
    /// with its id, one that started at another time, or one that ended and waits for its
    /// parent to collect its exit status (a zombie: a runner killed under a parent that is slow
    /// to reap it, or under a container's first process that never does). A holder on another
    /// host, or one whose liveness cannot be read here, is not known to be gone.
    pub fn is_gone(&self, this_host: &str) -> bool {
        if self.host != this_host || !cfg!(target_os = "linux") {
            return false;
        }
        match process_stat(self.pid) {
            None => !std::path::Path::new(&format!("/proc/{}", self.pid)).exists(),
            Some(Stat { ended: true, .. }) => true,
            Some(Stat { start, .. }) => {
                self.process_start.is_some_and(|recorded| recorded != start)
            }
        }
    }
}

impl fmt::Display for LeaseHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.pid)
    }
}

/// The right to drive one flow, held by one runner. Engine mutations of a managed flow present
/// it; one whose token no longer matches the stored lease is refused with
/// [`crate::Error::LeaseLost`], so a runner that was taken over cannot write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub flow_id: FlowId,
    pub token: String,
    pub holder: LeaseHolder,
    pub expires_at: Timestamp,
    /// Set when this lease replaced one that had expired or whose holder was gone.
    pub took_over: Option<Takeover>,
    /// The token of the lease it replaced then: the processes that run's steps started carry
    /// it (`TASKFLOW_RUN_TOKEN`), so that the new run can end those left behind on its host.
    pub replaced: Option<String>,
}

/// Why a previous lease was replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takeover {
    Expired,
    HolderGone,
}

/// The lease currently stored on a flow, as [`decide`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentLease {
    pub holder: LeaseHolder,
    pub expires_at: Timestamp,
}

/// The answer to "may a new runner take this flow now?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nobody holds it.
    Grant,
    /// Somebody held it, but that lease no longer counts.
    TakeOver(Takeover),
    /// A live runner holds it.
    Refuse,
}

/// Decides whether a new runner may take a flow whose stored lease is `current`.
/// `holder_gone` tells whether the current holder is known to be a dead process on this host.
pub fn decide(current: Option<&CurrentLease>, now: Timestamp, holder_gone: bool) -> Decision {
    match current {
        None => Decision::Grant,
        Some(lease) if lease.expires_at <= now => Decision::TakeOver(Takeover::Expired),
        Some(_) if holder_gone => Decision::TakeOver(Takeover::HolderGone),
        Some(_) => Decision::Refuse,
    }
}

/// The shortest lease a runner may ask for; a shorter one would expire between renewals.
pub const MIN_TTL: Duration = Duration::from_millis(100);

/// This machine's host name, read once per process.
pub fn this_host() -> &'static str {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(host_name)
}

/// Names the host a process takes itself to be on, instead of the machine's name: processes of
/// one machine with different names judge each other's leases as hosts apart do (only expiry
/// moves a flow between them), which is how tests stand in for several machines.
pub const HOST_ENV: &str = "TASKFLOW_HOST";

/// [`HOST_ENV`] when set; else this machine's host name (empty files and errors fall back to
/// `localhost`), with the process-id namespace it runs in when that is not the machine's own
/// ([`with_pid_namespace`]).
pub fn host_name() -> String {
    if let Some(named) = std::env::var(HOST_ENV).ok().map(|name| name.trim().to_owned())
        && !named.is_empty()
    {
        return named;
    }
    let machine = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|name| name.trim().to_owned())
        .chain(std::env::var("HOSTNAME").ok())
        .find(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    with_pid_namespace(machine, pid_namespace())
}

/// The inode of the machine's first process-id namespace, which Linux gives it always.
const MACHINE_PID_NAMESPACE: u64 = 0xEFFF_FFFC;

/// `machine` as the host of processes in the process-id namespace `namespace`. Processes in
/// other namespaces (containers) cannot see each other's ids, even under one host name (host
/// networking, pods named alike): a lease holder's id is only judged gone by a process of its
/// own namespace, so a namespace other than the machine's own is part of the host.
fn with_pid_namespace(machine: String, namespace: Option<u64>) -> String {
    match namespace {
        Some(namespace) if namespace != MACHINE_PID_NAMESPACE => {
            format!("{machine}/pid-ns-{namespace}")
        }
        _ => machine,
    }
}

/// The inode of this process's process-id namespace (`/proc/self/ns/pid` reads `pid:[INODE]`).
fn pid_namespace() -> Option<u64> {
    let link = std::fs::read_link("/proc/self/ns/pid").ok()?;
    let link = link.to_str()?;
    link.strip_prefix("pid:[")?.strip_suffix(']')?.parse().ok()
}

/// The start time of process `pid` in clock ticks since boot (field 22 of `/proc/PID/stat`).
fn process_start(pid: u32) -> Option<u64> {
    process_stat(pid).map(|stat| stat.start)
}

/// What `/proc/PID/stat` says of a process.
struct Stat {
    start: u64,
    /// It has ended (a zombie, or being reaped) and only its entry is left.
    ended: bool,
}

fn process_stat(pid: u32) -> Option<Stat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: skip past its end.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some(Stat { start, ended: matches!(state, "Z" | "X") })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(expires_at: i64) -> CurrentLease {
        CurrentLease {
            holder: LeaseHolder { host: "h".into(), pid: 7, process_start: Some(1) },
            expires_at: Timestamp::from_millis(expires_at),
        }
    }

    fn check(current: Option<CurrentLease>, now: i64, holder_gone: bool, expected: Decision) {
        assert_eq!(
            decide(current.as_ref(), Timestamp::from_millis(now), holder_gone),
            expected,
            "current {current:?}, now {now}, holder gone {holder_gone}"
        );
    }

    #[test]
    fn who_may_take_a_flow() {
        check(None, 100, false, Decision::Grant);
        check(None, 100, true, Decision::Grant);
        check(Some(lease(200)), 100, false, Decision::Refuse);
        check(Some(lease(200)), 199, false, Decision::Refuse);
        check(Some(lease(200)), 200, false, Decision::TakeOver(Takeover::Expired));
        check(Some(lease(200)), 900, false, Decision::TakeOver(Takeover::Expired));
        check(Some(lease(200)), 100, true, Decision::TakeOver(Takeover::HolderGone));
        check(Some(lease(200)), 900, true, Decision::TakeOver(Takeover::Expired));
    }

    #[test]
    fn this_process_is_alive_and_a_dead_or_recycled_one_is_gone() {
        let me = LeaseHolder::current();
        assert!(!me.is_gone(&me.host));
        if cfg!(target_os = "linux") {
            assert!(me.process_start.is_some());
            // A pid above the kernel's maximum (2^22) never exists.
            let dead = LeaseHolder { pid: 4_194_304 + 17, ..me.clone() };
            assert!(dead.is_gone(&me.host));
            let recycled =
                LeaseHolder { process_start: me.process_start.map(|s| s + 1), ..me.clone() };
            assert!(recycled.is_gone(&me.host));
        }
        let elsewhere = LeaseHolder { host: format!("{}-other", me.host), pid: 4_194_321, ..me };
        assert!(!elsewhere.is_gone(&host_name()), "another host's process is never judged");
    }

    #[test]
    fn a_process_id_namespace_other_than_the_machines_is_part_of_the_host() {
        let machine = || "web-1".to_owned();
        assert_eq!(with_pid_namespace(machine(), Some(MACHINE_PID_NAMESPACE)), "web-1");
        assert_eq!(with_pid_namespace(machine(), None), "web-1");
        assert_eq!(with_pid_namespace(machine(), Some(4026532211)), "web-1/pid-ns-4026532211");
        if cfg!(target_os = "linux") {
            assert!(pid_namespace().is_some(), "this process's namespace is read");
        }
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_process_killed_and_not_yet_reaped_is_gone() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        let holder = LeaseHolder { host: host_name(), pid, process_start: process_start(pid) };
        assert!(!holder.is_gone(&holder.host), "it runs");
        child.kill().unwrap();
        // Not waited for: it stays a zombie, its entry in /proc with it.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !holder.is_gone(&holder.host) {
            assert!(std::time::Instant::now() < deadline, "a zombie is taken for alive");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists(), "reaped too soon");
        child.wait().unwrap();
    }
}
