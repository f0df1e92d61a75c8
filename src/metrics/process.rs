//! The controller's own process: `process_*` metrics from procfs, and the architecture under
//! Go's name for `build_info`.

use prometheus_client::encoding::NoLabelSet;
use prometheus_client::metrics::MetricType;

use super::encode::{Enc, NO_LABELS, gauge_family};

/// The architecture as Go's `GOARCH` names it, so that `build_info{goarch="amd64"}` queries
/// written for Argo still match.
pub(super) fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "arm" => "arm",
        other => other,
    }
}

/// `process_*` metrics from procfs (Linux; absent elsewhere).
pub(super) fn process_metrics(enc: &mut Enc<'_>, started: f64) -> Result<(), std::fmt::Error> {
    gauge_family(
        enc,
        "process_start_time_seconds",
        "Start time of the process since the Unix epoch, in seconds.",
        [(NO_LABELS, started)],
    )?;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| -> Option<f64> {
        status
            .lines()
            .find(|l| l.starts_with(key))?
            .split_whitespace()
            .nth(1)?
            .parse::<f64>()
            .ok()
            .map(|k| k * 1024.0)
    };
    if let Some(rss) = kib("VmRSS:") {
        gauge_family(
            enc,
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            [(NO_LABELS, rss)],
        )?;
    }
    if let Some(vm) = kib("VmSize:") {
        gauge_family(
            enc,
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            [(NO_LABELS, vm)],
        )?;
    }
    // Fields 14 and 15 of /proc/self/stat (user and system time) are in clock ticks, which are
    // 1/100 s on every Linux platform we build for.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    if let Some(rest) = stat.rsplit(')').next() {
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
        if let (Some(u), Some(s)) = (ticks(11), ticks(12)) {
            let mut m = enc.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time spent, in seconds.",
                None,
                MetricType::Counter,
            )?;
            m.encode_counter::<NoLabelSet, f64, f64>(&((u + s) / 100.0), None)?;
        }
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        gauge_family(
            enc,
            "process_open_fds",
            "Open file descriptors.",
            [(NO_LABELS, fds.count() as f64)],
        )?;
    }
    Ok(())
}
