//! How `cairn devnet status | kill | restart | pause | resume | partition |
//! heal | down` reach the running `cairn devnet up`: a Unix socket in the
//! devnet folder, one command line per connection, one reply.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::DevnetError;
use crate::layout::Layout;
use crate::supervisor::Supervisor;

/// A command for the running devnet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Control {
    /// The nodes table.
    Status,
    /// SIGKILL a node.
    Kill(usize),
    /// Kill and start a node.
    Restart(usize),
    /// SIGSTOP a node.
    Pause(usize),
    /// SIGCONT a node.
    Resume(usize),
    /// Split the nodes into groups.
    Partition(Vec<Vec<usize>>),
    /// Undo partitions.
    Heal,
    /// Stop every node and the devnet.
    Down,
}

fn index(text: &str) -> Result<usize, DevnetError> {
    text.trim()
        .parse()
        .map_err(|_| DevnetError::BadCommand(format!("{text:?} is not a node number")))
}

/// Parses `A,B/C,D` into groups of node numbers.
pub fn parse_groups(text: &str) -> Result<Vec<Vec<usize>>, DevnetError> {
    let groups: Vec<Vec<usize>> = text
        .split('/')
        .map(|g| g.split(',').map(index).collect::<Result<_, _>>())
        .collect::<Result<_, _>>()?;
    if groups.len() < 2 {
        return Err(DevnetError::BadCommand(format!(
            "a partition needs at least two groups separated by '/', e.g. 0,1/2,3; got {text:?}"
        )));
    }
    let mut seen = std::collections::BTreeSet::new();
    for n in groups.iter().flatten() {
        if !seen.insert(*n) {
            return Err(DevnetError::BadCommand(format!(
                "node {n} is in two groups of {text:?}"
            )));
        }
    }
    Ok(groups)
}

impl Control {
    /// The command as one line on the socket.
    pub fn line(&self) -> String {
        match self {
            Control::Status => "status".into(),
            Control::Kill(i) => format!("kill {i}"),
            Control::Restart(i) => format!("restart {i}"),
            Control::Pause(i) => format!("pause {i}"),
            Control::Resume(i) => format!("resume {i}"),
            Control::Partition(groups) => format!(
                "partition {}",
                groups
                    .iter()
                    .map(|g| g.iter().map(usize::to_string).collect::<Vec<_>>().join(","))
                    .collect::<Vec<_>>()
                    .join("/")
            ),
            Control::Heal => "heal".into(),
            Control::Down => "down".into(),
        }
    }

    /// Parses a line.
    pub fn parse(line: &str) -> Result<Control, DevnetError> {
        let mut words = line.split_whitespace();
        let verb = words.next().unwrap_or_default();
        let arg = words.next();
        fn need<'a>(verb: &str, arg: Option<&'a str>) -> Result<&'a str, DevnetError> {
            arg.ok_or_else(|| DevnetError::BadCommand(format!("{verb} needs an argument")))
        }
        Ok(match verb {
            "status" => Control::Status,
            "kill" => Control::Kill(index(need(verb, arg)?)?),
            "restart" => Control::Restart(index(need(verb, arg)?)?),
            "pause" => Control::Pause(index(need(verb, arg)?)?),
            "resume" => Control::Resume(index(need(verb, arg)?)?),
            "partition" => Control::Partition(parse_groups(need(verb, arg)?)?),
            "heal" => Control::Heal,
            "down" => Control::Down,
            other => {
                return Err(DevnetError::BadCommand(format!(
                    "unknown devnet command {other:?}"
                )));
            }
        })
    }

    /// Carries the command out on `supervisor`; returns the reply.
    pub fn apply(
        &self,
        supervisor: &mut Supervisor,
        down: &AtomicBool,
    ) -> Result<String, DevnetError> {
        match self {
            Control::Status => return Ok(supervisor.status_table()),
            Control::Kill(i) => supervisor.kill(*i)?,
            Control::Restart(i) => supervisor.restart(*i)?,
            Control::Pause(i) => supervisor.pause(*i)?,
            Control::Resume(i) => supervisor.resume(*i)?,
            Control::Partition(groups) => supervisor.partition(groups)?,
            Control::Heal => supervisor.heal()?,
            Control::Down => down.store(true, Ordering::SeqCst),
        }
        Ok(format!("ok: {}\n", self.line()))
    }
}

/// Serves control commands on the devnet's socket until `down` is set.
pub fn serve(
    layout: &Layout,
    supervisor: Arc<Mutex<Supervisor>>,
    down: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, DevnetError> {
    let path = layout.socket();
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).map_err(|e| DevnetError::io(&path, &e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| DevnetError::io(&path, &e))?;
    Ok(std::thread::spawn(move || {
        while !down.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((stream, _)) => {
                    let _ = answer(stream, &supervisor, &down);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        let _ = std::fs::remove_file(&path);
    }))
}

fn answer(
    stream: UnixStream,
    supervisor: &Mutex<Supervisor>,
    down: &AtomicBool,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut line = String::new();
    BufReader::new(&stream).take(4096).read_line(&mut line)?;
    let reply = match Control::parse(&line) {
        Ok(command) => {
            let mut s = supervisor
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match command.apply(&mut s, down) {
                Ok(reply) => reply,
                Err(e) => format!("error: {e}\n"),
            }
        }
        Err(e) => format!("error: {e}\n"),
    };
    (&stream).write_all(reply.as_bytes())
}

/// Sends a command to the `up` running on `layout`; returns its reply, or
/// the error it reported.
pub fn send(layout: &Layout, command: &Control) -> Result<String, DevnetError> {
    let mut stream = UnixStream::connect(layout.socket()).map_err(|_| DevnetError::NotRunning {
        dir: layout.root().to_path_buf(),
    })?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| DevnetError::io(&layout.socket(), &e))?;
    writeln!(stream, "{}", command.line()).map_err(|e| DevnetError::io(&layout.socket(), &e))?;
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .map_err(|e| DevnetError::io(&layout.socket(), &e))?;
    match reply.strip_prefix("error: ") {
        Some(message) => Err(DevnetError::BadCommand(message.trim_end().to_owned())),
        None => Ok(reply),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_and_bad_ones_are_named() {
        for c in [
            Control::Status,
            Control::Kill(2),
            Control::Restart(0),
            Control::Pause(1),
            Control::Resume(1),
            Control::Partition(vec![vec![0, 1], vec![2, 3]]),
            Control::Heal,
            Control::Down,
        ] {
            assert_eq!(Control::parse(&c.line()).unwrap(), c);
        }
        for bad in [
            "kill",
            "kill x",
            "partition 0,1",
            "partition 0,1/1,2",
            "explode 1",
        ] {
            assert!(
                matches!(Control::parse(bad), Err(DevnetError::BadCommand(_))),
                "{bad}"
            );
        }
    }
}
