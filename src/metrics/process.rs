//! Metrics read at scrape time: the process's own (from `/proc`, Linux
//! only; elsewhere they are left out) and the dropped log lines.
//!
//! The process metrics carry the standard names every Prometheus client
//! uses (`process_resident_memory_bytes`, `process_cpu_seconds_total`, …),
//! so stock dashboards and rules work.

use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Clock ticks per second in `/proc/<pid>/stat`: the kernel's `USER_HZ`,
/// fixed at 100 in its ABI on every architecture Linux exports it on.
const USER_HZ: f64 = 100.0;

/// What `/proc` says about this process; `None` where it could not be read.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Sample {
    /// Resident set size, bytes.
    pub resident_bytes: Option<u64>,
    /// Virtual memory size, bytes.
    pub virtual_bytes: Option<u64>,
    /// User and system CPU time, seconds.
    pub cpu_seconds: Option<f64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// The soft limit on open file descriptors.
    pub max_fds: Option<u64>,
    /// When the process started, seconds since the Unix epoch.
    pub start_time_seconds: Option<f64>,
}

/// `VmRSS:   1234 kB` → 1234 × 1024.
fn status_kb(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line[key.len()..].split_whitespace().next()?.parse().ok()?;
    kb.checked_mul(1024)
}

/// The fields of `/proc/<pid>/stat` after the command name (which may hold
/// spaces and parentheses: it ends at the last `)`), numbered from 3 (the
/// state) as in proc(5).
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().collect())
}

/// Field `n` (proc(5) numbering) of `/proc/<pid>/stat`.
fn stat_field(fields: &[&str], n: usize) -> Option<f64> {
    fields.get(n.checked_sub(3)?)?.parse().ok()
}

/// `Max open files  1024  4096  files` → 1024.
fn max_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `btime 1700000000` in `/proc/stat`: boot time, seconds since the epoch.
fn boot_time(stat: &str) -> Option<f64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// Parses the texts of `/proc/self/status`, `/proc/self/stat`,
/// `/proc/self/limits` and `/proc/stat`.
pub fn parse(status: &str, stat: &str, limits: &str, system_stat: &str) -> Sample {
    let fields = stat_fields(stat).unwrap_or_default();
    // utime (14) + stime (15), in ticks.
    let cpu = stat_field(&fields, 14)
        .zip(stat_field(&fields, 15))
        .map(|(u, s)| (u + s) / USER_HZ);
    // starttime (22): ticks after boot.
    let start = stat_field(&fields, 22)
        .zip(boot_time(system_stat))
        .map(|(ticks, boot)| boot + ticks / USER_HZ);
    Sample {
        resident_bytes: status_kb(status, "VmRSS:"),
        virtual_bytes: status_kb(status, "VmSize:"),
        cpu_seconds: cpu,
        open_fds: None,
        max_fds: max_open_files(limits),
        start_time_seconds: start,
    }
}

/// Reads this process's sample now, all but its start time (which never
/// changes: [`start_time`], read once).
pub fn sample() -> Sample {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let mut s = parse(
        &read("/proc/self/status"),
        &read("/proc/self/stat"),
        &read("/proc/self/limits"),
        "",
    );
    s.open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as u64);
    s
}

/// When this process started, seconds since the Unix epoch (from
/// `/proc/self/stat` and the boot time in `/proc/stat`, which is long on a
/// machine of many CPUs: read once, not at every scrape).
pub fn start_time() -> Option<f64> {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    parse("", &read("/proc/self/stat"), "", &read("/proc/stat")).start_time_seconds
}

/// The process metrics, read at each scrape.
#[derive(Debug)]
pub struct Process {
    /// When the process started; when this collector was made where
    /// `/proc` is missing.
    started: f64,
}

impl Default for Process {
    fn default() -> Process {
        let made = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        Process {
            started: start_time().unwrap_or(made),
        }
    }
}

fn gauge<T: prometheus_client::encoding::EncodeGaugeValue + std::fmt::Debug + Send + Sync>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    v: Option<T>,
) -> Result<(), std::fmt::Error> {
    let Some(v) = v else { return Ok(()) };
    let g = ConstGauge::new(v);
    g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
}

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = sample();
        if let Some(cpu) = s.cpu_seconds {
            let c = ConstCounter::new(cpu);
            c.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                None,
                c.metric_type(),
            )?)?;
        }
        gauge(
            &mut encoder,
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            s.resident_bytes,
        )?;
        gauge(
            &mut encoder,
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            s.virtual_bytes,
        )?;
        gauge(
            &mut encoder,
            "process_open_fds",
            "Number of open file descriptors.",
            s.open_fds,
        )?;
        gauge(
            &mut encoder,
            "process_max_fds",
            "Maximum number of open file descriptors.",
            s.max_fds,
        )?;
        gauge(
            &mut encoder,
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            Some(self.started),
        )
    }
}

/// `pagerd_log_lines_dropped_total`, from [`crate::logging::dropped`].
#[derive(Debug)]
pub struct LogDropped;

impl Collector for LogDropped {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let c = ConstCounter::new(crate::logging::dropped());
        c.encode(encoder.encode_descriptor(
            "pagerd_log_lines_dropped",
            "Log lines dropped because the log output failed or was full.",
            None,
            c.metric_type(),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_texts() {
        let status = "Name:\tpagerd\nVmSize:\t  20000 kB\nVmRSS:\t    9216 kB\n";
        // The command name holds a space and a parenthesis.
        let stat = "4242 (pager d)) S 1 4242 4242 0 -1 4194560 500 0 0 0 \
                    250 50 0 0 20 0 8 0 12345 20480000 2304 18446744073709551615";
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        let system = "cpu  1 2 3\nbtime 1700000000\nprocesses 9\n";
        let s = parse(status, stat, limits, system);
        assert_eq!(s.resident_bytes, Some(9216 * 1024));
        assert_eq!(s.virtual_bytes, Some(20000 * 1024));
        assert_eq!(s.cpu_seconds, Some(3.0), "(250 + 50) ticks");
        assert_eq!(s.max_fds, Some(1024));
        assert_eq!(s.start_time_seconds, Some(1_700_000_000.0 + 123.45));
        assert_eq!(parse("", "", "", ""), Sample::default());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process() {
        let s = sample();
        assert!(s.resident_bytes.is_some_and(|b| b > 0), "{s:?}");
        assert!(s.open_fds.is_some_and(|n| n >= 3), "{s:?}");
        assert!(s.cpu_seconds.is_some(), "{s:?}");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        let started = start_time().unwrap_or_default();
        assert!(started > now - 3600.0 && started <= now + 1.0, "{started}");
    }
}
