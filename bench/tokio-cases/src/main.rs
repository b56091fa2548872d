//! tokio-cases: Tokio 1.24's side of the runtime cases Shoal measures beyond the shared anchor
//! (../shared/anchors/tokio-bench). `build/bench/shoal-rt-bench` runs the same cases under the
//! same names, with the same parameters, so `bench/compare_runtime.py` can set them side by side.
//!
//!   tokio-cases list
//!   tokio-cases one timers_100k/mt2      one case, once: `name: value unit` lines
//!   tokio-cases all [--reps N]           every case N times, each in a fresh process; medians
//!
//! Every case does a fixed amount of work. Multi-thread cases (`mt2`, two workers) also report a
//! core-to-core round trip before and after, which tells apart how the host placed the two vCPUs.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::runtime::{Builder, Runtime};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

const WORKERS: usize = 2;

struct Metric {
    name: String,
    value: f64,
    unit: &'static str,
}

fn metric(name: String, value: f64, unit: &'static str) -> Metric {
    Metric { name, value, unit }
}

fn ns_each(d: Duration, n: u64) -> f64 {
    d.as_nanos() as f64 / n as f64
}

fn build(mt: bool) -> Runtime {
    let mut b = if mt {
        let mut b = Builder::new_multi_thread();
        b.worker_threads(WORKERS);
        b
    } else {
        Builder::new_current_thread()
    };
    b.enable_time().build().expect("runtime")
}

/// The body runs as a spawned task, so `tokio::spawn` inside it is a worker-local spawn.
fn run_on<F>(mt: bool, body: F) -> Vec<Metric>
where
    F: Future<Output = Vec<Metric>> + Send + 'static,
{
    let rt = build(mt);
    let out = rt.block_on(async move { tokio::spawn(body).await.expect("benchmark task") });
    rt.shutdown_background();
    out
}

// ------------------------------------------------------------------------------- timers

/// Index `q * n` of the sorted samples (the last one for q = 1), in microseconds.
fn percentile_us(sorted: &[Duration], q: f64) -> f64 {
    let i = ((q * sorted.len() as f64) as usize).min(sorted.len() - 1);
    sorted[i].as_secs_f64() * 1e6
}

/// `n` tasks each sleep 1 ms from when they start; how late does each one wake?
async fn timers(p: String, n: usize) -> Vec<Metric> {
    let t0 = Instant::now();
    let handles: Vec<JoinHandle<Duration>> = (0..n)
        .map(|_| {
            tokio::spawn(async {
                let deadline = tokio::time::Instant::now() + Duration::from_millis(1);
                tokio::time::sleep_until(deadline).await;
                tokio::time::Instant::now() - deadline
            })
        })
        .collect();
    let mut late = Vec::with_capacity(n);
    for h in handles {
        late.push(h.await.expect("timer task"));
    }
    let elapsed = t0.elapsed();
    late.sort_unstable();
    vec![
        metric(format!("{p}.lateness_p50"), percentile_us(&late, 0.50), "us"),
        metric(format!("{p}.lateness_p99"), percentile_us(&late, 0.99), "us"),
        metric(format!("{p}.lateness_max"), percentile_us(&late, 1.0), "us"),
        metric(format!("{p}.elapsed"), elapsed.as_secs_f64() * 1e3, "ms"),
    ]
}

// ------------------------------------------------------------------------ spawn_blocking

/// One task hands `n` trivial closures to the blocking pool, one after another.
async fn blocking_round_trip(p: String, n: u64) -> Vec<Metric> {
    let t0 = Instant::now();
    let mut sum = 0u64;
    for i in 0..n {
        sum += tokio::task::spawn_blocking(move || i).await.expect("blocking closure");
    }
    let d = t0.elapsed();
    assert_eq!(sum, n * (n - 1) / 2);
    vec![metric(format!("{p}.round_trip"), ns_each(d, n), "ns")]
}

// ------------------------------------------------------------------------------ join_set

