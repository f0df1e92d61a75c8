//! Shared output primitives: icons, ANSI colour, kubectl-style ages, column alignment that ignores
//! colour codes, and the health of ReplicaSets and Pods as the tree shows them. All pure.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

pub const ICON_ROLLOUT: &str = "⟳";
pub const ICON_REVISION: &str = "#";
pub const ICON_REPLICA_SET: &str = "⧉";
pub const ICON_POD: &str = "□";
pub const ICON_ANALYSIS: &str = "α";

pub const ICON_OK: &str = "✔";
pub const ICON_BAD: &str = "✖";
pub const ICON_PROGRESSING: &str = "◌";
pub const ICON_PAUSED: &str = "॥";
pub const ICON_WARNING: &str = "⚠";
pub const ICON_UNKNOWN: &str = "?";
pub const ICON_WAITING: &str = "◷";
pub const ICON_NEUTRAL: &str = "•";

pub const TAG_STABLE: &str = "stable";
pub const TAG_CANARY: &str = "canary";
pub const TAG_ACTIVE: &str = "active";
pub const TAG_PREVIEW: &str = "preview";
pub const TAG_PING: &str = "ping";
pub const TAG_PONG: &str = "pong";

const GREEN: u8 = 32;
const RED: u8 = 31;
const YELLOW: u8 = 33;
const BLUE: u8 = 94;

/// Whether to emit ANSI colour codes.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(self, s: &str, code: Option<u8>) -> String {
        match code {
            Some(c) if self.color && !s.is_empty() => format!("\x1b[{c}m{s}\x1b[0m"),
            _ => s.to_string(),
        }
    }

    /// An icon in the colour of what it means.
    pub fn icon(self, icon: &str) -> String {
        let code = match icon {
            ICON_OK => Some(GREEN),
            ICON_BAD | ICON_WARNING => Some(RED),
            ICON_PROGRESSING => Some(BLUE),
            ICON_PAUSED | ICON_WAITING | ICON_UNKNOWN => Some(YELLOW),
            _ => None,
        };
        self.paint(icon, code)
    }

    /// A ReplicaSet role tag (stable, canary, ...) or text shown in that role's colour.
    pub fn tagged(self, text: &str, tag: &str) -> String {
        let code = match tag {
            TAG_STABLE | TAG_ACTIVE => Some(GREEN),
            TAG_CANARY => Some(YELLOW),
            TAG_PREVIEW | TAG_PING | TAG_PONG => Some(BLUE),
            _ => None,
        };
        self.paint(text, code)
    }

    /// Text in the colour of an analysis phase.
    pub fn analysis(self, text: &str, phase: &str) -> String {
        let code = match phase {
            "Successful" => Some(GREEN),
            "Failed" | "Error" => Some(RED),
            "Inconclusive" => Some(YELLOW),
            "Running" | "Pending" => Some(BLUE),
            _ => None,
        };
        self.paint(text, code)
    }
}

/// Icon of a Rollout phase.
pub fn phase_icon(phase: &str) -> &'static str {
    match phase {
        "Healthy" => ICON_OK,
        "Progressing" => ICON_PROGRESSING,
        "Paused" => ICON_PAUSED,
        "Degraded" => ICON_BAD,
        "Error" | "InvalidSpec" => ICON_WARNING,
        "ScaledDown" => ICON_NEUTRAL,
        _ => ICON_UNKNOWN,
    }
}

/// Icon of an AnalysisRun (or measurement) phase.
pub fn analysis_icon(phase: &str) -> &'static str {
    match phase {
        "Successful" => ICON_OK,
        "Inconclusive" => ICON_UNKNOWN,
        "Failed" => ICON_BAD,
        "Error" => ICON_WARNING,
        "Running" => ICON_PROGRESSING,
        "Pending" | "" => ICON_WAITING,
        _ => " ",
    }
}

/// kubectl's short age: exact seconds under two minutes, then coarser units (`9m30s`, `3h10m`,
/// `5d`, `2y40d`).
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    if secs < 0 {
        return "0s".into();
    }
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    let with = |big: i64, big_unit: &str, small: i64, small_unit: &str| {
        if small == 0 {
            format!("{big}{big_unit}")
        } else {
            format!("{big}{big_unit}{small}{small_unit}")
        }
    };
    if minutes < 10 {
        return with(minutes, "m", secs % 60, "s");
    }
    if minutes < 3 * 60 {
        return format!("{minutes}m");
    }
    let hours = secs / 3600;
    if hours < 8 {
        return with(hours, "h", minutes % 60, "m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        return with(days, "d", hours % 24, "h");
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    if hours < 24 * 365 * 8 {
        return with(days / 365, "y", days % 365, "d");
    }
    format!("{}y", days / 365)
}

/// Age of an object created at `created`, as of `now`; empty when unknown.
pub fn age(created: Option<&Time>, now: Timestamp) -> String {
    created.map_or_else(String::new, |t| {
        human_duration(now.duration_since(t.0).as_secs())
    })
}

/// Printed width of a string: ANSI escape sequences take no room; every other char one column.
pub fn visible_width(s: &str) -> usize {
    let mut width = 0;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ parameters final-byte
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            width += 1;
        }
    }
    width
}

