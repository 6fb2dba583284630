//! Starting office processes and signalling them, for rehearsals and the
//! demo (Linux: process state comes from `/proc`).
//!
//! The workspace forbids `unsafe`, so signals go through the shell's `kill`
//! (one `sh` for a whole list of pids) rather than `libc::kill`. A pid is
//! only ever signalled together with the start time recorded when it was
//! spawned, so a pid that the kernel reused for another program is left
//! alone.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A process's identity: its pid and its start time (clock ticks since
/// boot, field 22 of `/proc/PID/stat`), which together never repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessId {
    pub pid: u32,
    pub start_time: u64,
}

impl ProcessId {
    /// The identity of a running process, if it runs.
    pub fn of(pid: u32) -> Option<ProcessId> {
        stat(pid).map(|s| ProcessId { pid, start_time: s.start_time })
    }

    /// True while the process that was recorded still runs (not a zombie,
    /// and not another program that got the same pid).
    pub fn is_running(&self) -> bool {
        stat(self.pid).is_some_and(|s| s.start_time == self.start_time && !matches!(s.state, 'Z' | 'X' | 'x'))
    }
}

/// What `/proc/PID/stat` says, as far as needed here.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    pub state: char,
    pub ppid: u32,
    pub start_time: u64,
}

/// Read `/proc/PID/stat`. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted from the last `)`.
pub fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); field N is fields[N - 3].
    Some(Stat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// The pids of the live children of `parent`.
pub fn children_of(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| stat(pid).is_some_and(|s| s.ppid == parent && !matches!(s.state, 'Z' | 'X' | 'x')))
        .collect()
}

/// Send `signal` (`TERM`, `INT`, `KILL`) to every pid of `pids` at once.
/// Pids that are gone are skipped silently.
pub fn signal(signal: &str, pids: &[u32]) -> std::io::Result<()> {
    if pids.is_empty() {
        return Ok(());
    }
    Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("kill -s {signal} \"$@\" 2>/dev/null; exit 0"))
        .arg("sh")
        .args(pids.iter().map(u32::to_string))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|_| ())
}

/// Start `exe run --config CONFIG` with stdout and stderr appended to `log`.
/// `detach` puts the process in its own process group, so that it outlives
/// the terminal's Ctrl-C (rehearsals); the demo keeps its offices in its own
/// group, so that a Ctrl-C in the terminal reaches them too even if the
/// demo itself were stuck.
pub fn spawn_node(exe: &Path, config: &Path, log: &Path, detach: bool) -> std::io::Result<Child> {
    let out = File::options().create(true).append(true).open(log)?;
    let err = out.try_clone()?;
    let mut cmd = Command::new(exe);
    cmd.arg("run").arg("--config").arg(config).stdin(Stdio::null()).stdout(out).stderr(err);
    if detach {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    cmd.spawn()
}

/// The last `lines` lines of a log file, for error messages.
pub fn log_tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read(log).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_found_and_a_child_can_be_signalled() {
        let me = ProcessId::of(std::process::id()).unwrap();
        assert!(me.is_running());
        assert!(!ProcessId { start_time: me.start_time + 1, ..me }.is_running());

        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let id = ProcessId::of(child.id()).unwrap();
        assert!(children_of(std::process::id()).contains(&child.id()));
        signal("TERM", &[child.id(), u32::MAX - 1]).unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success());
        assert!(!id.is_running());
    }
}
