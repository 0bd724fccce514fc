//! `bench-audit`: the audit log at scale. Builds a log of `--entries` (default 1,000,000)
//! realistic entries with the relay's own files (`filet_relay::audit_log`), committing
//! (`fdatasync`) every `--batch` entries, and prints:
//!
//! - the append rate (entries/s, with the commits);
//! - at 1,000 / 100,000 / 1,000,000 entries: the time to produce an inclusion proof and a
//!   consistency proof (mean and p99 over random indices and sizes) and their sizes, which
//!   must grow no faster than log n;
//! - the full offline verification rate (entries/s: read every entry, hash it as a leaf,
//!   recompute the root, compare), next to the raw SHA-256 rate of this machine measured in
//!   the same run.
//!
//! ```sh
//! cargo run --release -p filet-tests --bin bench-audit -- [--entries 1000000] [--record]
//! ```

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use filet_proto::alert::{Category, FieldSet, Status};
use filet_proto::audit::{Entry, Event};
use filet_proto::merkle::{self, MemoryTree};
use filet_proto::{AlertId, Timestamp};
use filet_relay::audit_log::AuditLog;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(about = "Builds a large audit log and measures appends, proofs and verification")]
struct Args {
    /// Entries in the log.
    #[arg(long, default_value_t = 1_000_000)]
    entries: u64,
    /// Entries per commit (fdatasync).
    #[arg(long, default_value_t = 1000)]
    batch: u64,
    /// Proofs timed at each size.
    #[arg(long, default_value_t = 2000)]
    proofs: usize,
    /// Append the figures to docs/benchmarks.md.
    #[arg(long)]
    record: bool,
    /// A note for the record.
    #[arg(long, default_value = "")]
    note: String,
}

/// A deterministic generator (SplitMix64): the same indices every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn entry(i: u64) -> Vec<u8> {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&i.to_be_bytes());
    let e = Entry::new(
        i,
        Timestamp(1_796_000_000_000 + i as i64),
        Event::Disclosed {
            alert: AlertId(id),
            sender: "SPVQ/ESM/spvq-esm-01".parse().expect("principal"),
            recipient: "DPJ/RTS".parse().expect("unit"),
            category: Category::Runaway,
            status: Status::Actual,
            rules: vec!["police-vers-protection".into()],
            legal_bases: vec![
                "LPJ art. 35.4 et 72.7; Entente multisectorielle §4 (illustratif)".into(),
            ],
            fields: FieldSet::all(),
        },
    );
    e.to_bytes()
}

struct ProofFigures {
    size: u64,
    incl_mean_us: f64,
    incl_p99_us: f64,
    incl_hashes: f64,
    cons_mean_us: f64,
    cons_p99_us: f64,
    cons_hashes: f64,
}

fn stats(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let mean = v.iter().map(|d| d.as_secs_f64()).sum::<f64>() / v.len().max(1) as f64 * 1e6;
    let p99 = v
        .get(((v.len() as f64) * 0.99) as usize)
        .or(v.last())
        .map(|d| d.as_secs_f64() * 1e6)
        .unwrap_or(0.0);
    (mean, p99)
}

fn measure_proofs(
    log: &AuditLog,
    size: u64,
    n: usize,
    rng: &mut Rng,
) -> anyhow::Result<ProofFigures> {
    let r = log.reader();
    let root = r.root(size)?;
    let mut times = Vec::with_capacity(n);
    let mut hashes = 0usize;
    for _ in 0..n {
        let i = rng.below(size);
        let t = Instant::now();
        let p = r.inclusion_proof(i, size)?;
        times.push(t.elapsed());
        hashes += p.len();
        // Every proof the relay produces must verify.
        let leaf = merkle::leaf_hash(&r.entry(i)?);
        merkle::verify_inclusion(&leaf, i, size, &p, &root)
            .map_err(|e| anyhow::anyhow!("inclusion {i}/{size}: {e}"))?;
    }
    let (incl_mean_us, incl_p99_us) = stats(times);
    let incl_hashes = hashes as f64 / n as f64;
    let mut times = Vec::with_capacity(n);
    let mut hashes = 0usize;
    for _ in 0..n {
        let old = 1 + rng.below(size);
        let t = Instant::now();
        let p = r.consistency_proof(old, size)?;
        times.push(t.elapsed());
        hashes += p.len();
        merkle::verify_consistency(old, size, &r.root(old)?, &root, &p)
            .map_err(|e| anyhow::anyhow!("consistency {old}->{size}: {e}"))?;
    }
    let (cons_mean_us, cons_p99_us) = stats(times);
    Ok(ProofFigures {
        size,
        incl_mean_us,
        incl_p99_us,
        incl_hashes,
        cons_mean_us,
        cons_p99_us,
        cons_hashes: hashes as f64 / n as f64,
    })
}