/// `n` trivial tasks, spawned into sets of `batch` and collected as each one finishes.
async fn join_set(p: String, n: u64, batch: u64) -> Vec<Metric> {
    let t0 = Instant::now();
    let mut sum = 0u64;
    for _ in 0..n / batch {
        let mut set = JoinSet::new();
        for i in 0..batch {
            set.spawn(async move { i });
        }
        while let Some(r) = set.join_next().await {
            sum += r.expect("join_set task");
        }
    }
    let d = t0.elapsed();
    assert_eq!(sum, (n / batch) * batch * (batch - 1) / 2);
    vec![metric(format!("{p}.per_task"), ns_each(d, n), "ns")]
}

// -------------------------------------------------------------------------------- select

async fn produce(tx: mpsc::Sender<u64>, n: u64) {
    for i in 0..n {
        if tx.send(i).await.is_err() {
            return;
        }
    }
}

/// One consumer takes `total` messages from `rxs.len()` producers' channels with a select over
/// all of them, until every channel is closed (the select's `else`).
async fn select_consume(p: String, total: u64, branches: usize) -> Vec<Metric> {
    let mut rxs = Vec::new();
    for _ in 0..branches {
        let (tx, rx) = mpsc::channel::<u64>(1024);
        tokio::spawn(produce(tx, total / branches as u64));
        rxs.push(rx);
    }
    let t0 = Instant::now();
    let got = if branches == 2 { select2(rxs).await } else { select8(rxs).await };
    let d = t0.elapsed();
    assert_eq!(got, total);
    vec![metric(format!("{p}.throughput"), got as f64 / d.as_secs_f64() / 1e6, "M msg/s")]
}

async fn select2(mut rxs: Vec<mpsc::Receiver<u64>>) -> u64 {
    let mut r1 = rxs.pop().unwrap();
    let mut r0 = rxs.pop().unwrap();
    let mut got = 0u64;
    loop {
        tokio::select! {
            Some(_) = r0.recv() => got += 1,
            Some(_) = r1.recv() => got += 1,
            else => break,
        }
    }
    got
}

