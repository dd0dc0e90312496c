//! `cairn bench`: the machine's limits and the node's figures, measured on
//! this machine with real processes. Markdown tables on stdout, progress on
//! stderr; nothing asserts on time. BENCHMARKS.md records the results.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cairn_anchoring::{Action, AnchorItem, Commitment, Transaction};
use cairn_devnet::TYPE_DRIVER_LICENSE;
use cairn_devnet::layout::Layout;
use cairn_devnet::load::{self, LoadOptions, LoadReport};
use cairn_devnet::supervisor::Supervisor;
use cairn_genesis::{GenesisDocument, Hash, KeyPair, Timestamp};
use cairn_node::bench::{TABLE_HEADER, limits, thousands};

use crate::cli::{BenchCommand, NetworkBench};

pub fn run(command: BenchCommand) -> anyhow::Result<ExitCode> {
    match command {
        BenchCommand::Limits { runs, quick } => {
            let dir = tempdir("limits")?;
            let figures = limits(dir.path(), runs, if quick { 20 } else { 1 })?;
            println!("{TABLE_HEADER}");
            for f in figures {
                println!("{}", f.row());
            }
        }
        BenchCommand::Network(options) => {
            let report = network(&options)?;
            println!("{}", report.table());
        }
        BenchCommand::Serve {
            duration,
            clients,
            credentials,
        } => serve(Duration::from_secs(duration), clients, credentials)?,
        BenchCommand::Sync { blocks } => sync(blocks)?,
        BenchCommand::Growth {
            validators,
            block,
            up_to,
            keep_state_versions,
        } => growth(validators, block, up_to, keep_state_versions)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// A folder removed on drop, under the system's temporary folder.
struct TempDir(PathBuf);

impl TempDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir(what: &str) -> anyhow::Result<TempDir> {
    let dir = std::env::temp_dir().join(format!(
        "cairn-bench-{what}-{}-{}",
        std::process::id(),
        Timestamp::now().0
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(TempDir(dir))
}

/// A devnet of `validators` nodes started from this very binary, stopped on drop.
struct Bench {
    _dir: TempDir,
    layout: Layout,
    sup: Supervisor,
}

impl Bench {
    /// Starts the devnet; `block_commitments` replaces each node's
    /// `max_block_commitments`, and `keep_state_versions` its
    /// `storage.keep_state_versions`, when given.
    fn start(
        validators: usize,
        idle_ms: u64,
        block_commitments: Option<u64>,
        keep_state_versions: Option<u64>,
    ) -> anyhow::Result<Bench> {
        let dir = tempdir("net")?;
        let layout = Layout::new(dir.path().join("devnet"));
        let me = std::env::current_exe()?;
        layout.create(&me, validators)?;
        for i in 0..validators {
            let path = layout.home(i).join("config.toml");
            // The devnet's configuration sets the idle interval under
            // `[consensus]`; the block bound goes on the line after it.
            let idle = "idle_block_interval_ms = 1000";
            let text = std::fs::read_to_string(&path)?;
            if !text.contains(idle) {
                bail!("{} has no `{idle}` line to replace", path.display());
            }
            let mut consensus = format!("idle_block_interval_ms = {idle_ms}");
            if let Some(n) = block_commitments {
                consensus.push_str(&format!("\nmax_block_commitments = {n}"));
            }
            let mut text = text.replace(idle, &consensus);
            if let Some(n) = keep_state_versions {
                if text.contains("[storage]") {
                    bail!("{} has a [storage] section already", path.display());
                }
                text.push_str(&format!("\n[storage]\nkeep_state_versions = {n}\n"));
            }
            std::fs::write(&path, text)?;
        }
        let mut sup = Supervisor::new(layout.clone(), me)?;
        sup.start_all()?;
        let bench = Bench {
            _dir: dir,
            layout,
            sup,
        };
        // The load starts once every validator is connected to every
        // other and has committed a block or two: the figures are of the
        // network formed, not of its first seconds.
        for i in 0..validators {
            bench.wait_height(i, 2, Duration::from_secs(60))?;
            bench.wait_peers(i, validators - 1, Duration::from_secs(60))?;
        }
        Ok(bench)
    }

    fn wait_peers(&self, i: usize, peers: usize, timeout: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        let connected = || {
            self.sup
                .api(i)
                .get("/v1/status")
                .ok()
                .and_then(|(_, status)| status["peers"].as_u64())
                .unwrap_or(0)
        };
        while connected() < peers as u64 {
            if start.elapsed() > timeout {
                bail!(
                    "node {i} has {} peers after {timeout:?}, not {peers}:\n{}",
                    connected(),
                    self.sup.log_tail(i, 20)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn height(&self, i: usize) -> u64 {
        self.sup.api(i).height().unwrap_or(0)
    }

    fn wait_height(&self, i: usize, height: u64, timeout: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        while self.height(i) < height {
            if start.elapsed() > timeout {
                bail!(
                    "node {i} is at {} after {timeout:?}, not {height}:\n{}",
                    self.height(i),
                    self.sup.log_tail(i, 20)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.sup.stop_all();
    }
}

/// CPU seconds (user + system) a process has used, and its peak resident
/// set in bytes, from /proc (Linux; clock ticks of 1/100 s).
fn process_usage(pid: u32) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) end with ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let peak_kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((ticks as f64 / 100.0, peak_kb * 1024))
}

/// What a network run measured.
pub struct NetworkReport {
    options: String,
    load: LoadReport,
    /// Per node: share of one core used during the load (1.0 = a whole
    /// core), peak RSS in bytes.
    nodes: Vec<(f64, u64)>,
    /// Per node, from its metrics: the blocks it built, executed and
    /// committed during the load, and the mean milliseconds of each.
    steps: Vec<Option<[Step; 3]>>,
    height: (u64, u64),
}

/// One step of a height on one node during a run: how many times it ran
/// and its mean duration.
#[derive(Clone, Copy)]
struct Step {
    count: u64,
    mean_ms: f64,
}

/// Each step's (count, seconds) in a node's metrics, for [`steps_between`].
fn step_totals(api: &cairn_devnet::client::Api) -> Option<[(f64, f64); 3]> {
    cairn_devnet::client::block_steps(&api.metrics().ok()?)
}

/// The steps run between two readings of [`step_totals`].
fn steps_between(before: [(f64, f64); 3], after: [(f64, f64); 3]) -> [Step; 3] {
    let mut steps = [Step {
        count: 0,
        mean_ms: 0.0,
    }; 3];
    for ((step, (n0, s0)), (n1, s1)) in steps.iter_mut().zip(before).zip(after) {
        // A counter that went back means the node restarted in between:
        // what it did is not known.
        if n1 > n0 && s1 >= s0 {
            step.count = (n1 - n0) as u64;
            step.mean_ms = (s1 - s0) * 1000.0 / (n1 - n0);
        }
    }
    steps
}

impl NetworkReport {
    fn table(&self) -> String {
        let l = &self.load;
        let tx_rate = l.finalized as f64 / l.elapsed.max(1e-9);
        let c_rate = l.commitments as f64 / l.elapsed.max(1e-9);
        let mut s = format!(
            "| run | finalized | commitments/s | tx/s | latency p50 / p95 / p99 | blocks |\n|---|---|---|---|---|---|\n| {} | {} of {} accepted ({} refused) | {} | {} | {:.0} / {:.0} / {:.0} ms | {}–{} |\n\n| node | CPU (cores) | peak RSS | blocks built / executed / committed, mean time each |\n|---|---|---|---|\n",
            self.options,
            l.finalized,
            l.accepted,
            l.refused,
            thousands(c_rate),
            thousands(tx_rate),
            l.latency_ms.0,
            l.latency_ms.1,
            l.latency_ms.2,
            self.height.0,
            self.height.1,
        );
        for (i, (cpu, rss)) in self.nodes.iter().enumerate() {
            let steps = match self.steps.get(i).copied().flatten() {
                Some(steps) => steps
                    .iter()
                    .map(|step| format!("{} × {:.0} ms", step.count, step.mean_ms))
                    .collect::<Vec<_>>()
                    .join(" / "),
                None => "metrics not read".to_owned(),
            };
            s.push_str(&format!(
                "| {i} | {cpu:.2} | {} MiB | {steps} |\n",
                rss / (1024 * 1024)
            ));
        }
        if let Some(r) = &l.first_refusal {
            s.push_str(&format!("\nfirst refusal: {r}\n"));
        }
        s
    }
}

/// Anchoring load on a fresh devnet: throughput, latency, CPU and memory.
fn network(o: &NetworkBench) -> anyhow::Result<NetworkReport> {
    eprintln!(
        "starting {} validators on 127.0.0.1 (release build recommended) …",
        o.validators
    );
    let bench = Bench::start(
        o.validators,
        1000,
        o.block_commitments,
        o.keep_state_versions,
    )?;
    let before: Vec<Option<(f64, u64)>> = (0..o.validators)
        .map(|i| bench.sup.pid(i).and_then(process_usage))
        .collect();
    let steps_before: Vec<_> = (0..o.validators)
        .map(|i| step_totals(&bench.sup.api(i)))
        .collect();
    let h0 = bench.height(0);
    let started = Instant::now();
    let report = load::run(
        &bench.layout,
        &LoadOptions {
            rate: o.rate,
            duration: Duration::from_secs(o.duration),
            batch: o.batch,
            threads: o.threads,
            per_request: o.per_request,
        },
        &mut std::io::stderr(),
    )?;
    let wall = started.elapsed().as_secs_f64();
    let nodes = (0..o.validators)
        .map(|i| {
            let after = bench.sup.pid(i).and_then(process_usage);
            match (before[i], after) {
                (Some((c0, _)), Some((c1, rss))) => ((c1 - c0) / wall, rss),
                _ => (0.0, 0),
            }
        })
        .collect();
    let steps = (0..o.validators)
        .map(|i| {
            Some(steps_between(
                steps_before[i]?,
                step_totals(&bench.sup.api(i))?,
            ))
        })
        .collect();
    Ok(NetworkReport {
        options: format!(
            "{} validators, {} tx/s × {} commitments for {} s, {} clients, {} tx per request{}",
            o.validators,
            o.rate,
            o.batch,
            o.duration,
            o.threads,
            o.per_request,
            o.block_commitments
                .map(|n| format!(", blocks of at most {n} commitments"))
                .unwrap_or_default()
                + &o.keep_state_versions
                    .map(|n| format!(", {n} state versions kept"))
                    .unwrap_or_default()
        ),
        load: report,
        nodes,
        steps,
        height: (h0, bench.height(0)),
    })
}

/// Bundle queries on one node from `clients` concurrent clients.
fn serve(duration: Duration, clients: usize, credentials: usize) -> anyhow::Result<()> {
    eprintln!("starting 4 validators and anchoring {credentials} credentials …");
    let bench = Bench::start(4, 1000, None, None)?;
    let genesis = GenesisDocument::load_valid(&bench.layout.genesis())?;
    let key = KeyPair::load(&bench.layout.police_key(0))?;
    let commitments: Vec<Commitment> = (0..credentials as u64)
        .map(|n| Commitment(Hash::domain("cairn bench serve", &n.to_be_bytes())))
        .collect();
    let api = bench.sup.api(0);
    // Within the ledger's limit on how far ahead a transaction may expire.
    let expires_at = bench.height(0) + 10_000;
    let mut last = None;
    for (k, chunk) in commitments.chunks(1_000).enumerate() {
        let tx = Transaction {
            chain: genesis.hash(),
            issuer: genesis.issuers[0].id.clone(),
            key: key.public_key(),
            nonce: k as u64 + 1,
            expires_at,
            action: Action::Anchor(
                chunk
                    .iter()
                    .map(|c| AnchorItem {
                        commitment: *c,
                        credential_type: TYPE_DRIVER_LICENSE.into(),
                        valid_until: None,
                    })
                    .collect(),
            ),
        }
        .sign(key.signing_key());
        match api.submit(&tx)? {
            (200 | 202, _) => last = Some(tx.id()),
            (status, body) => bail!("anchoring refused ({status}): {body}"),
        }
    }
    let Some(last) = last else {
        bail!("nothing to serve: --credentials must be at least 1");
    };
    let start = Instant::now();
    loop {
        if let Ok((200, body)) = api.get(&format!("/v1/txs/{last}"))
            && body["status"] == "committed"
        {
            break;
        }
        if start.elapsed() > Duration::from_secs(120) {
            bail!("the credentials were not finalized within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "querying bundles from {clients} clients for {} s …",
        duration.as_secs()
    );
    let addr = format!("127.0.0.1:{}", bench.sup.manifest().nodes[0].api_port);
    let node = bench.sup.pid(0).context("node 0 is not running")?;
    let stop = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let bytes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let cpu_before = (
        process_usage(node).map_or(0.0, |u| u.0),
        process_usage(std::process::id()).map_or(0.0, |u| u.0),
    );
    let began = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|t| {
            let (stop, latencies, errors, bytes) = (
                stop.clone(),
                latencies.clone(),
                errors.clone(),
                bytes.clone(),
            );
            let commitments = commitments.clone();
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut conn = None;
                let mut mine = Vec::new();
                let mut n = t;
                while !stop.load(Ordering::Relaxed) {
                    let c = commitments[n % commitments.len()];
                    n = n.wrapping_mul(31).wrapping_add(7);
                    let at = Instant::now();
                    let reused = conn.is_some();
                    let mut answer = Connection::query(&mut conn, &addr, &c);
                    if reused && answer.is_err() {
                        // A kept-alive connection the node has closed
                        // meanwhile: once more, on a new one.
                        answer = Connection::query(&mut conn, &addr, &c);
                    }
                    match answer {
                        Ok((200, len)) => {
                            bytes.fetch_add(len as u64, Ordering::Relaxed);
                            mine.push(at.elapsed().as_secs_f64() * 1000.0);
                        }
                        Ok(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            // Not a busy loop of refused connections.
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    }
                }
                latencies
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .extend(mine);
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let wall = began.elapsed().as_secs_f64();
    let cpu = |pid: u32, before: f64| process_usage(pid).map_or(0.0, |u| (u.0 - before) / wall);
    let (node_cpu, client_cpu) = (
        cpu(node, cpu_before.0),
        cpu(std::process::id(), cpu_before.1),
    );
    let mut l = latencies
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    l.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        l.get(((p / 100.0) * (l.len().saturating_sub(1)) as f64).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let n = l.len() as f64;
    let per_query = |cores: f64| {
        if n > 0.0 {
            format!("{:.0} µs", cores * wall / n * 1e6)
        } else {
            "-".into()
        }
    };
    println!(
        "| clients | queries/s | p50 / p99 | errors | mean bundle | node CPU (cores; per query) | clients' CPU (cores; per query) |\n|---|---|---|---|---|---|---|\n| {clients} | {} | {:.2} / {:.2} ms | {} | {} bytes | {node_cpu:.2}; {} | {client_cpu:.2}; {} |",
        thousands(n / wall),
        pct(50.0),
        pct(99.0),
        errors.load(Ordering::Relaxed),
        if n > 0.0 {
            thousands(bytes.load(Ordering::Relaxed) as f64 / n)
        } else {
            "-".into()
        },
        per_query(node_cpu),
        per_query(client_cpu),
    );
    std::io::stdout().flush().ok();
    Ok(())
}

/// Largest answer `bench serve` reads: a bundle is a few kilobytes.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// One keep-alive HTTP/1.1 connection asking for binary bundles, one
/// request at a time, each answer framed by its Content-Length. A
/// general-purpose client spent as much CPU per query as the node spent
/// answering it, on the same two cores; this one reads the status line and
/// headers into reused buffers and nothing else.
struct Connection {
    stream: std::io::BufReader<std::net::TcpStream>,
    request: Vec<u8>,
    line: String,
    body: Vec<u8>,
}

impl Connection {
    fn open(addr: &str) -> std::io::Result<Connection> {
        let stream = std::net::TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(Connection {
            stream: std::io::BufReader::new(stream),
            request: Vec::new(),
            line: String::new(),
            body: Vec::new(),
        })
    }

    /// GETs the binary bundle of `commitment` on the connection in `slot`,
    /// opened first if there is none: the status and the body's length.
    /// The connection goes back in the slot unless the node said it closes
    /// it or the answer could not be framed.
    fn query(
        slot: &mut Option<Connection>,
        addr: &str,
        commitment: &Commitment,
    ) -> std::io::Result<(u16, usize)> {
        let mut conn = match slot.take() {
            Some(conn) => conn,
            None => Connection::open(addr)?,
        };
        let (status, length, keep) = conn.get(commitment)?;
        if keep {
            *slot = Some(conn);
        }
        Ok((status, length))
    }

    /// GETs the binary bundle of `commitment`: the status, the body's
    /// length and whether the connection stays open. Any answer this
    /// client cannot frame, or a body over [`MAX_ANSWER_BYTES`], is an
    /// error.
    fn get(&mut self, commitment: &Commitment) -> std::io::Result<(u16, usize, bool)> {
        use std::io::{BufRead, Read};
        let bad =
            |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
        self.request.clear();
        write!(
            self.request,
            "GET /v1/credentials/{commitment}/bundle HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/octet-stream\r\n\r\n"
        )?;
        // One write, one segment.
        self.stream.get_mut().write_all(&self.request)?;
        self.line.clear();
        self.stream.read_line(&mut self.line)?;
        let status: u16 = self
            .line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|r| r.get(..3))
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| bad("no HTTP/1.1 status line"))?;
        let mut length = None;
        let mut keep = true;
        loop {
            self.line.clear();
            if self.stream.read_line(&mut self.line)? == 0 {
                return Err(bad("connection closed within the headers"));
            }
            let line = self.line.trim_end();
            if line.is_empty() {
                break;
            }
            let Some((name, value)) = line.split_once(':') else {
                return Err(bad("malformed header"));
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(
                    value
                        .parse::<usize>()
                        .map_err(|_| bad("bad Content-Length"))?,
                );
            } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close")
            {
                keep = false;
            }
        }
        let length = length.ok_or_else(|| bad("no Content-Length"))?;
        if length > MAX_ANSWER_BYTES {
            return Err(bad("a Content-Length larger than any bundle"));
        }
        self.body.resize(length, 0);
        self.stream.read_exact(&mut self.body)?;
        Ok((status, length, keep))
    }
}

/// The per-block work of a node as the state grows, one row per power of ten.
fn growth(validators: usize, block: u64, up_to: u64, keep: u64) -> anyhow::Result<()> {
    anyhow::ensure!(block >= 1_000, "--block must be at least 1 000");
    let dir = tempdir("growth")?;
    let report_at: Vec<u64> = (4..=12)
        .map(|e| 10u64.pow(e))
        .filter(|&n| n <= up_to)
        .collect();
    let kept = match keep {
        0 => "every state version kept".to_string(),
        n => format!("the last {n} state versions kept"),
    };
    eprintln!(
        "growing a {validators}-validator chain to {up_to} credentials, {block} per block, {kept} …"
    );
    let rows = cairn_node::bench::growth(dir.path(), validators, block, up_to, keep, &report_at)?;
    println!(
        "| credentials | blocks | build / block | re-execute / block | commit / block | one validator's rate | tree nodes written / block | disk per credential |\n|---|---|---|---|---|---|---|---|"
    );
    for r in rows {
        println!(
            "| {} | {} | {:.0} ms | {:.0} ms | {:.0} ms | {} commitments/s | {} internal, {:.1} MB | {:.0} bytes |",
            thousands(r.credentials as f64),
            r.blocks,
            r.build_ms,
            r.execute_ms,
            r.commit_ms,
            thousands(r.validator_rate(block)),
            thousands(r.internal_nodes),
            r.node_bytes / 1e6,
            r.disk_bytes_per_credential
        );
        if let Some(compacted) = r.compacted_bytes_per_credential {
            println!("\nafter compacting every file: {compacted:.0} bytes per credential");
        }
    }
    Ok(())
}

/// A validator that lost its data folder while the four made `blocks`
/// blocks, restarted: how fast it catches up by block sync. (Stopping it
/// while the others make the blocks would measure the stopped proposer's
/// timeouts, one height in four, instead of sync.) Its sign state is kept,
/// as after restoring a data folder: it refuses to sign again at heights it
/// signed before, and follows once it has caught up.
fn sync(blocks: u64) -> anyhow::Result<()> {
    eprintln!("starting 4 validators with 10 ms idle blocks …");
    let mut bench = Bench::start(4, 10, None, None)?;
    let start = Instant::now();
    eprintln!("waiting for height {blocks} …");
    bench.wait_height(0, blocks, Duration::from_secs(3_600))?;
    let made = start.elapsed().as_secs_f64();
    bench.sup.stop(3)?;
    let data = bench.layout.home(3).join("data");
    std::fs::remove_dir_all(&data).with_context(|| format!("cannot remove {}", data.display()))?;
    // The others go on making blocks; node 3 is timed to the height they
    // had when it restarted.
    let top = bench.height(0);
    let restarted = Instant::now();
    bench.sup.start(3)?;
    // The first block fetched: before it, the process starts and its
    // peers connect (they dial a peer that was down every two seconds).
    let deadline = restarted + Duration::from_secs(3_600);
    let (first_at, first) = loop {
        let h = bench.height(3);
        if h > 0 {
            break (Instant::now(), h);
        }
        if Instant::now() > deadline {
            bail!("node 3 fetched no block:\n{}", bench.sup.log_tail(3, 20));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    bench.wait_height(3, top, Duration::from_secs(3_600))?;
    let took = restarted.elapsed().as_secs_f64();
    let fetching = first_at.elapsed().as_secs_f64();
    println!(
        "| blocks behind | catch-up time (incl. start) | blocks/s | blocks/s from the first block fetched | the four made them at |\n|---|---|---|---|---|\n| {} | {took:.1} s | {} | {} ({} blocks in {fetching:.2} s) | {} blocks/s |",
        thousands(top as f64),
        thousands(top as f64 / took),
        thousands(top.saturating_sub(first) as f64 / fetching),
        thousands(top.saturating_sub(first) as f64),
        thousands(blocks as f64 / made)
    );
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic is the failure report
mod tests {
    use super::*;

    /// A step's count and mean are of the blocks between the two readings
    /// only; a step that did not run has no mean, and a step whose count
    /// or time went back (the node restarted) counts nothing.
    #[test]
    fn steps_are_counted_and_timed_between_two_readings() {
        let before = [(10.0, 1.0), (5.0, 0.5), (20.0, 4.0)];
        let after = [(14.0, 1.5), (5.0, 0.5), (2.0, 0.1)];
        let steps = steps_between(before, after);
        assert_eq!(steps.map(|s| s.count), [4, 0, 0]);
        assert!(
            (steps[0].mean_ms - 125.0).abs() < 1e-9,
            "{}",
            steps[0].mean_ms
        );
        assert_eq!(steps[1].mean_ms, 0.0);
        assert_eq!(steps[2].mean_ms, 0.0);
        // Restarted and past its old count, but with less time: unknown.
        let steps = steps_between(before, [(12.0, 0.5), (7.0, 0.25), (25.0, 4.0)]);
        assert_eq!(steps.map(|s| s.count), [0, 0, 5]);
        assert_eq!(steps[0].mean_ms, 0.0);
        assert_eq!(steps[1].mean_ms, 0.0);
        assert_eq!(steps[2].mean_ms, 0.0);
    }
}