fn run(a: &Args) -> anyhow::Result<String> {
    let dir = tempfile::tempdir()?;
    let (mut log, _) = AuditLog::open(&dir.path().join("audit"))?;
    let marks: Vec<u64> = [1_000u64, 100_000, 1_000_000, 10_000_000]
        .into_iter()
        .filter(|m| *m <= a.entries)
        .collect();
    let mut rng = Rng(0x5EED);
    let mut figures = Vec::new();
    let mut bytes = 0u64;
    let started = Instant::now();
    let mut append_time = Duration::ZERO;
    let mut i = 0u64;
    while i < a.entries {
        let t = Instant::now();
        let end = (i + a.batch).min(a.entries);
        for k in i..end {
            let e = entry(k);
            bytes += e.len() as u64;
            log.append(&e)?;
        }
        log.commit()?;
        append_time += t.elapsed();
        i = end;
        if marks.contains(&i) {
            figures.push(measure_proofs(&log, i, a.proofs, &mut rng)?);
        }
    }
    let append_rate = a.entries as f64 / append_time.as_secs_f64();
    let total = started.elapsed();

    // Full offline verification, as an auditor runs it: an audit directory (entries.jsonl,
    // leaves.bin, a signed checkpoint, the pinned key) verified by `filet audit verify
    // --dir` (every entry parsed, checked against its leaf and the signed root).
    let r = log.reader();
    let want = r.root(a.entries)?;
    let d = dir.path().join("auditor");
    std::fs::create_dir_all(d.join("checkpoints"))?;
    {
        let mut jsonl = std::io::BufWriter::new(std::fs::File::create(d.join("entries.jsonl"))?);
        let mut leaves = std::io::BufWriter::new(std::fs::File::create(d.join("leaves.bin"))?);
        for k in 0..a.entries {
            let e = r.entry(k)?;
            jsonl.write_all(&e)?;
            jsonl.write_all(b"\n")?;
            leaves.write_all(&merkle::leaf_hash(&e))?;
        }
        jsonl.flush()?;
        leaves.flush()?;
    }
    let origin = "filet.example/bench-audit";
    let signer = filet_proto::checkpoint::NoteSigner::from_seed(origin, &[9u8; 32])?;
    let cp = filet_proto::checkpoint::Checkpoint {
        origin: origin.into(),
        size: a.entries,
        root: want,
        extensions: Vec::new(),
    };
    std::fs::write(
        d.join(format!("checkpoints/{:020}.note", a.entries)),
        signer.sign(&cp.to_text())?,
    )?;
    std::fs::write(d.join("verifier.key"), signer.verifier_key())?;
    std::fs::write(d.join("scope"), "full\n")?;
    let verified_bytes = std::fs::metadata(d.join("entries.jsonl"))?.len();
    let t = Instant::now();
    let report = filet_client::audit_dir::verify(&d, None)?;
    let verify = t.elapsed();
    anyhow::ensure!(
        report.entries == a.entries,
        "verified {} entries",
        report.entries
    );
    let verify_rate = a.entries as f64 / verify.as_secs_f64();
    // The hashing alone: read the file, hash every line as a leaf, recompute the root.
    let t = Instant::now();
    let text = std::fs::read(d.join("entries.jsonl"))?;
    let mut tree = MemoryTree::new();
    for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        tree.push_leaf(line);
    }
    anyhow::ensure!(
        tree.root() == want,
        "the recomputed root differs from the log's"
    );
    let hash_only = t.elapsed();

    // Raw SHA-256 on the same machine, same data sizes, same run.
    let sample: Vec<Vec<u8>> = (0..10_000).map(entry).collect();
    let t = Instant::now();
    let mut n = 0u64;
    let mut raw_bytes = 0u64;
    let mut sink = 0u8;
    while t.elapsed() < Duration::from_secs(2) {
        for e in &sample {
            let d = ring::digest::digest(&ring::digest::SHA256, e);
            sink ^= d.as_ref()[0];
            raw_bytes += e.len() as u64;
            n += 1;
        }
    }
    let raw = t.elapsed().as_secs_f64();
    let raw_rate = n as f64 / raw;
    let raw_mbps = raw_bytes as f64 / raw / 1e6;

    let avg = bytes as f64 / a.entries as f64;
    let mut out = String::new();
    out.push_str(&format!(
        "| entries | {} ({:.0} bytes each on average, {:.0} MB) |\n",
        a.entries,
        avg,
        bytes as f64 / 1e6
    ));
    out.push_str(&format!(
        "| append (with `fdatasync` every {} entries) | {:.0} entries/s ({:.1} s in all, proofs included {:.1} s) |\n",
        a.batch,
        append_rate,
        append_time.as_secs_f64(),
        total.as_secs_f64()
    ));
    for f in &figures {
        out.push_str(&format!(
            "| proofs at {} entries | inclusion {:.1} µs mean, {:.1} µs p99, {:.1} hashes ({:.0} bytes); consistency {:.1} µs mean, {:.1} µs p99, {:.1} hashes |\n",
            f.size, f.incl_mean_us, f.incl_p99_us, f.incl_hashes, f.incl_hashes * 32.0, f.cons_mean_us, f.cons_p99_us, f.cons_hashes
        ));
    }
    out.push_str(&format!(
        "| full offline verification (`filet audit verify --dir`) | {:.0} entries/s ({:.0} MB/s of entries: every entry parsed, its leaf checked, the root recomputed twice) |\n",
        verify_rate,
        verified_bytes as f64 / verify.as_secs_f64() / 1e6
    ));
    out.push_str(&format!(
        "| hashing alone (read entries.jsonl, leaf hashes, root) | {:.0} entries/s ({:.0} MB/s) |\n",
        a.entries as f64 / hash_only.as_secs_f64(),
        verified_bytes as f64 / hash_only.as_secs_f64() / 1e6
    ));
    out.push_str(&format!(
        "| raw SHA-256 (ring), same run | {:.0} hashes/s of {:.0}-byte inputs ({:.0} MB/s){} |\n",
        raw_rate,
        avg,
        raw_mbps,
        if sink == 0xFF { " " } else { "" }
    ));
    Ok(out)
}

fn main() -> ExitCode {
    let a = Args::parse();
    match run(&a) {
        Ok(table) => {
            let head = "| figure | value |\n|---|---|\n";
            println!("== bench-audit ==\n{head}{table}");
            if a.record {
                let path = PathBuf::from(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../docs/benchmarks.md"
                ));
                let when = Timestamp::now().to_string();
                let section = format!(
                    "\n## {} — audit log at scale (bench-audit){}\n\nThe relay's audit log files (`filet_relay::audit_log`) on this machine's disk; proofs over random indices and sizes, each verified. Proof time must grow no faster than log n.\n\n{head}{table}",
                    &when[..16],
                    if a.note.is_empty() { String::new() } else { format!(" — {}", a.note) }
                );
                match std::fs::OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .and_then(|mut f| f.write_all(section.as_bytes()))
                {
                    Ok(()) => println!("recorded in {}", path.display()),
                    Err(e) => eprintln!("cannot record in {}: {e}", path.display()),
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench-audit: {e:#}");
            ExitCode::from(1)
        }
    }
}
