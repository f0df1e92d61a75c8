//! `list rollouts [-A] [--watch]`: one line per rollout (strategy, phase, step, weight, replica
//! counts); with `--watch`, a kube watch prints a new line whenever a rollout's line changes.

use std::collections::BTreeMap;
use std::io::Write as _;

use clap::{Args, Subcommand};
use futures::StreamExt;
use kube::api::{Api, ListParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};

use crate::api::rollout::Rollout;
use crate::cli::Output;
use crate::cli::context::Ctx;
use crate::cli::error::CliError;
use crate::cli::render::visible_width;
use crate::cli::tree::{phase_of, set_weight};

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(subcommand)]
    pub what: ListWhat,
}

#[derive(Subcommand, Debug)]
pub enum ListWhat {
    /// List the rollouts of the namespace (or of all namespaces with -A).
    #[command(visible_aliases = ["ro", "rollout"])]
    Rollouts(ListRolloutsArgs),
}

#[derive(Args, Debug)]
pub struct ListRolloutsArgs {
    /// List the rollouts of every namespace.
    #[arg(short = 'A', long, env = "SLUICE_ALL_NAMESPACES")]
    pub all_namespaces: bool,
    /// Only the rollout with this name.
    #[arg(long, value_name = "NAME", env = "SLUICE_LIST_NAME")]
    pub name: Option<String>,
    /// After the table, print a line each time a rollout changes.
    #[arg(short, long, env = "SLUICE_WATCH")]
    pub watch: bool,
    /// Start each line with the time it was printed.
    #[arg(long, env = "SLUICE_TIMESTAMPS")]
    pub timestamps: bool,
}

/// One line of the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub namespace: String,
    pub name: String,
    pub strategy: String,
    pub status: String,
    pub step: String,
    pub set_weight: String,
    pub ready: String,
    pub desired: i32,
    pub up_to_date: i32,
    pub available: i32,
}

pub fn row(ro: &Rollout) -> Row {
    let status = ro.status.clone().unwrap_or_default();
    // Argo's list says `unknown` (lower case) for a rollout with neither strategy.
    let (mut strategy, mut step, mut weight) =
        ("unknown".to_string(), "-".to_string(), "-".to_string());
    if let Some(canary) = &ro.spec.strategy.canary {
        strategy = "Canary".into();
        let n = canary.steps.as_ref().map_or(0, Vec::len);
        if let (Some(i), true) = (status.current_step_index, n > 0) {
            step = format!("{i}/{n}");
        }
        weight = set_weight(ro).to_string();
    } else if ro.spec.strategy.blue_green.is_some() {
        strategy = "BlueGreen".into();
    }
    Row {
        namespace: ro.metadata.namespace.clone().unwrap_or_default(),
        name: ro.metadata.name.clone().unwrap_or_default(),
        strategy,
        status: phase_of(ro).0,
        step,
        set_weight: weight,
        ready: format!(
            "{}/{}",
            status.ready_replicas.unwrap_or(0),
            status.replicas.unwrap_or(0)
        ),
        desired: ro.spec.replicas.unwrap_or(1),
        up_to_date: status.updated_replicas.unwrap_or(0),
        available: status.available_replicas.unwrap_or(0),
    }
}

/// Column layout, fixed once from the first rows so later watch lines line up with them.
#[derive(Clone, Debug)]
pub struct Table {
    all_namespaces: bool,
    timestamps: bool,
    widths: Vec<usize>,
}

const HEADERS: [(&str, usize); 9] = [
    ("NAME", 10),
    ("STRATEGY", 9),
    ("STATUS", 12),
    ("STEP", 4),
    ("SET-WEIGHT", 10),
    ("READY", 5),
    ("DESIRED", 7),
    ("UP-TO-DATE", 10),
    ("AVAILABLE", 9),
];

impl Table {
    pub fn new(rows: &[Row], all_namespaces: bool, timestamps: bool) -> Table {
        let mut t = Table {
            all_namespaces,
            timestamps,
            widths: Vec::new(),
        };
        let mut widths: Vec<usize> = t
            .header_cells()
            .iter()
            .zip(t.min_widths())
            .map(|(h, m)| m.max(visible_width(h)))
            .collect();
        for r in rows {
            for (w, c) in widths.iter_mut().zip(t.cells(r, "2006-01-02T15:04:05Z")) {
                *w = (*w).max(visible_width(&c));
            }
        }
        t.widths = widths;
        t
    }

    fn min_widths(&self) -> Vec<usize> {
        let mut m: Vec<usize> = HEADERS.iter().map(|(_, w)| *w).collect();
        if self.all_namespaces {
            m.insert(0, 9);
        }
        if self.timestamps {
            m.insert(0, 20);
        }
        m
    }

