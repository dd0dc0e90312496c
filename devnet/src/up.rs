//! `cairn devnet up`: create (or resume) a devnet, start its nodes, wait for
//! blocks, seed the demo credentials, print where everything is, and run
//! until Ctrl-C or `cairn devnet down`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::control;
use crate::layout::Layout;
use crate::seed;
use crate::supervisor::Supervisor;
use crate::{DevnetError, MAX_DEMO_VALIDATORS};

/// What `up` needs.
pub struct UpOptions {
    /// The devnet folder.
    pub dir: PathBuf,
    /// Validators for a new devnet (an existing one keeps its own).
    pub validators: usize,
    /// The `cairn` binary to run the nodes with.
    pub cairn: PathBuf,
    /// How long to wait for the first blocks.
    pub start_timeout: Duration,
}

fn lock(s: &Mutex<Supervisor>) -> std::sync::MutexGuard<'_, Supervisor> {
    s.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Prepares and starts the devnet; returns the supervisor and the summary
/// to print. Used by `up` and by tests.
pub fn start(
    options: &UpOptions,
    out: &mut dyn Write,
) -> Result<(Supervisor, String), DevnetError> {
    if !(1..=MAX_DEMO_VALIDATORS).contains(&options.validators) {
        return Err(DevnetError::ValidatorCount {
            requested: options.validators,
            max: MAX_DEMO_VALIDATORS,
        });
    }
    let layout = Layout::new(&options.dir);
    if control::send(&layout, &control::Control::Status).is_ok() {
        return Err(DevnetError::BadCommand(format!(
            "a devnet is already running in {}; use `cairn devnet status --dir {}` or stop it first",
            layout.root().display(),
            layout.root().display()
        )));
    }
    if layout.exists() {
        let manifest = layout.manifest()?;
        writeln!(
            out,
            "resuming the devnet in {} ({} validators, chain {})",
            layout.root().display(),
            manifest.nodes.len(),
            short(&manifest.genesis_hash)
        )
        .ok();
        if manifest.nodes.len() != options.validators {
            writeln!(
                out,
                "  (it has {} validators; --validators applies to a new devnet only)",
                manifest.nodes.len()
            )
            .ok();
        }
    } else {
        writeln!(
            out,
            "creating a devnet of {} validators in {}",
            options.validators,
            layout.root().display()
        )
        .ok();
        layout.create(&options.cairn, options.validators)?;
    }
    let mut supervisor = Supervisor::new(layout.clone(), options.cairn.clone())?;
    supervisor.start_all()?;
    wait_for_blocks(&mut supervisor, options.start_timeout, out)?;

    let api = supervisor.api(0);
    let seeded = match seed::seeded(&layout) {
        Some(seeded) => {
            seed::refresh_presentation(&layout, &api, &seeded)?;
            seeded
        }
        None => seed::seed(&layout, &api, out)?,
    };
    let summary = summary(&layout, &supervisor, &seeded);
    Ok((supervisor, summary))
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(16)]
}

