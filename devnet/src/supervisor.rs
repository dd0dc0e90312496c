//! The node processes of a running devnet, and what can be done to them:
//! kill (SIGKILL), restart, pause (SIGSTOP), resume (SIGCONT), partition
//! and heal, stop (SIGTERM).
//!
//! Partitions need no root: every devnet node runs with the API's admin
//! endpoints on, and a partition tells each node which peer ids to refuse
//! (its libp2p allow-list drops them and their connections); healing allows
//! them again. Traffic between the two sides stops at the application's
//! network layer, which is what consensus sees.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::DevnetError;
use crate::client::Api;
use crate::layout::{Layout, Manifest};

/// What a node process is doing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeState {
    /// Running.
    Running,
    /// Stopped with SIGSTOP.
    Paused,
    /// Killed with SIGKILL.
    Killed,
    /// Stopped cleanly.
    Stopped,
    /// Exited by itself.
    Exited(String),
}

impl std::fmt::Display for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeState::Running => f.write_str("running"),
            NodeState::Paused => f.write_str("paused"),
            NodeState::Killed => f.write_str("killed"),
            NodeState::Stopped => f.write_str("stopped"),
            NodeState::Exited(how) => write!(f, "exited ({how})"),
        }
    }
}

struct Process {
    child: Option<Child>,
    state: NodeState,
}

/// The devnet's node processes.
pub struct Supervisor {
    layout: Layout,
    cairn: PathBuf,
    manifest: Manifest,
    procs: Vec<Process>,
}

fn signal(pid: u32, sig: &str) -> Result<(), DevnetError> {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .map_err(|e| DevnetError::io(std::path::Path::new("kill"), &e))?;
    if status.success() {
        Ok(())
    } else {
        Err(DevnetError::Command {
            command: format!("kill -{sig} {pid}"),
            output: status.to_string(),
        })
    }
}

impl Supervisor {
    /// A supervisor of the devnet in `layout`, starting nodes with the `cairn` binary.
    pub fn new(layout: Layout, cairn: PathBuf) -> Result<Supervisor, DevnetError> {
        let manifest = layout.manifest()?;
        let procs = manifest
            .nodes
            .iter()
            .map(|_| Process {
                child: None,
                state: NodeState::Stopped,
            })
            .collect();
        Ok(Supervisor {
            layout,
            cairn,
            manifest,
            procs,
        })
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.procs.len()
    }

    /// Whether there is no node.
    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    /// Node `i`'s API.
    pub fn api(&self, i: usize) -> Api {
        Api::new(self.manifest.nodes[i].api())
    }

    /// Node `i`'s state.
    pub fn state(&self, i: usize) -> NodeState {
        self.procs[i].state.clone()
    }