    fn header_cells(&self) -> Vec<String> {
        let mut h: Vec<String> = HEADERS.iter().map(|(h, _)| h.to_string()).collect();
        if self.all_namespaces {
            h.insert(0, "NAMESPACE".into());
        }
        if self.timestamps {
            h.insert(0, "TIMESTAMP".into());
        }
        h
    }

    fn cells(&self, r: &Row, timestamp: &str) -> Vec<String> {
        let mut c = vec![
            r.name.clone(),
            r.strategy.clone(),
            r.status.clone(),
            r.step.clone(),
            r.set_weight.clone(),
            r.ready.clone(),
            r.desired.to_string(),
            r.up_to_date.to_string(),
            r.available.to_string(),
        ];
        if self.all_namespaces {
            c.insert(0, r.namespace.clone());
        }
        if self.timestamps {
            c.insert(0, timestamp.to_string());
        }
        c
    }

    fn join(&self, cells: &[String]) -> String {
        let mut line = String::new();
        for (i, cell) in cells.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < cells.len() {
                let w = self.widths.get(i).copied().unwrap_or(0);
                line.push_str(&" ".repeat(w.saturating_sub(visible_width(cell)) + 2));
            }
        }
        line.trim_end().to_string() + "\n"
    }

    pub fn header(&self) -> String {
        self.join(&self.header_cells())
    }

    pub fn line(&self, r: &Row, timestamp: &str) -> String {
        self.join(&self.cells(r, timestamp))
    }
}

/// The whole table (header and one line per rollout, in the given order).
pub fn render_table(rows: &[Row], all_namespaces: bool, timestamp: Option<&str>) -> String {
    let t = Table::new(rows, all_namespaces, timestamp.is_some());
    let mut s = t.header();
    for r in rows {
        s.push_str(&t.line(r, timestamp.unwrap_or_default()));
    }
    s
}

fn now_stamp() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

pub async fn run(ctx: &Ctx, args: &ListRolloutsArgs, out: &mut Output<'_>) -> Result<(), CliError> {
    let api: Api<Rollout> = if args.all_namespaces {
        Api::all(ctx.client.clone())
    } else {
        ctx.rollouts()
    };
    let mut lp = ListParams::default();
    let mut cfg = watcher::Config::default();
    if let Some(n) = &args.name {
        let f = format!("metadata.name={n}");
        lp = lp.fields(&f);
        cfg = cfg.fields(&f);
    }
    let items = api.list(&lp).await?.items;
    let rows: Vec<Row> = items.iter().map(row).collect();
    if rows.is_empty() && !args.watch {
        let where_ = if args.all_namespaces {
            "any namespace".to_string()
        } else {
            format!("namespace '{}'", ctx.namespace)
        };
        let _ = writeln!(std::io::stderr(), "No rollouts found in {where_}.");
        return Ok(());
    }
    let table = Table::new(&rows, args.all_namespaces, args.timestamps);
    let stamp = now_stamp();
    out.write(&table.header())?;
    let mut printed: BTreeMap<(String, String), Row> = BTreeMap::new();
    for r in rows {
        out.write(&table.line(&r, &stamp))?;
        printed.insert((r.namespace.clone(), r.name.clone()), r);
    }
    if !args.watch {
        return Ok(());
    }
    let events = watcher::watcher(api, cfg).default_backoff();
    futures::pin_mut!(events);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            ev = events.next() => match ev {
                None => break,
                Some(Ok(Event::Apply(ro) | Event::InitApply(ro))) => {
                    let r = row(&ro);
                    let key = (r.namespace.clone(), r.name.clone());
                    if printed.get(&key) != Some(&r) {
                        out.write(&table.line(&r, &now_stamp()))?;
                        printed.insert(key, r);
                    }
                }
                Some(_) => {}
            },
            _ = &mut ctrl_c => break,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrow_values_keep_minimum_widths() {
        let r = Row {
            namespace: "default".into(),
            name: "frontend".into(),
            strategy: "Canary".into(),
            status: "Paused".into(),
            step: "1/8".into(),
            set_weight: "20".into(),
            ready: "5/5".into(),
            desired: 5,
            up_to_date: 1,
            available: 5,
        };
        assert_eq!(
            render_table(std::slice::from_ref(&r), false, None),
            "NAME        STRATEGY   STATUS        STEP  SET-WEIGHT  READY  DESIRED  UP-TO-DATE  AVAILABLE\n\
             frontend    Canary     Paused        1/8   20          5/5    5        1           5\n"
        );
    }
}