/// Waits until every node has committed a block, showing their heights.
fn wait_for_blocks(
    supervisor: &mut Supervisor,
    timeout: Duration,
    out: &mut dyn Write,
) -> Result<(), DevnetError> {
    let started = Instant::now();
    let n = supervisor.len();
    loop {
        let heights: Vec<Option<u64>> = (0..n).map(|i| supervisor.api(i).height()).collect();
        let shown: Vec<String> = heights
            .iter()
            .map(|h| h.map_or("…".into(), |h| h.to_string()))
            .collect();
        write!(
            out,
            "\rwaiting for blocks: heights [{}]  {:>3} s ",
            shown.join(", "),
            started.elapsed().as_secs()
        )
        .ok();
        out.flush().ok();
        let first = heights.iter().flatten().copied().min();
        if heights.iter().all(Option::is_some) && first.is_some_and(|h| h >= 1) {
            writeln!(out, "\nblocks are being finalized").ok();
            return Ok(());
        }
        if let Some((i, how)) = supervisor.reap().into_iter().next() {
            writeln!(out).ok();
            return Err(DevnetError::Command {
                command: format!("node {i}"),
                output: format!(
                    "exited ({how}); its log ends with:\n{}",
                    supervisor.log_tail(i, 20)
                ),
            });
        }
        if started.elapsed() > timeout {
            writeln!(out).ok();
            return Err(DevnetError::Timeout(format!(
                "no block within {} s; node 0's log ends with:\n{}",
                timeout.as_secs(),
                supervisor.log_tail(0, 20)
            )));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn summary(layout: &Layout, supervisor: &Supervisor, seeded: &seed::Seeded) -> String {
    let dir = layout.root().display();
    let mut s = String::new();
    s.push_str("\nnodes\n");
    s.push_str(&supervisor.status_table());
    s.push_str("\ndemo credentials (documents in ");
    s.push_str(&layout.demo().display().to_string());
    s.push_str(")\n");
    for c in &seeded.credentials {
        s.push_str(&format!(
            "  {:<28} {:<11} {}\n",
            c.name, c.state, c.commitment
        ));
    }
    let me = std::env::current_exe()
        .ok()
        .and_then(|p| p.to_str().map(str::to_owned))
        .unwrap_or_else(|| "cairn".into());
    let api0 = supervisor.manifest().nodes[0].api();
    let presentation = seeded.presentation.display();
    s.push_str(&format!(
        "\nweb pages (every node serves them):\n  explorer  {api0}/\n  verifier  {api0}/verify   (drop the presentation below on it)\n  trace     {api0}/trace/{commitment}\n  regulator {api0}/regulator\n\
         \na presentation of 张三's driver's license (name, class and validity disclosed, ID number hidden):\n  {presentation}\n\
         \nverify it offline, trusting only the genesis:\n  {me} verify {presentation} --genesis {dir}/genesis.json\n\
         \nrevoke it, then verify again against a node (the stapled bundle predates the revocation):\n  \
         {me} tx revoke {commitment} --reason revoked-as-penalty --node {api0} --key {police} --wait\n  \
         {me} verify {presentation} --genesis {dir}/genesis.json --node {api0}\n\
         \nperturb the network from another terminal:\n  {me} devnet status --dir {dir}\n  \
         {me} devnet kill 1 --dir {dir}     (also: restart 1, pause 2, resume 2, partition 0,1/2,3, heal, down)\n  \
         {me} devnet load --rate 100 --duration 10 --dir {dir}\n\
         \nCtrl-C stops every node; `devnet up --dir {dir}` again resumes the same chain.\n",
        commitment = seeded.presented,
        police = layout.police_key(0).display(),
    ));
    s
}

/// Runs `up` until Ctrl-C (SIGINT or SIGTERM) or `devnet down`.
pub fn up(options: &UpOptions, out: &mut dyn Write) -> Result<(), DevnetError> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| DevnetError::io(Path::new("signal handler"), &e))?;
    }
    let (supervisor, summary) = start(options, out)?;
    write!(out, "{summary}").ok();
    out.flush().ok();
    let layout = Layout::new(&options.dir);
    let supervisor = Arc::new(Mutex::new(supervisor));
    let down = Arc::new(AtomicBool::new(false));
    let server = control::serve(&layout, supervisor.clone(), down.clone())?;
    while !stop.load(Ordering::SeqCst) && !down.load(Ordering::SeqCst) {
        for (i, how) in lock(&supervisor).reap() {
            writeln!(
                out,
                "node {i} exited by itself ({how}); `cairn devnet restart {i}` starts it again"
            )
            .ok();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    writeln!(out, "\nstopping every node …").ok();
    down.store(true, Ordering::SeqCst);
    let _ = server.join();
    lock(&supervisor).stop_all();
    writeln!(
        out,
        "stopped; the chain is kept in {}",
        layout.root().display()
    )
    .ok();
    Ok(())
}
