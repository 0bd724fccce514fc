//! `bench-post`: end-to-end throughput and latency of posting alerts through the relay.
//!
//! Builds a temporary agreement (one rule: party `P` units `U1..Un` may send `runaway`
//! alerts with every field to party `R` units `A, B, C...`), a dev PKI, and starts the
//! relay — by default as a child process (the `filet-relay serve` binary next to this one),
//! or in this process on its own thread and current-thread runtime with `--in-process`
//! (then the group-commit counters are readable). Recipient nodes subscribe and acknowledge
//! what they receive (pipelined, like QoS 1 subscribers); poster nodes keep `--in-flight`
//! posts outstanding each (closed loop per slot) for `--duration-secs` after a warm-up.
//!
//! ```text
//! cargo build --release -p filet-relay --bin filet-relay
//! cargo run --release -p filet-tests --bin bench-post -- --posters 8 --in-flight 16 \
//!     --duration-secs 10 --recipients 3 [--in-process] [--client-runtime multi] [--record]
//! ```
//!
//! With `--record`, a dated section is appended to `docs/benchmarks.md`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::{Parser, ValueEnum};
use filet_client::{Node, NodeConfig};
use filet_proto::alert::{AlertDraft, AlertFile};
use filet_proto::{AlertId, Timestamp};
use tokio::sync::Semaphore;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Acknowledgements in flight per recipient node: the relay's default of 64 pipelined
/// requests per stream (more would wait in the node anyway). Deliveries not yet
/// acknowledged queue in the bench, never blocking the delivery channel.
const ACKS_IN_FLIGHT: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ClientRuntime {
    /// One thread for every node of the bench.
    Current,
    /// tokio's work-stealing runtime, one worker per core.
    Multi,
}

#[derive(Parser, Debug)]
#[command(
    name = "bench-post",
    about = "Posts alerts through a relay and measures receipts, deliveries and latencies"
)]
struct Args {
    /// Poster nodes (units P/U1..P/Un).
    #[arg(long, default_value_t = 8)]
    posters: usize,
    /// Posts outstanding per poster (closed loop per slot).
    #[arg(long, default_value_t = 16)]
    in_flight: usize,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Warm-up seconds (posts sent then are not measured).
    #[arg(long, default_value_t = 1.0)]
    warmup_secs: f64,
    /// Recipient units (R/A, R/B, ...), each with one subscribed node; at most 26.
    #[arg(long, default_value_t = 3)]
    recipients: usize,
    /// Longest wait after the measured period for outstanding receipts, deliveries and
    /// acknowledgements.
    #[arg(long, default_value_t = 20)]
    drain_timeout_secs: u64,
    /// Run the relay in this process (own thread, current-thread runtime) instead of as a
    /// child process; shows posts per group commit.
    #[arg(long)]
    in_process: bool,
    /// The bench client's runtime.
    #[arg(long, value_enum, default_value_t = ClientRuntime::Current)]
    client_runtime: ClientRuntime,
    /// The relay binary (default: `filet-relay` next to this program).
    #[arg(long)]
    relay_bin: Option<PathBuf>,
    /// Before starting, wait up to this many seconds for the machine to be quiet (other
    /// processes using less than a quarter of a core over one second).
    #[arg(long, default_value_t = 0)]
    wait_quiet_secs: u64,
    /// Recipients do not acknowledge (to measure what acknowledgements cost).
    #[arg(long)]
    no_ack: bool,
    /// Keep the working directory (agreement, PKI, relay data and log) and print it.
    #[arg(long)]
    keep: bool,
    /// Append the results to docs/benchmarks.md.
    #[arg(long)]
    record: bool,
    /// Record only if other processes used at most this many cores during the measured
    /// period (default: always record).
    #[arg(long, default_value_t = f64::INFINITY)]
    record_max_other_load: f64,
    /// A note for the recorded section (e.g. what changed).
    #[arg(long)]
    note: Option<String>,
}

