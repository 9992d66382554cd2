//! The throughput report: a table per concurrency level as it finishes, the summary table
//! over all levels, and the target check. It only formats what the runs measured.

use crate::measure::PathResult;
use crate::procstat::Mem;

/// One concurrency level's results, as printed.
pub struct Level {
    pub concurrency: usize,
    pub mcp: Option<PathResult>,
    pub direct: Option<PathResult>,
    pub idle_before: Option<Mem>,
    /// Peak RSS of the MCP phase (VmHWM after resetting it at the phase start), or the
    /// process-lifetime VmHWM when the reset was refused.
    pub peak: Option<Mem>,
}

impl Level {
    fn both(&self) -> Option<(&PathResult, &PathResult)> {
        Some((self.mcp.as_ref()?, self.direct.as_ref()?))
    }
}

pub fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

pub fn fmt_mb(kb: Option<u64>) -> String {
    kb.map_or_else(|| "n/a".to_string(), |k| format!("{:.1} MB", mb(k)))
}

fn fmt_us(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.0}"))
}

pub fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "PASS",
        Some(false) => "FAIL",
        None => "n/a",
    }
}

fn row(name: &str, r: &PathResult) -> String {
    format!(
        "  {name:<8} {:>10.1} {:>9.3} {:>9.3} {:>9.3} {:>8} {:>9}",
        r.calls_per_sec, r.p50_ms, r.p90_ms, r.p99_ms, r.errors, r.calls
    )
}

pub fn print_level(l: &Level) {
    println!();
    println!("concurrency {}", l.concurrency);
    println!(
        "  {:<8} {:>10} {:>9} {:>9} {:>9} {:>8} {:>9}",
        "path", "calls/s", "p50 ms", "p90 ms", "p99 ms", "errors", "calls"
    );
    if let Some(m) = &l.mcp {
        println!("{}", row("mcp", m));
    }
    if let Some(d) = &l.direct {
        println!("{}", row("direct", d));
    }
    for (name, r) in [("mcp", &l.mcp), ("direct", &l.direct)] {
        if let Some(c) = r.as_ref().and_then(|r| r.cpu) {
            println!(
                "  CPU per call, {name:<6}: load generator {} µs + server {} µs + PostgreSQL {} µs = {:.0} µs",
                fmt_us(Some(c.bench)),
                fmt_us(c.server.filter(|_| name == "mcp")),
                fmt_us(c.postgres),
                c.total()
                    - if name == "mcp" {
                        0.0
                    } else {
                        c.server.unwrap_or(0.0)
                    }
            );
        }
    }
    if let Some((m, d)) = l.both() {
        println!(
            "  MCP - direct p50: {:+.3} ms    MCP calls/s / direct: {:.1}%",
            m.p50_ms - d.p50_ms,
            100.0 * m.calls_per_sec / d.calls_per_sec
        );
    }
    if l.mcp.is_some() {
        println!(
            "  server RSS: idle before {}, peak during MCP run {}",
            fmt_mb(l.idle_before.map(|m| m.rss_kb)),
            fmt_mb(l.peak.map(|m| m.hwm_kb))
        );
    }
    if let Some(e) = l.mcp.as_ref().and_then(|m| m.first_error.as_ref()) {
        println!("  first MCP error: {e}");
    }
    if let Some(e) = l.direct.as_ref().and_then(|d| d.first_error.as_ref()) {
        println!("  first direct error: {e}");
    }
}

pub fn print_summary(levels: &[Level]) {
    println!();
    println!("summary");
    println!(
        "  {:>3} {:>10} {:>10} {:>8} {:>9} {:>9} {:>9} {:>8} {:>8} {:>10} {:>10}",
        "c",
        "mcp c/s",
        "direct c/s",
        "mcp/dir",
        "mcp p50",
        "dir p50",
        "Δp50 ms",
        "mcp err",
        "dir err",
        "idle RSS",
        "peak RSS"
    );
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".to_string());
    for l in levels {
        let (m, d) = (l.mcp.as_ref(), l.direct.as_ref());
        println!(
            "  {:>3} {:>10} {:>10} {:>8} {:>9} {:>9} {:>9} {:>8} {:>8} {:>10} {:>10}",
            l.concurrency,
            opt(m.map(|m| format!("{:.1}", m.calls_per_sec))),
            opt(d.map(|d| format!("{:.1}", d.calls_per_sec))),
            opt(l
                .both()
                .map(|(m, d)| format!("{:.1}%", 100.0 * m.calls_per_sec / d.calls_per_sec))),
            opt(m.map(|m| format!("{:.3}", m.p50_ms))),
            opt(d.map(|d| format!("{:.3}", d.p50_ms))),
            opt(l
                .both()
                .map(|(m, d)| format!("{:+.3}", m.p50_ms - d.p50_ms))),
            opt(m.map(|m| m.errors.to_string())),
            opt(d.map(|d| d.errors.to_string())),
            fmt_mb(l.idle_before.map(|m| m.rss_kb)),
            opt(m.map(|_| fmt_mb(l.peak.map(|m| m.hwm_kb)))),
        );
    }
}

pub fn print_targets(levels: &[Level], idle_at_start: Option<Mem>) {
    println!();
    println!("targets");
    let at = |c: usize| levels.iter().find(|l| l.concurrency == c);

    let (ok, measured) = match at(1).and_then(Level::both) {
        Some((m, d)) => {
            let delta = m.p50_ms - d.p50_ms;
            (Some(delta <= 0.5), format!("{delta:+.3} ms"))
        }
        None => (None, "not measured".to_string()),
    };
    println!(
        "  {:<4} {:<46} {measured}",
        verdict(ok),
        "c=1 MCP p50 within 0.5 ms of direct"
    );

    for c in [8, 32] {
        let (ok, measured) = match at(c).and_then(Level::both) {
            Some((m, d)) => {
                let ratio = 100.0 * m.calls_per_sec / d.calls_per_sec;
                (
                    Some(ratio >= 50.0 && m.errors == 0),
                    format!("{ratio:.1}%, {} MCP errors", m.errors),
                )
            }
            None => (None, "not measured".to_string()),
        };
        println!(
            "  {:<4} {:<46} {measured}",
            verdict(ok),
            format!("c={c} MCP calls/s >= 50% of direct, zero errors")
        );
    }

    let peak = levels
        .iter()
        .filter(|l| l.mcp.is_some())
        .filter_map(|l| l.peak.map(|m| m.hwm_kb))
        .max();
    println!(
        "  {:<4} {:<46} {}",
        verdict(peak.map(|k| mb(k) < 100.0)),
        "peak server RSS < 100 MB",
        fmt_mb(peak)
    );
    let idle = idle_at_start.map(|m| m.rss_kb);
    println!(
        "  {:<4} {:<46} {}",
        verdict(idle.map(|k| mb(k) < 40.0)),
        "idle server RSS < 40 MB (before any load)",
        fmt_mb(idle)
    );
    println!("(the benchmark reports only; a FAIL does not change its exit status)");
}