/// Cut a line to `cols` printed columns, keeping colour codes and closing any left open.
pub fn truncate(line: &str, cols: usize) -> String {
    if visible_width(line) <= cols {
        return line.to_string();
    }
    let mut out = String::new();
    let mut width = 0;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            out.push(c);
            for c in chars.by_ref() {
                out.push(c);
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else if width + 1 < cols {
            out.push(c);
            width += 1;
        } else {
            break;
        }
    }
    out.push('…');
    if out.contains('\x1b') {
        out.push_str("\x1b[0m");
    }
    out
}

/// Fit a frame into a terminal of `rows` × `cols`: long lines are cut, and a frame taller than
/// the screen keeps its top and says how much is hidden (an in-place redraw must not scroll).
pub fn fit(text: &str, rows: usize, cols: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let max = rows.saturating_sub(1).max(1);
    let keep = if lines.len() > max {
        max - 1
    } else {
        lines.len()
    };
    let mut out = String::new();
    for line in &lines[..keep] {
        out.push_str(&truncate(line, cols));
        out.push('\n');
    }
    if keep < lines.len() {
        let hidden = format!("… {} more lines", lines.len() - keep);
        out.push_str(&truncate(&hidden, cols));
        out.push('\n');
    }
    out
}

/// Left-align cells into columns two spaces apart; the last column is not padded and trailing
/// blanks are trimmed. Widths ignore colour codes.
pub fn align(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; cols];
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(visible_width(cell));
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths[i] - visible_width(cell) + 2;
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The pod-template hash label of a ReplicaSet.
pub fn rs_hash(rs: &ReplicaSet) -> Option<&str> {
    rs.metadata
        .labels
        .as_ref()?
        .get(crate::api::consts::LABEL_POD_TEMPLATE_HASH)
        .map(String::as_str)
}

/// The revision annotation of an object; 0 when missing or malformed.
pub fn revision_of(annotations: Option<&std::collections::BTreeMap<String, String>>) -> i64 {
    annotations
        .and_then(|a| a.get(crate::api::consts::ANNOTATION_REVISION))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A ReplicaSet's health: `Progressing` until its controller observed it and all desired pods
/// are available, `ReplicaFailure` when it cannot create pods, `ScaledDown` at zero, else
/// `Healthy`.
pub fn replica_set_status(rs: &ReplicaSet) -> &'static str {
    let generation = rs.metadata.generation.unwrap_or(0);
    let status = rs.status.as_ref();
    let observed = status.and_then(|s| s.observed_generation).unwrap_or(0);
    let desired = rs.spec.replicas;
    if generation > observed {
        return "Progressing";
    }
    let failure = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| {
            c.type_.as_deref() == Some("ReplicaFailure") && c.status.as_deref() == Some("True")
        });
    if failure {
        return "ReplicaFailure";
    }
    let available = status.and_then(|s| s.available_replicas).unwrap_or(0);
    if desired.is_some_and(|d| available < d) {
        return "Progressing";
    }
    if desired == Some(0) {
        return "ScaledDown";
    }
    "Healthy"
}

pub fn replica_set_icon(status: &str) -> &'static str {
    match status {
        "Progressing" => ICON_PROGRESSING,
        "Healthy" => ICON_OK,
        "ReplicaFailure" => ICON_BAD,
        "ScaledDown" => ICON_NEUTRAL,
        _ => " ",
    }
}

/// What the tree says about a pod: kubectl's STATUS column, `ready:n/m` and restarts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodState {
    pub status: String,
    pub ready: String,
    pub restarts: i32,
}

