//! What the benchmark reads off the processes it measures: RSS and CPU time from procfs, and the
//! Prometheus text expositions of the controller (`rollout_reconcile`, `rollout_events_total`)
//! and of the apiserver (`apiserver_request_total`, to count the controller's writes).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Memory and CPU of one process at one moment.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcStat {
    pub rss_kib: u64,
    /// The kernel's high-water mark of RSS since the process started.
    pub hwm_kib: u64,
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
}

pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| -> Option<u64> {
        status
            .lines()
            .find(|l| l.starts_with(key))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields after it are fixed.
    let rest = stat.rsplit(')').next()?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    Some(ProcStat {
        rss_kib: kib("VmRSS:")?,
        hwm_kib: kib("VmHWM:")?,
        cpu_ticks: ticks(11)? + ticks(12)?,
    })
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on every Linux we run on).
pub fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// One sample line of a Prometheus text exposition.
#[derive(Clone, Debug)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, key: &str) -> &str {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// The samples whose metric name starts with one of `prefixes`.
pub fn parse(text: &str, prefixes: &[&str]) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && prefixes.iter().any(|p| l.starts_with(p)))
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_string();
    let mut labels = Vec::new();
    let mut rest = &line[name_end..];
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices();
        let mut key = String::new();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '}' => {
                    end = Some(i + 1);
                    break;
                }
                ',' | ' ' => {}
                '=' => {
                    // A quoted value with \\, \" and \n escapes.
                    if chars.next().map(|(_, c)| c) != Some('"') {
                        return None;
                    }
                    let mut value = String::new();
                    loop {
                        match chars.next()?.1 {
                            '"' => break,
                            '\\' => match chars.next()?.1 {
                                'n' => value.push('\n'),
                                c => value.push(c),
                            },
                            c => value.push(c),
                        }
                    }
                    labels.push((std::mem::take(&mut key), value));
                }
                c => key.push(c),
            }
        }
        rest = &body[end?..];
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// A histogram summed over all its series (cumulative bucket counts by upper bound).
#[derive(Clone, Debug, Default)]
pub struct Histogram {
    pub buckets: Vec<(f64, f64)>,
    pub count: f64,
    pub sum: f64,
}

impl Histogram {
    pub fn from_samples(samples: &[Sample], name: &str) -> Histogram {
        let mut buckets: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        let (mut count, mut sum) = (0.0, 0.0);
        for s in samples {
            if s.name == format!("{name}_bucket") {
                let le = match s.label("le") {
                    "+Inf" => f64::INFINITY,
                    v => v.parse().unwrap_or(f64::INFINITY),
                };
                // Order by the bound; f64 bits order like the numbers for non-negative values.
                buckets.entry(le.to_bits()).or_insert((le, 0.0)).1 += s.value;
            } else if s.name == format!("{name}_count") {
                count += s.value;
            } else if s.name == format!("{name}_sum") {
                sum += s.value;
            }
        }
        Histogram {
            buckets: buckets.into_values().collect(),
            count,
            sum,
        }
    }

    /// `self − earlier`: the observations made between two scrapes.
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        let before = |le: f64| {
            earlier
                .buckets
                .iter()
                .find(|(b, _)| *b == le)
                .map_or(0.0, |(_, n)| *n)
        };
        Histogram {
            buckets: self
                .buckets
                .iter()
                .map(|(le, n)| (*le, n - before(*le)))
                .collect(),
            count: self.count - earlier.count,
            sum: self.sum - earlier.sum,
        }
    }

    /// The upper bound of the bucket holding quantile `q` (infinite past the last finite bucket).
    pub fn quantile_bound(&self, q: f64) -> Option<f64> {
        if self.count <= 0.0 {
            return None;
        }
        let rank = q * self.count;
        self.buckets
            .iter()
            .find(|(_, n)| *n >= rank)
            .map(|(le, _)| *le)
            .or(Some(f64::INFINITY))
    }

    pub fn mean(&self) -> Option<f64> {
        (self.count > 0.0).then(|| self.sum / self.count)
    }
}

/// Sum of every sample named `name`.
pub fn total(samples: &[Sample], name: &str) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        // Not `sum()`: an empty f64 sum is -0.0, which prints as "-0".
        .fold(0.0, |acc, s| acc + s.value)
}

/// The write requests the apiserver counted for the resources only the controller writes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Writes {
    /// PATCH rollouts/status.
    pub status: f64,
    /// Writes to the Rollout object itself (the revision annotation; the bench's own image
    /// patches are subtracted by the caller).
    pub rollout: f64,
    /// ReplicaSet creates (server-side apply), resizes, annotations, deletes (not `/status`,
    /// which kube-controller-manager writes).
    pub replica_sets: f64,
    /// events.k8s.io/v1 creates and series patches (kube-controller-manager uses core/v1 events).
    pub events: f64,
    pub analysis_runs: f64,
    /// Of the status patches: those refused with 409 (stale resourceVersion).
    pub status_conflicts: f64,
}

const WRITE_VERBS: [&str; 6] = [
    "POST",
    "PUT",
    "PATCH",
    "APPLY",
    "DELETE",
    "DELETECOLLECTION",
];

impl Writes {
    pub fn from_apiserver(samples: &[Sample]) -> Writes {
        let mut w = Writes::default();
        for s in samples
            .iter()
            .filter(|s| s.name == "apiserver_request_total")
        {
            if !WRITE_VERBS.contains(&s.label("verb")) {
                continue;
            }
            match (
                s.label("group"),
                s.label("resource"),
                s.label("subresource"),
            ) {
                ("argoproj.io", "rollouts", "status") => {
                    w.status += s.value;
                    if s.label("code") == "409" {
                        w.status_conflicts += s.value;
                    }
                }
                // The bench creates Rollouts (POST); the controller only patches them.
                ("argoproj.io", "rollouts", "") if s.label("verb") != "POST" => {
                    w.rollout += s.value
                }
                ("argoproj.io", "analysisruns", _) => w.analysis_runs += s.value,
                ("apps", "replicasets", "") => w.replica_sets += s.value,
                ("events.k8s.io", "events", _) => w.events += s.value,
                _ => {}
            }
        }
        w
    }

    pub fn since(&self, e: &Writes) -> Writes {
        Writes {
            status: self.status - e.status,
            rollout: self.rollout - e.rollout,
            replica_sets: self.replica_sets - e.replica_sets,
            events: self.events - e.events,
            analysis_runs: self.analysis_runs - e.analysis_runs,
            status_conflicts: self.status_conflicts - e.status_conflicts,
        }
    }

    pub fn total(&self) -> f64 {
        self.status + self.rollout + self.replica_sets + self.events + self.analysis_runs
    }

    /// The writes that wait for the controller's `--qps` token bucket (events do not).
    pub fn rate_limited(&self) -> f64 {
        self.status + self.rollout + self.replica_sets + self.analysis_runs
    }
}

/// GET `path` from a plain-HTTP server on 127.0.0.1 (the controller's metrics and health ports,
/// which answer with `Connection: close`).
pub async fn http_get(port: u16, path: &str) -> Result<(u16, String)> {
    let io = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
            .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = tokio::time::timeout(Duration::from_secs(60), io)
        .await
        .context("timed out")??;
    let text = String::from_utf8_lossy(&buf);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!("malformed HTTP response from 127.0.0.1:{port}{path}");
    };
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((code, body.to_string()))
}