async fn select8(rxs: Vec<mpsc::Receiver<u64>>) -> u64 {
    let mut it = rxs.into_iter();
    let (mut r0, mut r1, mut r2, mut r3) =
        (it.next().unwrap(), it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
    let (mut r4, mut r5, mut r6, mut r7) =
        (it.next().unwrap(), it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
    let mut got = 0u64;
    loop {
        tokio::select! {
            Some(_) = r0.recv() => got += 1,
            Some(_) = r1.recv() => got += 1,
            Some(_) = r2.recv() => got += 1,
            Some(_) = r3.recv() => got += 1,
            Some(_) = r4.recv() => got += 1,
            Some(_) = r5.recv() => got += 1,
            Some(_) = r6.recv() => got += 1,
            Some(_) = r7.recv() => got += 1,
            else => break,
        }
    }
    got
}

// ---------------------------------------------------------------------------------- coop

/// The starvation probe: a task loops send + receive on its own mpsc(1) after spawning a sibling
/// that only sets a flag. Reports the iterations before the sibling ran, then the cost of one
/// iteration of the same loop (the budget makes it yield every so often).
async fn coop_probe(p: String, n: u64) -> Vec<Metric> {
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    let sibling = tokio::spawn(async move { flag.store(true, Ordering::Release) });
    let (tx, mut rx) = mpsc::channel::<u64>(1);
    let mut before = 0u64;
    while !ran.load(Ordering::Acquire) && before < 10_000_000 {
        tx.send(before).await.expect("send");
        rx.recv().await.expect("recv");
        before += 1;
    }
    sibling.await.expect("sibling");
    let t0 = Instant::now();
    for i in 0..n {
        tx.send(i).await.expect("send");
        rx.recv().await.expect("recv");
    }
    let d = t0.elapsed();
    vec![
        metric(format!("{p}.sibling_after"), before as f64, "iterations"),
        metric(format!("{p}.loop_iteration"), ns_each(d, n), "ns"),
    ]
}

// --------------------------------------------------------------------------------- mutex

/// The hash both benchmarks use for u64 keys (shoal-rt-bench's `mix_hash`): a 64×64→128-bit
/// multiply folded, so that the mutex cases compare the runtimes and the tables, not SipHash
/// against another function.
fn mix(k: u64) -> u64 {
    let p = (k as u128).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (p as u64) ^ ((p >> 64) as u64)
}

#[derive(Default)]
struct MixHasher(u64);

impl Hasher for MixHasher {
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys are hashed")
    }
    fn write_u64(&mut self, k: u64) {
        self.0 = mix(k);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type Table = HashMap<u64, u64, BuildHasherDefault<MixHasher>>;

const KEYS: u64 = 1 << 16;
const SHARDS: usize = 64;

fn next_key(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x & (KEYS - 1)
}

fn shard_of(k: u64) -> usize {
    (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize
}

/// 2 tasks per core each make `per_task` increments of random keys in a table behind one lock, or
/// behind 64 locks (one per shard); the keys are inserted beforehand.
async fn mutex_same_hash(p: String, per_task: u64, sharded: bool) -> Vec<Metric> {
    let tasks = 2 * std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2) as u64;
    let count = if sharded { SHARDS } else { 1 };
    let mut tables: Vec<Table> = (0..count).map(|_| Table::default()).collect();
    for k in 0..KEYS {
        tables[if sharded { shard_of(k) } else { 0 }].insert(k, 0);
    }
    let shards: Arc<Vec<Mutex<Table>>> = Arc::new(tables.into_iter().map(Mutex::new).collect());
    let t0 = Instant::now();
    let handles: Vec<JoinHandle<Duration>> = (0..tasks)
        .map(|t| {
            let shards = shards.clone();
            tokio::spawn(async move {
                let start = Instant::now();
                let mut x = 0x2545_F491_4F6C_DD1D ^ (t + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                for _ in 0..per_task {
                    let k = next_key(&mut x);
                    let mut table = shards[if sharded { shard_of(k) } else { 0 }].lock().unwrap();
                    *table.get_mut(&k).expect("inserted beforehand") += 1;
                }
                start.elapsed()
            })
        })
        .collect();
    let mut busy = Duration::ZERO;
    for h in handles {
        busy += h.await.expect("increment task");
    }
    let d = t0.elapsed();
    let total: u64 = shards.iter().map(|s| s.lock().unwrap().values().sum::<u64>()).sum();
    assert_eq!(total, tasks * per_task);
    vec![
        metric(format!("{p}.throughput"), (tasks * per_task) as f64 / d.as_secs_f64() / 1e6, "Mops/s"),
        metric(format!("{p}.in_task_per_op"), ns_each(busy, tasks * per_task), "ns/op"),
    ]
}

// --------------------------------------------------------------------------------- cases

const CASES: &[(&str, &[&str])] = &[
    ("timers_100k", &["mt2", "ct"]),
    ("spawn_blocking_rtt", &["mt2", "ct"]),
    ("join_set", &["mt2", "ct"]),
    ("select2", &["mt2", "ct"]),
    ("select8", &["mt2", "ct"]),
    ("coop_probe", &["mt2", "ct"]),
    ("mutex_single_same_hash", &["mt2", "ct"]),
    ("mutex_sharded64_same_hash", &["mt2", "ct"]),
];

fn case_names() -> Vec<String> {
    CASES
        .iter()
        .flat_map(|(b, rts)| rts.iter().map(move |r| format!("{b}/{r}")))
        .collect()
}

/// Round trip of one cache line between two threads that spin with a pause instruction (as
/// shoal-rt-bench's probe does), in ns.
fn core_to_core_ns(iters: u64) -> f64 {
    #[repr(align(128))]
    struct Line(AtomicU64);
    let warm = iters / 4;
    let line = Arc::new(Line(AtomicU64::new(0)));
    let peer_line = line.clone();
    let peer = std::thread::spawn(move || {
        for i in 0..warm + iters {
            while peer_line.0.load(Ordering::Acquire) != 2 * i + 1 {
                std::hint::spin_loop();
            }
            peer_line.0.store(2 * i + 2, Ordering::Release);
        }
    });
    let mut t0 = Instant::now();
    for i in 0..warm + iters {
        if i == warm {
            t0 = Instant::now();
        }
        line.0.store(2 * i + 1, Ordering::Release);
        while line.0.load(Ordering::Acquire) != 2 * i + 2 {
            std::hint::spin_loop();
        }
    }
    let d = t0.elapsed();
    peer.join().unwrap();
    ns_each(d, iters)
}

fn run_case(case: &str) -> Vec<Metric> {
    let (bench, flavor) = case.split_once('/').expect("a case is bench/flavor");
    let mt = match flavor {
        "mt2" => true,
        "ct" => false,
        _ => panic!("unknown flavor {flavor}"),
    };
    let p = case.to_string();
    let before = mt.then(|| core_to_core_ns(20_000));
    let mut out = match bench {
        "timers_100k" => run_on(mt, timers(p.clone(), 100_000)),
        "spawn_blocking_rtt" => run_on(mt, blocking_round_trip(p.clone(), 100_000)),
        "join_set" => run_on(mt, join_set(p.clone(), 1_000_000, 1_000)),
        "select2" => run_on(mt, select_consume(p.clone(), 1_000_000, 2)),
        "select8" => run_on(mt, select_consume(p.clone(), 1_000_000, 8)),
        "coop_probe" => run_on(mt, coop_probe(p.clone(), 10_000_000)),
        "mutex_single_same_hash" => run_on(mt, mutex_same_hash(p.clone(), 1_000_000, false)),
        "mutex_sharded64_same_hash" => run_on(mt, mutex_same_hash(p.clone(), 1_000_000, true)),
        _ => panic!("unknown case {case}"),
    };
    if let Some(b) = before {
        out.push(metric(format!("{p}.c2c_rtt_before"), b, "ns"));
        out.push(metric(format!("{p}.c2c_rtt_after"), core_to_core_ns(20_000), "ns"));
    }
    out
}

fn run_all(reps: usize) {
    let me = std::env::current_exe().expect("own path");
    let mut order: Vec<String> = Vec::new();
    let mut values: HashMap<String, (String, Vec<f64>)> = HashMap::new();
    for round in 0..reps {
        for case in case_names() {
            let out = Command::new(&me).args(["one", &case]).output().expect("child");
            assert!(out.status.success(), "{case} failed");
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                eprintln!("[round {}] {line}", round + 1);
                let (name, rest) = line.split_once(": ").expect("name: value unit");
                let (value, unit) = rest.split_once(' ').expect("value unit");
                let entry = values.entry(name.to_string()).or_insert_with(|| {
                    order.push(name.to_string());
                    (unit.to_string(), Vec::new())
                });
                entry.1.push(value.parse().expect("a number"));
            }
        }
    }
    for name in order {
        let (unit, mut v) = values.remove(&name).unwrap();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!("{name}: {} {unit}", v[v.len() / 2]);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("list") => case_names().iter().for_each(|c| println!("{c}")),
        Some("one") => {
            for m in run_case(args.get(2).expect("one <case>")) {
                println!("{}: {} {}", m.name, m.value, m.unit);
            }
        }
        Some("all") => {
            let reps = match args.get(2).map(String::as_str) {
                Some("--reps") => args.get(3).and_then(|r| r.parse().ok()).unwrap_or(3),
                _ => 3,
            };
            run_all(reps);
        }
        _ => {
            eprintln!("usage: tokio-cases list | one <case> | all [--reps N]");
            std::process::exit(2);
        }
    }
}