/// kubectl's pod STATUS: the first unfinished init container, else the most telling container
/// state (waiting or terminated reason), `Running` once a container runs, `Terminating` while
/// deleted.
pub fn pod_state(pod: &Pod) -> PodState {
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let total = spec.map_or(0, |s| s.containers.len());
    let mut reason = status
        .and_then(|s| s.reason.clone())
        .filter(|r| !r.is_empty())
        .or_else(|| status.and_then(|s| s.phase.clone()))
        .unwrap_or_default();
    let sidecars: Vec<&str> = spec
        .and_then(|s| s.init_containers.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"))
        .map(|c| c.name.as_str())
        .collect();
    let n_init = spec
        .and_then(|s| s.init_containers.as_ref())
        .map_or(0, Vec::len);
    let mut restarts = 0;
    let mut initializing = false;
    for (i, c) in status
        .and_then(|s| s.init_container_statuses.as_ref())
        .into_iter()
        .flatten()
        .enumerate()
    {
        restarts += c.restart_count;
        let state = c.state.as_ref();
        let terminated = state.and_then(|s| s.terminated.as_ref());
        let waiting = state.and_then(|s| s.waiting.as_ref());
        if let Some(t) = terminated {
            if t.exit_code == 0 {
                continue;
            }
            reason = match t.reason.as_deref().filter(|r| !r.is_empty()) {
                Some(r) => format!("Init:{r}"),
                None => match t.signal.filter(|s| *s != 0) {
                    Some(sig) => format!("Init:Signal:{sig}"),
                    None => format!("Init:ExitCode:{}", t.exit_code),
                },
            };
            initializing = true;
            break;
        }
        if sidecars.contains(&c.name.as_str()) && c.started == Some(true) {
            if c.ready {
                continue;
            }
            break;
        }
        match waiting.and_then(|w| w.reason.as_deref()) {
            Some(r) if !r.is_empty() && r != "PodInitializing" => reason = format!("Init:{r}"),
            _ => reason = format!("Init:{i}/{n_init}"),
        }
        initializing = true;
        break;
    }
    let mut ready = 0;
    if !initializing {
        restarts = 0;
        let mut running = false;
        for c in status
            .and_then(|s| s.container_statuses.as_ref())
            .into_iter()
            .flatten()
            .rev()
        {
            restarts += c.restart_count;
            let state = c.state.as_ref();
            let waiting = state
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.clone())
                .filter(|r| !r.is_empty());
            let terminated = state.and_then(|s| s.terminated.as_ref());
            if let Some(w) = waiting {
                reason = w;
            } else if let Some(t) = terminated {
                reason = match t.reason.as_deref().filter(|r| !r.is_empty()) {
                    Some(r) => r.to_string(),
                    None => match t.signal.filter(|s| *s != 0) {
                        Some(sig) => format!("Signal:{sig}"),
                        None => format!("ExitCode:{}", t.exit_code),
                    },
                };
            } else if c.ready && state.is_some_and(|s| s.running.is_some()) {
                running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && running {
            reason = "Running".into();
        }
    }
    if pod.metadata.deletion_timestamp.is_some() {
        reason = if status.and_then(|s| s.reason.as_deref()) == Some("NodeLost") {
            "Unknown".into()
        } else {
            "Terminating".into()
        };
    }
    PodState {
        status: reason,
        ready: format!("{ready}/{total}"),
        restarts,
    }
}

pub fn pod_icon(status: &str) -> &'static str {
    if status.starts_with("Init:") {
        return ICON_PROGRESSING;
    }
    if status.starts_with("Signal:") || status.starts_with("ExitCode:") {
        return ICON_BAD;
    }
    if status.ends_with("Error") || status.starts_with("Err") {
        return ICON_WARNING;
    }
    match status {
        "Pending" | "Terminating" | "ContainerCreating" => ICON_PROGRESSING,
        "Running" | "Completed" => ICON_OK,
        "Failed" | "InvalidImageName" | "CrashLoopBackOff" => ICON_BAD,
        "ImagePullBackOff" | "RegistryUnavailable" => ICON_WARNING,
        "Unknown" => ICON_UNKNOWN,
        _ => " ",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (59, "59s"),
            (119, "119s"),
            (120, "2m"),
            (150, "2m30s"),
            (599, "9m59s"),
            (600, "10m"),
            (3 * 3600 - 1, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 600, "3h10m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (48 * 3600, "2d"),
            (50 * 3600, "2d2h"),
            (8 * 86400, "8d"),
            (2 * 365 * 86400, "2y"),
            (2 * 365 * 86400 + 40 * 86400, "2y40d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}s");
        }
    }

    #[test]
    fn alignment_ignores_colour() {
        let s = Style { color: true };
        let rows = vec![
            vec!["NAME".into(), "STATUS".into(), "INFO".into()],
            vec![
                "a".into(),
                format!("{} Healthy", s.icon(ICON_OK)),
                "x".into(),
            ],
            vec!["long-name".into(), "◌ Progressing".into(), "".into()],
        ];
        let plain: String = align(&rows).replace("\x1b[32m", "").replace("\x1b[0m", "");
        assert_eq!(
            plain,
            "NAME       STATUS         INFO\na          ✔ Healthy      x\nlong-name  ◌ Progressing\n"
        );
    }

    #[test]
    fn frames_fit_the_terminal() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
        assert_eq!(
            truncate("\x1b[32m✔ Healthy\x1b[0m and more", 5),
            "\x1b[32m✔ He…\x1b[0m"
        );
        let text = "1\n2\n3\n4\n5\n";
        assert_eq!(fit(text, 10, 80), text);
        assert_eq!(fit(text, 4, 80), "1\n2\n… 3 more lines\n");
    }

    #[test]
    fn pod_states() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 2, "image": "", "imageID": "",
                 "state": {"running": {}}},
                {"name": "b", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
            ]}
        }))
        .unwrap_or_default();
        let st = pod_state(&pod);
        assert_eq!(st.status, "CrashLoopBackOff");
        assert_eq!(st.ready, "1/2");
        assert_eq!(st.restarts, 2);
        assert_eq!(pod_icon(&st.status), ICON_BAD);

        let pending: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "deletionTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Running"}
        }))
        .unwrap_or_default();
        assert_eq!(pod_state(&pending).status, "Terminating");
    }
}