/// Nanoseconds since the bench's start; 0 means "not yet".
fn ns_since(t0: Instant) -> u64 {
    u64::try_from(t0.elapsed().as_nanos())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// What happened to one post.
struct Rec {
    sent: u64,
    receipt: u64,
    alert: Option<AlertId>,
    delivered: Vec<u64>,
}

/// Shared state of the client side.
struct Book {
    t0: Instant,
    recs: Mutex<HashMap<u64, Rec>>,
    posts_ok: AtomicU64,
    posts_err: AtomicU64,
    deliveries: AtomicU64,
    duplicates: AtomicU64,
    unknown: AtomicU64,
    wrong_alert: AtomicU64,
    acks_ok: AtomicU64,
    acks_err: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Book {
    fn error(&self, what: String) {
        if let Ok(mut e) = self.first_error.lock() {
            e.get_or_insert(what);
        }
    }
}

fn key(poster: usize, n: u64) -> u64 {
    ((poster as u64) << 40) | n
}

/// `B-<poster>-<n>` → key.
fn parse_reference(r: &str) -> Option<u64> {
    let mut it = r.strip_prefix("B-")?.splitn(2, '-');
    let p: usize = it.next()?.parse().ok()?;
    let n: u64 = it.next()?.parse().ok()?;
    Some(key(p, n))
}

fn recipient_code(i: usize) -> String {
    char::from(b'A' + i as u8).to_string()
}

fn agreement_text(posters: usize, recipients: usize) -> String {
    let mut s = String::from(
        "# Written by bench-post.\nid = \"bench-post\"\nversion = 1\n\n[parties.P]\nname = \"Posters\"\nunits = { ",
    );
    let units: Vec<String> = (1..=posters)
        .map(|i| format!("U{i} = \"Poster {i}\""))
        .collect();
    s += &units.join(", ");
    s += " }\n\n[parties.R]\nname = \"Recipients\"\nunits = { ";
    let units: Vec<String> = (0..recipients)
        .map(|i| {
            format!(
                "{} = \"Recipient {}\"",
                recipient_code(i),
                recipient_code(i)
            )
        })
        .collect();
    s += &units.join(", ");
    s += " }\n\n[[rules]]\nid = \"bench-runaway\"\nfrom = [";
    let from: Vec<String> = (1..=posters).map(|i| format!("\"P/U{i}\"")).collect();
    s += &from.join(", ");
    s += "]\nto = [";
    let to: Vec<String> = (0..recipients)
        .map(|i| format!("\"R/{}\"", recipient_code(i)))
        .collect();
    s += &to.join(", ");
    s += "]\ncategories = [\"runaway\"]\nfields = \"all\"\nlegal_basis = \"bench\"\npurpose = \"bench\"\nretention = \"1d\"\n";
    s
}

fn free_udp_port() -> anyhow::Result<u16> {
    let s = std::net::UdpSocket::bind("127.0.0.1:0")?;
    Ok(s.local_addr()?.port())
}

/// CPU seconds (user + system) of a process or thread, from its `stat` file.
fn cpu_secs(stat_path: &Path) -> Option<f64> {
    let s = std::fs::read_to_string(stat_path).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = s.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    // USER_HZ is 100 on Linux.
    Some((utime + stime) / 100.0)
}

/// CPU seconds per thread name of process `pid` (threads of one name summed), and the
/// total.
fn cpu_by_thread(pid: u32) -> (HashMap<String, f64>, f64) {
    let mut out = HashMap::new();
    let dir = PathBuf::from(format!("/proc/{pid}/task"));
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            let comm = std::fs::read_to_string(e.path().join("comm"))
                .unwrap_or_default()
                .trim()
                .to_owned();
            if let Some(c) = cpu_secs(&e.path().join("stat")) {
                *out.entry(comm).or_insert(0.0) += c;
            }
        }
    }
    let total = cpu_secs(&PathBuf::from(format!("/proc/{pid}/stat"))).unwrap_or(0.0);
    (out, total)
}

/// Seconds on a CPU and seconds runnable but waiting for one, per thread name of process
/// `pid`, from `/proc/PID/task/TID/schedstat`.
fn sched_by_thread(pid: u32) -> HashMap<String, (f64, f64)> {
    let mut out = HashMap::new();
    if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for e in rd.flatten() {
            let comm = std::fs::read_to_string(e.path().join("comm"))
                .unwrap_or_default()
                .trim()
                .to_owned();
            let s = std::fs::read_to_string(e.path().join("schedstat")).unwrap_or_default();
            let v: Vec<f64> = s
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            if let (Some(run), Some(wait)) = (v.first(), v.get(1)) {
                let x = out.entry(comm).or_insert((0.0, 0.0));
                x.0 += run / 1e9;
                x.1 += wait / 1e9;
            }
        }
    }
    out
}

