//! Time arithmetic in one place. Kubernetes timestamps are `jiff::Timestamp`s (inside k8s-openapi's
//! `Time`); everything here works on those and on `std::time::Duration`, and parses the Go duration
//! strings that Argo manifests carry.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Kubernetes serialises timestamps with whole seconds; truncating `now` to seconds keeps status
/// values stable across a write/read round trip, so an unchanged status compares equal.
pub fn k8s_time(ts: Timestamp) -> Time {
    Time(Timestamp::from_second(ts.as_second()).unwrap_or(ts))
}

/// `t + secs`, saturating at the representable range.
pub fn add_seconds(t: Timestamp, secs: i64) -> Timestamp {
    t.saturating_add(SignedDuration::from_secs(secs))
        .unwrap_or(Timestamp::MAX)
}

/// How long from `now` until `deadline`; `None` when the deadline has passed.
pub fn until(now: Timestamp, deadline: Timestamp) -> Option<Duration> {
    let d = deadline.duration_since(now);
    if d.is_negative() || d.is_zero() {
        None
    } else {
        Duration::try_from(d).ok()
    }
}

/// Parse a Go `time.ParseDuration` string ("10m", "1h30m", "1.5s", "300ms").
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s;
    let mut total_nanos: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total_nanos += value * scale;
    }
    if !total_nanos.is_finite() || total_nanos < 0.0 || total_nanos > u64::MAX as f64 {
        return None;
    }
    Some(Duration::from_nanos(total_nanos as u64))
}

/// Argo's `RolloutPause.DurationSeconds`: a bare integer (or an integer string) is seconds, else a
/// Go duration rounded down to seconds; anything unparseable is -1 (validation rejects it).
pub fn pause_duration_seconds(d: &IntOrString) -> i64 {
    match d {
        IntOrString::Int(n) => i64::from(*n),
        IntOrString::String(s) => {
            if let Ok(n) = s.trim().parse::<i64>() {
                return n;
            }
            parse_go_duration(s).map_or(-1, |d| d.as_secs() as i64)
        }
    }
}

/// Display an IntOrString the way Go's `IntOrString.String()` does.
pub fn int_or_string_display(v: &IntOrString) -> String {
    match v {
        IntOrString::Int(n) => n.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_go_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("300ms"), Some(Duration::from_millis(300)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("10"), None);
        assert_eq!(parse_go_duration("10x"), None);
        assert_eq!(parse_go_duration(""), None);
        assert_eq!(parse_go_duration("m"), None);
    }

    #[test]
    fn pause_seconds() {
        assert_eq!(pause_duration_seconds(&IntOrString::Int(30)), 30);
        assert_eq!(
            pause_duration_seconds(&IntOrString::String("45".into())),
            45
        );
        assert_eq!(
            pause_duration_seconds(&IntOrString::String("10m".into())),
            600
        );
        assert_eq!(
            pause_duration_seconds(&IntOrString::String("1h".into())),
            3600
        );
        assert_eq!(
            pause_duration_seconds(&IntOrString::String("soon".into())),
            -1
        );
    }

    #[test]
    fn until_deadline() {
        let now = Timestamp::from_second(1_000).unwrap_or(Timestamp::UNIX_EPOCH);
        assert_eq!(
            until(now, add_seconds(now, 5)),
            Some(Duration::from_secs(5))
        );
        assert_eq!(until(now, now), None);
        assert_eq!(until(now, add_seconds(now, -5)), None);
    }
}
