//! What the bench reads from /proc: the server's memory, and the CPU the load generator, the
//! server and PostgreSQL spend. On a machine where all three share few cores, calls/s is
//! bounded by the CPU they spend per call, so the report splits each call's cost by process.

/// VmRSS and VmHWM of a process, in kB.
#[derive(Debug, Clone, Copy)]
pub struct Mem {
    pub rss_kb: u64,
    pub hwm_kb: u64,
}

pub fn read_mem(pid: Option<u32>) -> Option<Mem> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
    };
    Some(Mem {
        rss_kb: field("VmRSS:")?,
        hwm_kb: field("VmHWM:")?,
    })
}

/// Resets the peak RSS (VmHWM) of a process to its current RSS (`echo 5 > clear_refs`), so a
/// later VmHWM is the peak of one phase. Needs the same user (or root); false when refused.
pub fn reset_peak(pid: Option<u32>) -> bool {
    pid.is_some_and(|p| std::fs::write(format!("/proc/{p}/clear_refs"), "5").is_ok())
}

/// Clock ticks per second of /proc's utime/stime (USER_HZ, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// The processes whose CPU is charged to the calls besides the load generator itself.
#[derive(Clone, Copy)]
pub struct Processes {
    /// The `pg-mcp serve` under test.
    pub server: Option<u32>,
    /// The PostgreSQL postmaster (its children are counted with it).
    pub postgres: Option<u32>,
}

impl Processes {
    /// CPU used so far by the load generator, the server and the database's backends.
    pub fn read_cpu(&self) -> Cpu {
        Cpu {
            bench: proc_stat("self").map_or(0.0, |(c, _)| c),
            server: self
                .server
                .and_then(|p| proc_stat(&p.to_string()))
                .map(|(c, _)| c),
            postgres: self.postgres.and_then(postgres_cpu),
        }
    }
}

/// CPU seconds (user + system) used so far, by process.
#[derive(Clone, Copy, Default)]
pub struct Cpu {
    bench: f64,
    server: Option<f64>,
    postgres: Option<f64>,
}

/// (utime + stime, ppid) of a process from /proc/<pid>/stat.
fn proc_stat(pid: &str) -> Option<(f64, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state ppid ... utime(14) stime(15).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(((utime + stime) as f64 / TICKS_PER_SEC, ppid))
}

/// The postmaster and all its children (backends, background workers).
fn postgres_cpu(postmaster: u32) -> Option<f64> {
    let mut total = proc_stat(&postmaster.to_string())?.0;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if let Some((cpu, ppid)) = proc_stat(pid)
            && ppid == postmaster
        {
            total += cpu;
        }
    }
    Some(total)
}

/// CPU microseconds per measured call, by process, between two readings.
#[derive(Clone, Copy)]
pub struct CpuPerCall {
    pub bench: f64,
    pub server: Option<f64>,
    pub postgres: Option<f64>,
}

impl CpuPerCall {
    pub fn between(before: Cpu, after: Cpu, calls: usize) -> Option<Self> {
        let per = |a: f64, b: f64| (b - a) * 1e6 / calls as f64;
        (calls > 0).then(|| Self {
            bench: per(before.bench, after.bench),
            server: before.server.zip(after.server).map(|(a, b)| per(a, b)),
            postgres: before.postgres.zip(after.postgres).map(|(a, b)| per(a, b)),
        })
    }

    pub fn total(&self) -> f64 {
        self.bench + self.server.unwrap_or(0.0) + self.postgres.unwrap_or(0.0)
    }
}