/// A `kB` field of `/proc/PID/status` (`VmRSS`: resident now, `VmHWM`: peak resident).
fn proc_kib(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Busy and total CPU seconds of the whole machine (all cores), from `/proc/stat`.
fn machine_cpu() -> (f64, f64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = s.lines().next() else {
        return (0.0, 0.0);
    };
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: f64 = v.iter().take(8).sum();
    // idle and iowait are not busy.
    let idle = v.get(3).copied().unwrap_or(0.0) + v.get(4).copied().unwrap_or(0.0);
    ((total - idle) / 100.0, total / 100.0)
}

/// Cores busy on the whole machine over `d`.
fn machine_busy_over(d: Duration) -> f64 {
    let (b0, _) = machine_cpu();
    std::thread::sleep(d);
    let (b1, _) = machine_cpu();
    (b1 - b0) / d.as_secs_f64()
}

/// Median and 99th percentile (ms) of `fdatasync` after a 4 KB append, in `dir` (the disk
/// the relay writes to), over 50 tries.
fn fsync_probe(dir: &Path) -> Option<(f64, f64)> {
    let path = dir.join("fsync-probe");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .ok()?;
    let mut v = Vec::new();
    for _ in 0..50 {
        f.write_all(&[0u8; 4096]).ok()?;
        let t = Instant::now();
        f.sync_data().ok()?;
        v.push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
    }
    drop(f);
    let _ = std::fs::remove_file(&path);
    pct(v).map(|p| (p.p50, p.p99))
}

/// The relay under test.
enum RelayProc {
    Child {
        child: Child,
        log: PathBuf,
    },
    InProcess {
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
        stats: Arc<filet_relay::commit::CommitStats>,
    },
}

impl RelayProc {
    fn stats(&self) -> Option<(u64, u64, u64)> {
        match self {
            RelayProc::InProcess { stats, .. } => Some((
                stats.batches.load(Ordering::Relaxed),
                stats.posts.load(Ordering::Relaxed),
                stats.ops.load(Ordering::Relaxed),
            )),
            RelayProc::Child { .. } => None,
        }
    }

    fn check_alive(&mut self) -> anyhow::Result<()> {
        if let RelayProc::Child { child, log } = self {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "the relay exited ({status}); its log {}:\n{}",
                    log.display(),
                    tail(log, 20)
                );
            }
        }
        Ok(())
    }

    fn stop(self) -> anyhow::Result<()> {
        match self {
            RelayProc::Child { mut child, log } => {
                let pid = child.id().to_string();
                let _ = Command::new("kill").args(["-TERM", &pid]).status();
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    if let Some(status) = child.try_wait()? {
                        if !status.success() {
                            eprintln!(
                                "warning: the relay stopped with {status}; log:\n{}",
                                tail(&log, 20)
                            );
                        }
                        return Ok(());
                    }
                    if Instant::now() > deadline {
                        eprintln!(
                            "warning: the relay did not stop within 30 s of SIGTERM; killing it"
                        );
                        let _ = child.kill();
                        let _ = child.wait();
                        return Ok(());
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            RelayProc::InProcess {
                mut stop,
                mut thread,
                ..
            } => {
                if let Some(s) = stop.take() {
                    let _ = s.send(());
                }
                if let Some(t) = thread.take() {
                    match t.join() {
                        Ok(r) => r?,
                        Err(_) => bail!("the relay thread panicked"),
                    }
                }
                Ok(())
            }
        }
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

fn relay_bin(args: &Args) -> anyhow::Result<PathBuf> {
    if let Some(p) = &args.relay_bin {
        return Ok(p.clone());
    }
    let exe = std::env::current_exe()?;
    let p = exe
        .parent()
        .map(|d| d.join("filet-relay"))
        .context("no directory for the current executable")?;
    if !p.exists() {
        bail!(
            "{} is missing; build it first with the same profile and target directory:\n  cargo build --release -p filet-relay --bin filet-relay\n(or pass --relay-bin PATH, or use --in-process)",
            p.display()
        );
    }
    Ok(p)
}

fn start_child(args: &Args, dir: &Path, port: u16) -> anyhow::Result<RelayProc> {
    let bin = relay_bin(args)?;
    let log = dir.join("relay.log");
    let child = Command::new(&bin)
        .args(["serve", "--config"])
        .arg(dir.join("relay.toml"))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("relay.out"))?)
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let _ = port;
    let mut relay = RelayProc::Child {
        child,
        log: log.clone(),
    };
    // Ready once it logs its address (at the default log level, as in production).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("listening on")
    {
        relay.check_alive()?;
        if Instant::now() > deadline {
            bail!(
                "the relay did not start within 30 s; its log:\n{}",
                tail(&log, 20)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(relay)
}

fn start_in_process(dir: &Path) -> anyhow::Result<(RelayProc, SocketAddr)> {
    let cfg = filet_relay::config::RelayConfig::load(
        Some(&dir.join("relay.toml")),
        filet_relay::config::Overrides {
            listen: Some("127.0.0.1:0".parse()?),
            ..Default::default()
        },
    )?;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("filet-relay-rt".into())
        .spawn(move || -> anyhow::Result<()> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let relay =
                    match filet_relay::Relay::start(cfg, Arc::new(filet_relay::clock::SystemClock))
                        .await
                    {
                        Ok(r) => r,
                        Err(e) => {
                            let msg = e.to_string();
                            let _ = ready_tx.send(Err(msg.clone()));
                            bail!(msg);
                        }
                    };
                let addr = relay.local_addr()?;
                let _ = ready_tx.send(Ok((addr, relay.stats())));
                relay
                    .run(async {
                        let _ = stop_rx.await;
                    })
                    .await?;
                Ok(())
            })
        })?;
    let (addr, stats) = match ready_rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => bail!("the relay did not start: {e}"),
        Err(_) => bail!("the relay did not start within 30 s"),
    };
    Ok((
        RelayProc::InProcess {
            stop: Some(stop_tx),
            thread: Some(thread),
            stats,
        },
        addr,
    ))
}

fn node_config(pki: &Path, party: &str, unit: &str, relay: &str) -> anyhow::Result<NodeConfig> {
    let mut cfg =
        NodeConfig::from_profile_file(&pki.join("profiles").join(format!("{party}-{unit}.toml")))?;
    cfg.relay = relay.to_owned();
    Ok(cfg)
}