    /// Node `i`'s process id, while it has one.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.procs[i].child.as_ref().map(Child::id)
    }

    fn check(&self, i: usize) -> Result<(), DevnetError> {
        if i >= self.procs.len() {
            return Err(DevnetError::BadCommand(format!(
                "there is no node {i}; nodes are 0 to {}",
                self.procs.len().saturating_sub(1)
            )));
        }
        Ok(())
    }

    /// Starts node `i` (its log is appended to `logs/nodeI.log`).
    pub fn start(&mut self, i: usize) -> Result<(), DevnetError> {
        self.check(i)?;
        if self.procs[i].child.is_some() {
            return Err(DevnetError::BadCommand(format!(
                "node {i} is already running"
            )));
        }
        let log_path = self.layout.log(i);
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| DevnetError::io(&log_path, &e))?;
        let child = Command::new(&self.cairn)
            .args(["node", "run", "--home"])
            .arg(self.layout.home(i))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| DevnetError::io(&self.cairn, &e))?;
        self.procs[i] = Process {
            child: Some(child),
            state: NodeState::Running,
        };
        Ok(())
    }

    /// Starts every node that is not running.
    pub fn start_all(&mut self) -> Result<(), DevnetError> {
        for i in 0..self.procs.len() {
            if self.procs[i].child.is_none() {
                self.start(i)?;
            }
        }
        Ok(())
    }

    fn running_pid(&self, i: usize) -> Result<u32, DevnetError> {
        self.check(i)?;
        self.pid(i).ok_or_else(|| {
            DevnetError::BadCommand(format!("node {i} is not running ({})", self.procs[i].state))
        })
    }

    /// SIGKILL.
    pub fn kill(&mut self, i: usize) -> Result<(), DevnetError> {
        self.running_pid(i)?;
        if let Some(mut child) = self.procs[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.procs[i].state = NodeState::Killed;
        Ok(())
    }

    /// SIGTERM, then waits up to 20 s (then SIGKILL).
    pub fn stop(&mut self, i: usize) -> Result<(), DevnetError> {
        let pid = self.running_pid(i)?;
        if self.procs[i].state == NodeState::Paused {
            signal(pid, "CONT")?;
        }
        signal(pid, "TERM")?;
        let deadline = Instant::now() + Duration::from_secs(20);
        if let Some(mut child) = self.procs[i].child.take() {
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
        self.procs[i].state = NodeState::Stopped;
        Ok(())
    }

    /// Kills (SIGKILL) node `i` if it runs, then starts it again.
    pub fn restart(&mut self, i: usize) -> Result<(), DevnetError> {
        self.check(i)?;
        if self.procs[i].child.is_some() {
            self.kill(i)?;
        }
        self.start(i)
    }

    /// SIGSTOP.
    pub fn pause(&mut self, i: usize) -> Result<(), DevnetError> {
        let pid = self.running_pid(i)?;
        signal(pid, "STOP")?;
        self.procs[i].state = NodeState::Paused;
        Ok(())
    }

    /// SIGCONT.
    pub fn resume(&mut self, i: usize) -> Result<(), DevnetError> {
        let pid = self.running_pid(i)?;
        signal(pid, "CONT")?;
        self.procs[i].state = NodeState::Running;
        Ok(())
    }

    /// Splits the nodes into `groups`: each node refuses the peers of the
    /// other groups. Nodes not named keep talking to everyone.
    pub fn partition(&mut self, groups: &[Vec<usize>]) -> Result<(), DevnetError> {
        for g in groups {
            for &i in g {
                self.check(i)?;
            }
        }
        for (gi, group) in groups.iter().enumerate() {
            let others: Vec<String> = groups
                .iter()
                .enumerate()
                .filter(|(gj, _)| *gj != gi)
                .flat_map(|(_, g)| g.iter().map(|&j| self.manifest.nodes[j].peer_id.clone()))
                .collect();
            for &i in group {
                self.admin(i, "/admin/peers/block", &others)?;
            }
        }
        Ok(())
    }

    /// Lets every node talk to every other again.
    pub fn heal(&mut self) -> Result<(), DevnetError> {
        let all: Vec<String> = self
            .manifest
            .nodes
            .iter()
            .map(|n| n.peer_id.clone())
            .collect();
        for i in 0..self.procs.len() {
            if self.procs[i].state == NodeState::Running {
                self.admin(i, "/admin/peers/unblock", &all)?;
            }
        }
        Ok(())
    }

    fn admin(&self, i: usize, path: &str, peers: &[String]) -> Result<(), DevnetError> {
        let status = self.api(i).post_json(path, &json!({ "peers": peers }))?;
        if status != 200 {
            return Err(DevnetError::Http {
                url: format!("{}{path}", self.manifest.nodes[i].api()),
                message: format!("answered {status}"),
            });
        }
        Ok(())
    }

    /// Notes processes that exited by themselves; returns them.
    pub fn reap(&mut self) -> Vec<(usize, String)> {
        let mut exited = Vec::new();
        for (i, p) in self.procs.iter_mut().enumerate() {
            if let Some(child) = &mut p.child
                && let Ok(Some(status)) = child.try_wait()
            {
                let how = status.to_string();
                p.child = None;
                p.state = NodeState::Exited(how.clone());
                exited.push((i, how));
            }
        }
        exited
    }

    /// Stops every node (SIGTERM; paused ones are resumed first).
    pub fn stop_all(&mut self) {
        for i in 0..self.procs.len() {
            if self.procs[i].child.is_some() {
                let _ = self.stop(i);
            }
        }
    }

    /// A table of the nodes: index, agency, state, pid, height, peers, API.
    pub fn status_table(&self) -> String {
        let mut out = format!(
            "{:<4} {:<10} {:>8} {:>7} {:>5}  {:<24} {}\n",
            "node", "state", "pid", "height", "peers", "api and web", "agency"
        );
        for (i, node) in self.manifest.nodes.iter().enumerate() {
            let (height, peers) = match self.procs[i].state {
                NodeState::Running => match self.api(i).get("/v1/status") {
                    Ok((200, s)) => (
                        s["height"].as_u64().map_or("-".into(), |h| h.to_string()),
                        s["peers"].as_u64().map_or("-".into(), |h| h.to_string()),
                    ),
                    _ => ("-".into(), "-".into()),
                },
                _ => ("-".into(), "-".into()),
            };
            out.push_str(&format!(
                "{:<4} {:<10} {:>8} {:>7} {:>5}  {:<24} {}\n",
                i,
                self.procs[i].state.to_string(),
                self.pid(i).map_or("-".into(), |p| p.to_string()),
                height,
                peers,
                node.api(),
                node.name
            ));
        }
        out
    }

    /// The last `lines` lines of node `i`'s log.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let text = std::fs::read_to_string(self.layout.log(i)).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        for p in &mut self.procs {
            if let Some(mut child) = p.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
