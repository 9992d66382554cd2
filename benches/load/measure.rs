//! One measured run: `c` workers repeat a call through a warm-up and a measured window, and
//! the calls that started in the window become calls/s, latency percentiles, errors and CPU
//! per call. Both paths are run the same way, so their figures compare.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::Value;
use uuid::Uuid;

use crate::client::{FastCaller, McpSession};
use crate::direct::Direct;
use crate::procstat::{CpuPerCall, Processes};
use crate::workload::{POINT_SQL, pick};

/// How long each run lasts, and whose CPU its calls are charged to.
#[derive(Clone, Copy)]
pub struct RunPlan {
    /// Unmeasured seconds before the measurement (pool connections, caches).
    pub warmup_secs: f64,
    /// Measured seconds.
    pub duration_secs: f64,
    pub processes: Processes,
}

#[derive(Default)]
struct WorkerStats {
    /// Latency of each successful measured call, in nanoseconds.
    latencies: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
    /// When the last measured call ended.
    last_end: Option<Instant>,
}

impl WorkerStats {
    fn record(&mut self, started: Instant, outcome: Result<()>) {
        let end = Instant::now();
        match outcome {
            Ok(()) => self
                .latencies
                .push(end.duration_since(started).as_nanos() as u64),
            Err(e) => {
                self.errors += 1;
                if self.first_error.is_none() {
                    self.first_error = Some(format!("{e:#}"));
                }
            }
        }
        self.last_end = Some(end);
    }
}

/// The result of one path at one concurrency level.
pub struct PathResult {
    pub calls_per_sec: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub calls: usize,
    pub errors: u64,
    pub first_error: Option<String>,
    /// CPU per measured call, by process (load generator, server, PostgreSQL).
    pub cpu: Option<CpuPerCall>,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1e6
}

fn summarise(stats: Vec<WorkerStats>, measure_start: Instant) -> PathResult {
    let end = stats
        .iter()
        .filter_map(|s| s.last_end)
        .max()
        .unwrap_or(measure_start);
    let elapsed = end.duration_since(measure_start).as_secs_f64().max(1e-9);
    let errors = stats.iter().map(|s| s.errors).sum();
    let first_error = stats.iter().find_map(|s| s.first_error.clone());
    let mut all: Vec<u64> = stats.into_iter().flat_map(|s| s.latencies).collect();
    all.sort_unstable();
    PathResult {
        calls_per_sec: all.len() as f64 / elapsed,
        p50_ms: percentile(&all, 0.50),
        p90_ms: percentile(&all, 0.90),
        p99_ms: percentile(&all, 0.99),
        calls: all.len(),
        errors,
        first_error,
        cpu: None,
    }
}

/// What one worker of a run repeats. (A trait rather than an async closure: `tokio::spawn`
/// needs the loop's future to be `Send`, which the compiler cannot prove for an async
/// closure's future.)
trait Worker: Send {
    /// Call number `i` of this worker.
    fn call(&mut self, i: usize) -> impl Future<Output = Result<()>> + Send;
}

/// A worker of the MCP path: its own session's lean caller, over the shared ids.
struct McpWorker {
    caller: FastCaller,
    ids: Arc<Vec<Value>>,
    worker: usize,
}

impl Worker for McpWorker {
    async fn call(&mut self, i: usize) -> Result<()> {
        let id = pick(&self.ids, self.worker, i);
        self.caller.query_one_row(POINT_SQL, id).await
    }
}

/// A worker of the direct path, on the shared pool.
struct DirectWorker {
    direct: Arc<Direct>,
    ids: Arc<Vec<i64>>,
    worker: usize,
}

impl Worker for DirectWorker {
    async fn call(&mut self, i: usize) -> Result<()> {
        let id = *pick(&self.ids, self.worker, i);
        self.direct.call(id).await
    }
}

/// Shared timing of one phase: warm-up until `measure_start`, measurement until `end`.
#[derive(Clone, Copy)]
struct Window {
    measure_start: Instant,
    end: Instant,
}

impl Window {
    fn new(plan: &RunPlan) -> Self {
        // A short delay so every worker is spawned before the clock starts.
        let start = Instant::now() + Duration::from_millis(20);
        let measure_start = start + Duration::from_secs_f64(plan.warmup_secs);
        Self {
            measure_start,
            end: measure_start + Duration::from_secs_f64(plan.duration_secs),
        }
    }

    /// One worker: repeats its call until the window ends; only the calls that start in the
    /// measured part are recorded.
    async fn repeat(&self, mut worker: impl Worker) -> WorkerStats {
        let mut stats = WorkerStats::default();
        let mut i = 0usize;
        loop {
            let started = Instant::now();
            if started >= self.end {
                break;
            }
            let outcome = worker.call(i).await;
            i += 1;
            if started >= self.measure_start {
                stats.record(started, outcome);
            }
        }
        stats
    }

    /// Reads the CPU at the start and the end of the measured part, waits for the workers and
    /// sums up the phase.
    async fn finish(
        &self,
        processes: &Processes,
        workers: Vec<tokio::task::JoinHandle<WorkerStats>>,
    ) -> Result<PathResult> {
        tokio::time::sleep_until(self.measure_start.into()).await;
        let before = processes.read_cpu();
        tokio::time::sleep_until(self.end.into()).await;
        let after = processes.read_cpu();
        let mut stats = Vec::with_capacity(workers.len());
        for w in workers {
            stats.push(w.await?);
        }
        let mut result = summarise(stats, self.measure_start);
        result.cpu = CpuPerCall::between(before, after, result.calls);
        Ok(result)
    }
}

/// `concurrency` MCP sessions of `tenant` at `url`, each looping the point query over `ids`.
pub async fn run_mcp(
    plan: &RunPlan,
    url: &str,
    tenant: &Uuid,
    concurrency: usize,
    ids: Arc<Vec<Value>>,
) -> Result<PathResult> {
    let sessions = McpSession::open_many(url, tenant, concurrency).await?;
    let mut callers = Vec::with_capacity(concurrency);
    for s in &sessions {
        callers.push(s.fast_caller().await?);
    }
    let window = Window::new(plan);
    let mut tasks = Vec::with_capacity(concurrency);
    for (worker, (session, caller)) in sessions.into_iter().zip(callers).enumerate() {
        let ids = ids.clone();
        tasks.push(tokio::spawn(async move {
            let stats = window
                .repeat(McpWorker {
                    caller,
                    ids,
                    worker,
                })
                .await;
            session.close().await;
            stats
        }));
    }
    window.finish(&plan.processes, tasks).await
}

/// `concurrency` workers sharing the direct path's pool, each looping the point query.
pub async fn run_direct(
    plan: &RunPlan,
    concurrency: usize,
    direct: Arc<Direct>,
    ids: Arc<Vec<i64>>,
) -> Result<PathResult> {
    let window = Window::new(plan);
    let mut tasks = Vec::with_capacity(concurrency);
    for worker in 0..concurrency {
        let direct = DirectWorker {
            direct: direct.clone(),
            ids: ids.clone(),
            worker,
        };
        tasks.push(tokio::spawn(async move { window.repeat(direct).await }));
    }
    window.finish(&plan.processes, tasks).await
}