/// Connects, retrying while the relay starts.
async fn connect(cfg: &NodeConfig, relay: &mut RelayProc) -> anyhow::Result<Node> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match Node::connect(cfg).await {
            Ok(n) => return Ok(n),
            Err(e) => {
                relay.check_alive()?;
                if Instant::now() > deadline {
                    bail!("cannot connect to the relay: {e}");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

struct Pct {
    p50: f64,
    p99: f64,
    max: f64,
}

/// Percentiles in milliseconds of nanosecond samples.
fn pct(mut v: Vec<u64>) -> Option<Pct> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let at = |q: f64| {
        let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
        v[i] as f64 / 1e6
    };
    Some(Pct {
        p50: at(0.50),
        p99: at(0.99),
        max: v[v.len() - 1] as f64 / 1e6,
    })
}

fn fmt_pct(p: &Option<Pct>) -> String {
    match p {
        Some(p) => format!("{:.2} / {:.2} / {:.2} ms", p.p50, p.p99, p.max),
        None => "n/a".into(),
    }
}

/// The figures of one run.
struct Report {
    config: Vec<(String, String)>,
    figures: Vec<(String, String)>,
    ok: bool,
    /// Cores used by other processes during the measured period.
    other_load: f64,
}

impl Report {
    fn print(&self) {
        println!();
        println!("== bench-post ==");
        for (k, v) in &self.config {
            println!("  {k:<28} {v}");
        }
        println!("  {:-<28} {:-<40}", "", "");
        for (k, v) in &self.figures {
            println!("  {k:<28} {v}");
        }
    }

    fn markdown(&self, note: Option<&str>) -> String {
        let mut s = String::new();
        let date = Timestamp::now().to_string();
        let date = date.get(..16).unwrap_or(&date).replace('T', " ");
        let mode = self
            .config
            .iter()
            .find(|(k, _)| k == "relay")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        let inflight = self
            .config
            .iter()
            .find(|(k, _)| k == "in flight per poster")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        let _ = writeln!(
            s,
            "\n## {date} UTC — {mode}, {inflight} in flight per poster\n"
        );
        if let Some(n) = note {
            let _ = writeln!(s, "{n}\n");
        }
        let _ = writeln!(s, "| setting | value |\n|---|---|");
        for (k, v) in &self.config {
            let _ = writeln!(s, "| {k} | {v} |");
        }
        let _ = writeln!(s, "\n| figure | value |\n|---|---|");
        for (k, v) in &self.figures {
            let _ = writeln!(s, "| {k} | {v} |");
        }
        s
    }
}

const DOC_INTRO: &str = r#"# Benchmarks

Measured with `bench-post` (`tests/src/bin/bench_post.rs`): a temporary agreement in which
one rule lets poster units `P/U1..P/Un` send `runaway` alerts with every field to recipient
units `R/A, R/B, R/C...`; a dev PKI; the relay on a free loopback port, as a separate process
(`filet-relay serve`, as in production) or, with `--in-process`, on its own thread and
current-thread runtime in the bench process (to read the group-commit counters). The relay
runs with `posts_per_minute = 0` (no limit), `mailbox_max = 1000000` and `mailbox_max_per_sender = 1000000`; everything else is
the default (one network thread, one commit thread, `fdatasync` on the audit log and on
sled's file per group commit).

Every post is the shared runaway alert (`examples/alerts/runaway.toml`) with a unique
`subject.reference` (`B-<poster>-<n>`) so that each delivery is matched to its send instant.
Each recipient unit has one subscribed node that acknowledges everything it receives, with
up to 64 acknowledgements in flight (the relay's default `max_in_flight_per_stream`); the
rest wait in the bench, never holding back the delivery channel (like a QoS 1 subscriber).
Each poster keeps `--in-flight` posts outstanding (one closed loop per slot).

```sh
cargo build --release -p filet-relay --bin filet-relay   # the relay binary the bench starts
cargo run --release -p filet-tests --bin bench-post -- \
    --posters 8 --in-flight 16 --duration-secs 10 --recipients 3 \
    [--in-process] [--client-runtime current|multi] [--record] [--note "what changed"]
```

Figures (only posts sent during the measured period count for latencies; warm-up ~1 s):

- **posts/s**: receipts received per second during the measured period. A receipt means the
  alert and its audit entries are durable (`fdatasync`) and a signed checkpoint covers them.
- **post → receipt**: p50 / p99 / max from sending the post to receiving its receipt.
- **post → delivery (unit)**: p50 / p99 / max from sending the post to that recipient's
  node receiving the pushed alert (it can arrive before the poster has its receipt).
- **post → all recipients**: to the last of the recipients.
- **deliveries/s**: pushed alerts received by all recipient nodes per second.
- **acks/s**: acknowledgements answered per second, and how many deliveries still waited
  for theirs at the end of the period (a growing backlog means subscribers cannot keep up;
  with the default `mailbox_max = 10000` posts would then be refused).
- **posts per group commit**: posts / batches of the relay's commit thread during the
  measured period (`--in-process` only), with all ops (posts, deliveries, acknowledgements)
  per batch.
- **lost**: receipts whose alert did not reach every recipient by the end of the drain
  (must be 0); **errors**: failed posts or acknowledgements.
- **CPU**: seconds of CPU per second of wall time during the measured period (1.00 = one
  core), for the relay's network thread, its commit thread, and the bench client.
- **relay threads**: share of wall time each relay thread was running, runnable but waiting
  for a CPU, or blocked (I/O, waiting for work), from `/proc/.../schedstat`.
- **fdatasync (probe)**: latency of `fdatasync` after a 4 KB append on the relay's disk,
  measured just before and after the run (the disk is shared too).
- **machine CPU**: cores busy on the whole machine, and how much of it was other processes
  (a shared machine makes the figures lower and noisier; `--wait-quiet-secs N` waits for
  quiet before starting).

The machine has 2 cores; the relay and the bench share them. It is shared with other work
too: runs are recorded with `--record-max-other-load 0.3` (not recorded if other processes
used more than 0.3 cores during the measured period). `--no-ack` measures the same without
acknowledgements.

For comparison, the peers measured on this kind of machine (measured with the peer benchmark
beside the project, not in this repository; 8 publishers, 3 subscribers):

| system | acknowledgement means | msgs/s, 1 in flight | all-3 p50 / p99, 1 in flight | msgs/s, 16 in flight | all-3 p99, 16 in flight |
|---|---|---|---|---|---|
| Mosquitto 2.0.11, QoS 1, mTLS, persistence | in memory (dropped many under load) | ~31,000 | 0.31 / 2.75 ms | ~27,000 | ~8 ms |
| NATS 2.9 JetStream, mTLS, 3 durable consumers | written to the stream file, fsync every 2 min | ~14,000 | p99 ~10 ms | ~28,000 | ~24 ms |
"#;

fn record(report: &Report, note: Option<&str>) -> anyhow::Result<PathBuf> {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/benchmarks.md"
    ));
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    if f.metadata()?.len() == 0 {
        f.write_all(DOC_INTRO.as_bytes())?;
    }
    f.write_all(report.markdown(note).as_bytes())?;
    Ok(path)
}

fn git_head() -> Option<String> {
    let out = Command::new("git")
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "rev-parse",
            "--short",
            "HEAD",
        ])
        .output()
        .ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!s.is_empty()).then_some(s)
}

fn base_draft() -> anyhow::Result<AlertDraft> {
    let mut d = AlertFile::from_toml(filet_tests::RUNAWAY)
        .map_err(anyhow::Error::msg)?
        .into_draft();
    // Keep "last seen" in the past whatever the clock says.
    d.content.last_seen.at = Some(Timestamp::now().plus_ms(-3_600_000));
    Ok(d)
}

async fn run(args: Args) -> anyhow::Result<bool> {
    if args.posters == 0 || args.in_flight == 0 || args.recipients == 0 || args.recipients > 26 {
        bail!("--posters and --in-flight must be > 0, --recipients 1..=26");
    }
    let deadline = Instant::now() + Duration::from_secs(args.wait_quiet_secs);
    loop {
        let busy = machine_busy_over(Duration::from_secs(1));
        if busy < 0.25 {
            break;
        }
        if Instant::now() >= deadline {
            if args.wait_quiet_secs > 0 {
                eprintln!("warning: the machine is not quiet ({busy:.2} cores busy before the start); measuring anyway");
            } else {
                eprintln!("note: {busy:.2} cores busy before the start (other processes); figures may be lower than on a quiet machine (--wait-quiet-secs N waits)");
            }
            break;
        }
    }
    let dir = std::env::temp_dir().join(format!(
        "filet-bench-{}-{}",
        std::process::id(),
        Timestamp::now().0
    ));
    std::fs::create_dir_all(&dir)?;
    let result = run_in(&args, &dir).await;
    if args.keep {
        println!("working directory kept: {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

async fn run_in(args: &Args, dir: &Path) -> anyhow::Result<bool> {
    // 1. Agreement, PKI, relay configuration.
    let probe_before = fsync_probe(dir);
    let agreement = dir.join("agreement.toml");
    std::fs::write(&agreement, agreement_text(args.posters, args.recipients))?;
    let port = if args.in_process { 0 } else { free_udp_port()? };
    let relay_addr = format!("127.0.0.1:{port}");
    let pki = dir.join("pki");
    filet_certs::dev(&pki, &agreement, &relay_addr, false)?;
    std::fs::write(
        dir.join("relay.toml"),
        format!(
            "listen = \"{relay_addr}\"\ndata_dir = \"data\"\nagreement = \"agreement.toml\"\npki_dir = \"pki\"\n\n[limits]\nposts_per_minute = 0\nmailbox_max = 1000000\nmailbox_max_per_sender = 1000000\n"
        ),
    )?;

    // 2. The relay.
    let (mut relay, addr) = if args.in_process {
        let (r, a) = start_in_process(dir)?;
        (r, a.to_string())
    } else {
        (start_child(args, dir, port)?, relay_addr.clone())
    };
    let result = drive(args, &pki, &addr, &mut relay).await;
    let stopped = relay.stop();
    let mut report = result?;
    stopped?;
    let probe_after = fsync_probe(dir);
    let f = |p: Option<(f64, f64)>| match p {
        Some((a, b)) => format!("{a:.2} / {b:.2} ms"),
        None => "n/a".into(),
    };
    report.figures.push((
        "fdatasync p50/p99 (probe)".to_owned(),
        format!(
            "{} before, {} after (4 KB appends on the relay's disk)",
            f(probe_before),
            f(probe_after)
        ),
    ));
    report.print();
    if args.record {
        if report.other_load > args.record_max_other_load {
            println!(
                "\nnot recorded: other processes used {:.2} cores during the period (more than --record-max-other-load {:.2})",
                report.other_load, args.record_max_other_load
            );
            return Ok(false);
        }
        let path = record(&report, args.note.as_deref())?;
        println!("\nrecorded in {}", path.display());
    }
    Ok(report.ok)
}

async fn drive(
    args: &Args,
    pki: &Path,
    addr: &str,
    relay: &mut RelayProc,
) -> anyhow::Result<Report> {
    let book = Arc::new(Book {
        t0: Instant::now(),
        recs: Mutex::new(HashMap::with_capacity(1 << 20)),
        posts_ok: AtomicU64::new(0),
        posts_err: AtomicU64::new(0),
        deliveries: AtomicU64::new(0),
        duplicates: AtomicU64::new(0),
        unknown: AtomicU64::new(0),
        wrong_alert: AtomicU64::new(0),
        acks_ok: AtomicU64::new(0),
        acks_err: AtomicU64::new(0),
        first_error: Mutex::new(None),
    });
    let r = args.recipients;
    let relay_pid = match relay {
        RelayProc::Child { child, .. } => child.id(),
        RelayProc::InProcess { .. } => std::process::id(),
    };
    let rss_base = proc_kib(relay_pid, "VmRSS");

    // 3. Recipients connect and subscribe; each acknowledges what it receives.
    let mut recipients = Vec::new();
    let mut ack_sems = Vec::new();
    let mut subscribers = tokio::task::JoinSet::new();
    for i in 0..r {
        let cfg = node_config(pki, "R", &recipient_code(i), addr)?;
        let node = Arc::new(connect(&cfg, relay).await?);
        let mut rx = node.subscribe().await?;
        let sem = Arc::new(Semaphore::new(ACKS_IN_FLIGHT));
        ack_sems.push(sem.clone());
        recipients.push(node.clone());
        let (ack_tx, mut ack_rx) = tokio::sync::mpsc::unbounded_channel::<AlertId>();
        {
            let book = book.clone();
            let node = node.clone();
            subscribers.spawn(async move {
                while let Some(id) = ack_rx.recv().await {
                    let Ok(permit) = sem.clone().acquire_owned().await else {
                        break;
                    };
                    let node = node.clone();
                    let book = book.clone();
                    tokio::spawn(async move {
                        match node.ack(id).await {
                            Ok(_) => {
                                book.acks_ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                book.acks_err.fetch_add(1, Ordering::Relaxed);
                                book.error(format!("ack {id}: {e}"));
                            }
                        }
                        drop(permit);
                    });
                }
            });
        }
        let book = book.clone();
        let no_ack = args.no_ack;
        subscribers.spawn(async move {
            while let Some(d) = rx.recv().await {
                let now = ns_since(book.t0);
                book.deliveries.fetch_add(1, Ordering::Relaxed);
                let k = d
                    .content
                    .subject
                    .reference
                    .as_deref()
                    .and_then(parse_reference);
                let mut known = false;
                if let (Some(k), Ok(mut recs)) = (k, book.recs.lock()) {
                    if let Some(rec) = recs.get_mut(&k) {
                        known = true;
                        if rec.delivered[i] != 0 {
                            book.duplicates.fetch_add(1, Ordering::Relaxed);
                        } else {
                            rec.delivered[i] = now;
                        }
                        if rec.alert.is_some_and(|a| a != d.envelope.id) {
                            book.wrong_alert.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                if !known
                    && !d
                        .content
                        .subject
                        .reference
                        .as_deref()
                        .is_some_and(|r| r.starts_with("W-"))
                {
                    book.unknown.fetch_add(1, Ordering::Relaxed);
                }
                // Never block this loop on acknowledgements: the node reads responses and
                // deliveries in one task, so a full delivery buffer would also hold back
                // the answers to the acks awaited here (a deadlock).
                if !no_ack {
                    let _ = ack_tx.send(d.envelope.id);
                }
            }
        });
    }

    // 4. Posters.
    let draft = base_draft()?;
    let post_frame_len = filet_proto::codec::encode_frame(&filet_proto::wire::ClientFrame {
        id: 1,
        request: filet_proto::wire::Request::Post {
            draft: {
                let mut d = draft.clone();
                d.content.subject.reference = Some("B-1-100000".into());
                d
            },
            idempotency_key: [0; 16],
        },
    })
    .map(|f| f.len())
    .unwrap_or(0);
    let mut posters = Vec::new();
    for p in 1..=args.posters {
        let cfg = node_config(pki, "P", &format!("U{p}"), addr)?;
        posters.push(Arc::new(connect(&cfg, relay).await?));
    }
    // One post end to end before the clock starts (handshakes, first sled writes).
    let mut first = draft.clone();
    first.content.subject.reference = Some("W-0".into());
    posters[0].post(first).await?;
    let rss_idle = proc_kib(relay_pid, "VmRSS");

    let warm = Duration::from_secs_f64(args.warmup_secs.max(0.0));
    let measured = Duration::from_secs(args.duration_secs.max(1));
    let start = book.t0.elapsed();
    let warm_end = start + warm;
    let end = warm_end + measured;
    let (warm_ns, end_ns) = (warm_end.as_nanos() as u64, end.as_nanos() as u64);

    let mut slots = tokio::task::JoinSet::new();
    for (pi, node) in posters.iter().enumerate() {
        let p = pi + 1;
        let counter = Arc::new(AtomicU64::new(0));
        for _ in 0..args.in_flight {
            let node = node.clone();
            let book = book.clone();
            let counter = counter.clone();
            let mut draft = draft.clone();
            slots.spawn(async move {
                while ns_since(book.t0) < end_ns {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let k = key(p, n);
                    draft.content.subject.reference = Some(format!("B-{p}-{n}"));
                    if let Ok(mut recs) = book.recs.lock() {
                        recs.insert(
                            k,
                            Rec {
                                sent: ns_since(book.t0),
                                receipt: 0,
                                alert: None,
                                delivered: vec![0; r],
                            },
                        );
                    }
                    match node.post(draft.clone()).await {
                        Ok(receipt) => {
                            let now = ns_since(book.t0);
                            book.posts_ok.fetch_add(1, Ordering::Relaxed);
                            if let Ok(mut recs) = book.recs.lock() {
                                if let Some(rec) = recs.get_mut(&k) {
                                    rec.receipt = now;
                                    rec.alert = Some(receipt.alert);
                                }
                            }
                        }
                        Err(e) => {
                            book.posts_err.fetch_add(1, Ordering::Relaxed);
                            book.error(format!("post B-{p}-{n}: {e}"));
                            if let Ok(mut recs) = book.recs.lock() {
                                recs.remove(&k);
                            }
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
            });
        }
    }

    // 5. Counters at the edges of the measured period.
    let self_pid = std::process::id();
    tokio::time::sleep(warm_end.saturating_sub(book.t0.elapsed())).await;
    let cpu0 = (cpu_by_thread(relay_pid), cpu_by_thread(self_pid));
    let mach0 = machine_cpu();
    let sched0 = sched_by_thread(relay_pid);
    let acks0 = book.acks_ok.load(Ordering::Relaxed);
    let stats0 = relay.stats();
    let wall0 = Instant::now();
    tokio::time::sleep(end.saturating_sub(book.t0.elapsed())).await;
    let cpu1 = (cpu_by_thread(relay_pid), cpu_by_thread(self_pid));
    let mach1 = machine_cpu();
    let sched1 = sched_by_thread(relay_pid);
    let acks1 = book.acks_ok.load(Ordering::Relaxed);
    let ack_backlog = if args.no_ack {
        0
    } else {
        book.deliveries
            .load(Ordering::Relaxed)
            .saturating_sub(acks1 + book.acks_err.load(Ordering::Relaxed))
    };
    let stats1 = relay.stats();
    let wall = wall0.elapsed().as_secs_f64();
    let (rss_busy, rss_peak) = (proc_kib(relay_pid, "VmRSS"), proc_kib(relay_pid, "VmHWM"));

    // 6. Drain: outstanding posts, then deliveries of every receipt, then acks.
    let drain_deadline = Instant::now() + Duration::from_secs(args.drain_timeout_secs);
    let drained_posts = tokio::time::timeout_at(drain_deadline.into(), async {
        while slots.join_next().await.is_some() {}
    })
    .await
    .is_ok();
    slots.abort_all();
    let all_delivered = |book: &Book| -> usize {
        book.recs
            .lock()
            .map(|recs| {
                recs.values()
                    .filter(|x| x.receipt != 0 && x.delivered.contains(&0))
                    .count()
            })
            .unwrap_or(usize::MAX)
    };
    while all_delivered(&book) > 0 && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let acks_pending = |book: &Book| {
        !args.no_ack
            && book.deliveries.load(Ordering::Relaxed)
                > book.acks_ok.load(Ordering::Relaxed) + book.acks_err.load(Ordering::Relaxed)
    };
    while (acks_pending(&book)
        || ack_sems
            .iter()
            .any(|s| s.available_permits() < ACKS_IN_FLIGHT))
        && Instant::now() < drain_deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drained_at = book.t0.elapsed().saturating_sub(end).as_secs_f64();
    let acks_left = if args.no_ack {
        0
    } else {
        book.deliveries.load(Ordering::Relaxed).saturating_sub(
            book.acks_ok.load(Ordering::Relaxed) + book.acks_err.load(Ordering::Relaxed),
        )
    };

    // 7. Close the nodes (cleanly, so that the relay stops at once).
    subscribers.abort_all();
    while subscribers.join_next().await.is_some() {}
    for n in recipients.into_iter().chain(posters) {
        if let Ok(n) = Arc::try_unwrap(n) {
            n.close().await;
        }
    }

    // 8. Figures.
    let recs = book.recs.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let in_window = |t: u64| t >= warm_ns && t < end_ns;
    let receipts_in_window = recs.values().filter(|x| in_window(x.receipt)).count();
    let deliveries_in_window: usize = recs
        .values()
        .map(|x| x.delivered.iter().filter(|&&t| in_window(t)).count())
        .sum();
    let measured_recs: Vec<&Rec> = recs.values().filter(|x| in_window(x.sent)).collect();
    let receipt_lat = pct(measured_recs
        .iter()
        .filter(|x| x.receipt != 0)
        .map(|x| x.receipt - x.sent)
        .collect());
    let per_unit: Vec<Option<Pct>> = (0..r)
        .map(|i| {
            pct(measured_recs
                .iter()
                .filter(|x| x.delivered[i] != 0)
                .map(|x| x.delivered[i] - x.sent)
                .collect())
        })
        .collect();
    let all_lat = pct(measured_recs
        .iter()
        .filter(|x| x.delivered.iter().all(|&t| t != 0))
        .filter_map(|x| x.delivered.iter().max().map(|m| m - x.sent))
        .collect());
    let with_receipt = recs.values().filter(|x| x.receipt != 0).count();
    let lost = recs
        .values()
        .filter(|x| x.receipt != 0 && x.delivered.contains(&0))
        .count();
    let unanswered = recs.values().filter(|x| x.receipt == 0).count();
    drop(recs);

    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mut config = vec![
        (
            "relay".to_owned(),
            if args.in_process {
                "in-process (own thread, current-thread runtime)".to_owned()
            } else {
                "child process (filet-relay serve)".to_owned()
            },
        ),
        (
            "client runtime".to_owned(),
            match args.client_runtime {
                ClientRuntime::Current => "current_thread".to_owned(),
                ClientRuntime::Multi => format!("multi_thread ({cores} workers)"),
            },
        ),
        ("posters".to_owned(), args.posters.to_string()),
        (
            "in flight per poster".to_owned(),
            args.in_flight.to_string(),
        ),
        ("recipients".to_owned(), r.to_string()),
        (
            "acks in flight per recipient".to_owned(),
            if args.no_ack {
                "none: recipients do not acknowledge (--no-ack)".to_owned()
            } else {
                ACKS_IN_FLIGHT.to_string()
            },
        ),
        (
            "warm-up / measured".to_owned(),
            format!("{:.1} s / {} s", warm.as_secs_f64(), measured.as_secs()),
        ),
        (
            "post".to_owned(),
            format!(
                "runaway.toml ({} bytes TOML, {post_frame_len} bytes on the wire)",
                filet_tests::RUNAWAY.len()
            ),
        ),
        ("cores".to_owned(), cores.to_string()),
    ];
    if let Some(h) = git_head() {
        config.push(("commit".to_owned(), h));
    }

    let mut figures = vec![
        (
            "posts/s (receipts)".to_owned(),
            format!("{:.0}", receipts_in_window as f64 / wall),
        ),
        (
            "post → receipt p50/p99/max".to_owned(),
            fmt_pct(&receipt_lat),
        ),
    ];
    for (i, p) in per_unit.iter().enumerate() {
        figures.push((
            format!("post → R/{} p50/p99/max", recipient_code(i)),
            fmt_pct(p),
        ));
    }
    figures.push((format!("post → all {r} p50/p99/max"), fmt_pct(&all_lat)));
    figures.push((
        "deliveries/s".to_owned(),
        format!("{:.0}", deliveries_in_window as f64 / wall),
    ));
    figures.push((
        "acks/s".to_owned(),
        format!(
            "{:.0} ({ack_backlog} deliveries not yet acknowledged at the end of the period)",
            (acks1 - acks0) as f64 / wall
        ),
    ));
    figures.push((
        "posts per group commit".to_owned(),
        match (stats0, stats1) {
            (Some((b0, p0, o0)), Some((b1, p1, o1))) if b1 > b0 => format!(
                "{:.1} ({:.1} ops per commit, {:.0} commits/s)",
                (p1 - p0) as f64 / (b1 - b0) as f64,
                (o1 - o0) as f64 / (b1 - b0) as f64,
                (b1 - b0) as f64 / wall
            ),
            _ => "n/a (child process; use --in-process)".to_owned(),
        },
    ));
    let ((rt0, rtot0), (st0, stot0)) = &cpu0;
    let ((rt1, rtot1), (st1, stot1)) = &cpu1;
    let d = |a: &HashMap<String, f64>, b: &HashMap<String, f64>, name: &str| {
        (b.get(name).copied().unwrap_or(0.0) - a.get(name).copied().unwrap_or(0.0)) / wall
    };
    let cpu = if args.in_process {
        let net = d(rt0, rt1, "filet-relay-rt");
        let commit = d(rt0, rt1, "filet-commit");
        let total = (stot1 - stot0) / wall;
        format!(
            "relay network {net:.2}, commit {commit:.2}; bench client {:.2} (process {total:.2})",
            total - net - commit
        )
    } else {
        let total = (rtot1 - rtot0) / wall;
        let commit = d(rt0, rt1, "filet-commit");
        format!(
            "relay {total:.2} (network {:.2}, commit {commit:.2}, other {:.2}); bench client {:.2}",
            d(rt0, rt1, "filet-relay"),
            total - commit - d(rt0, rt1, "filet-relay"),
            (stot1 - stot0) / wall
        )
    };
    let _ = (st0, st1);
    figures.push(("CPU (cores)".to_owned(), cpu));
    let nodes = (r + args.posters) as u64;
    let mib = |k: u64| k as f64 / 1024.0;
    figures.push((
        "relay memory (RSS)".to_owned(),
        match (rss_base, rss_idle, rss_busy, rss_peak) {
            (Some(b), Some(i), Some(u), Some(h)) => format!(
                "{:.1} MiB before the nodes; {:.1} MiB with {nodes} idle nodes ({} KiB per idle node); {:.1} MiB busy, peak {:.1} MiB ({} KiB per busy node, from the peak){}",
                mib(b),
                mib(i),
                i.saturating_sub(b) / nodes.max(1),
                mib(u),
                mib(h),
                h.saturating_sub(b) / nodes.max(1),
                if args.in_process { "; in process: the nodes' memory counts too" } else { "" }
            ),
            _ => "n/a (no /proc)".to_owned(),
        },
    ));
    let net_name = if args.in_process {
        "filet-relay-rt"
    } else {
        "filet-relay"
    };
    let sd = |name: &str| {
        let a = sched0.get(name).copied().unwrap_or_default();
        let b = sched1.get(name).copied().unwrap_or_default();
        ((b.0 - a.0) / wall, (b.1 - a.1) / wall)
    };
    let (nr, nw) = sd(net_name);
    let (cr, cw) = sd("filet-commit");
    figures.push((
        "relay threads (share of time)".to_owned(),
        format!(
            "network: running {nr:.2}, waiting for a CPU {nw:.2}, blocked/idle {:.2}; commit: running {cr:.2}, waiting for a CPU {cw:.2}, blocked (I/O, queue) {:.2}",
            (1.0 - nr - nw).max(0.0),
            (1.0 - cr - cw).max(0.0)
        ),
    ));
    let ours = if args.in_process {
        stot1 - stot0
    } else {
        (rtot1 - rtot0) + (stot1 - stot0)
    } / wall;
    let busy = (mach1.0 - mach0.0) / wall;
    let other_load = (busy - ours).max(0.0);
    figures.push((
        "machine CPU (cores)".to_owned(),
        format!("{busy:.2} of {cores} busy; other processes {other_load:.2}"),
    ));
    let posts_err = book.posts_err.load(Ordering::Relaxed);
    let acks_err = book.acks_err.load(Ordering::Relaxed);
    figures.push((
        "receipts / deliveries / acks".to_owned(),
        format!(
            "{with_receipt} / {} / {} (all phases)",
            book.deliveries.load(Ordering::Relaxed),
            book.acks_ok.load(Ordering::Relaxed)
        ),
    ));
    figures.push((
        "lost".to_owned(),
        format!(
            "{lost} (receipts not delivered to all {r}; drained in {drained_at:.2} s{})",
            if drained_posts {
                ""
            } else {
                ", posts still outstanding at the drain timeout"
            }
        ),
    ));
    let dups = book.duplicates.load(Ordering::Relaxed);
    let unknown = book.unknown.load(Ordering::Relaxed);
    let wrong = book.wrong_alert.load(Ordering::Relaxed);
    figures.push((
        "errors".to_owned(),
        format!(
            "posts {posts_err}, acks {acks_err}, acks never sent or answered {acks_left}, unanswered {unanswered}, duplicate deliveries {dups}, unmatched {unknown}, wrong id {wrong}{}",
            book.first_error
                .lock()
                .ok()
                .and_then(|e| e.clone())
                .map(|e| format!(" — first: {e}"))
                .unwrap_or_default()
        ),
    ));
    let ok = lost == 0 && posts_err == 0 && acks_err == 0 && wrong == 0 && drained_posts;
    Ok(Report {
        config,
        figures,
        ok,
        other_load,
    })
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let rt = match args.client_runtime {
        ClientRuntime::Current => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        ClientRuntime::Multi => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench-post: cannot start the runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    match rt.block_on(run(args)) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("bench-post: something was lost or failed (see above)");
            std::process::ExitCode::from(3)
        }
        Err(e) => {
            eprintln!("bench-post: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
