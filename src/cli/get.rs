//! `get rollout NAME [--watch]`: print the tree once, or keep it current from kube watches —
//! redrawn in place on a terminal (at most ten times a second, and each second for the ages),
//! printed as successive snapshots when the output is not a terminal.

use std::time::Duration;

use clap::{Args, Subcommand};
use tokio::time::{Instant, sleep_until};

use crate::cli::Output;
use crate::cli::context::Ctx;
use crate::cli::error::CliError;
use crate::cli::render::{Style, fit};
use crate::cli::tree::{render, render_missing};
use crate::cli::watch::{Snapshot, TreeWatch, fetch};

#[derive(Args, Debug)]
pub struct GetArgs {
    #[command(subcommand)]
    pub what: GetWhat,
}

#[derive(Subcommand, Debug)]
pub enum GetWhat {
    /// Show a rollout: its status and the tree of revisions, ReplicaSets, Pods and AnalysisRuns.
    ///
    /// Tree icons: ⟳ Rollout, # revision, ⧉ ReplicaSet, □ Pod, α AnalysisRun.
    /// Status icons: ✔ healthy/running, ◌ progressing, ॥ paused, ✖ degraded/failed,
    /// ⚠ error, • scaled down, ? unknown.
    #[command(visible_aliases = ["ro", "rollouts"])]
    Rollout(GetRolloutArgs),
}

#[derive(Args, Debug)]
pub struct GetRolloutArgs {
    /// Name of the rollout.
    pub name: String,
    /// Keep the output current: redraw on every change (driven by watches) until interrupted.
    #[arg(short, long, env = "SLUICE_WATCH")]
    pub watch: bool,
    /// Do not colourise the output (colour is used only on a terminal anyway).
    #[arg(long, env = "SLUICE_NO_COLOR")]
    pub no_color: bool,
    /// With --watch: stop after this many seconds.
    #[arg(long, value_name = "SECONDS", env = "SLUICE_TIMEOUT_SECONDS")]
    pub timeout_seconds: Option<u64>,
}

fn frame(snap: &Snapshot, name: &str, namespace: &str, style: Style) -> String {
    match snap.view() {
        Some(v) => render(&v, jiff::Timestamp::now(), style),
        None => render_missing(name, namespace),
    }
}

pub async fn run(ctx: &Ctx, args: &GetRolloutArgs, out: &mut Output<'_>) -> Result<(), CliError> {
    let style = Style {
        color: out.color(args.no_color),
    };
    if !args.watch {
        let snap = fetch(ctx, &args.name).await?;
        out.write(&frame(&snap, &args.name, &ctx.namespace, style))?;
        return Ok(());
    }
    let mut tw = TreeWatch::start(ctx, &args.name).await?;
    // On a terminal: redraw at most every 100 ms, and every second for the ages. Elsewhere: one
    // snapshot per actual change, at most one a second.
    let gap = if out.tty {
        Duration::from_millis(100)
    } else {
        Duration::from_secs(1)
    };
    let far = Instant::now() + Duration::from_secs(100 * 365 * 86400);
    let deadline = args
        .timeout_seconds
        .map(|s| Instant::now() + Duration::from_secs(s));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // The screen size bounds each frame; a resize (SIGWINCH) is picked up at once.
    let mut size = if out.tty { terminal_size() } else { None };
    let mut resized =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())?;
    let mut last_draw: Option<Instant> = None;
    let mut last_sig = None;
    let mut dirty = false;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let draw_at =
            (dirty && tw.ready()).then(|| last_draw.map_or_else(Instant::now, |t| t + gap));
        tokio::select! {
            ev = tw.next() => {
                if ev.is_none() {
                    break;
                }
                dirty = true;
            }
            _ = sleep_until(draw_at.unwrap_or(far)), if draw_at.is_some() => {
                dirty = false;
                let sig = tw.signature();
                let text = frame(&tw.snapshot(), &args.name, &ctx.namespace, style);
                if out.tty {
                    let text = match size {
                        Some((rows, cols)) => fit(&text, rows, cols),
                        None => text,
                    };
                    out.write(&redraw(&text, last_draw.is_none()))?;
                } else if last_sig.as_ref() != Some(&sig) {
                    if last_draw.is_some() {
                        out.write("\n")?;
                    }
                    out.write(&text)?;
                }
                last_sig = Some(sig);
                last_draw = Some(Instant::now());
            }
            _ = tick.tick(), if out.tty => dirty = true,
            _ = resized.recv(), if out.tty => {
                size = terminal_size();
                dirty = true;
            }
            _ = sleep_until(deadline.unwrap_or(far)), if deadline.is_some() => break,
            _ = &mut ctrl_c => break,
        }
    }
    Ok(())
}

/// Rows and columns of the controlling terminal, from `stty size` (no unsafe ioctl here).
fn terminal_size() -> Option<(usize, usize)> {
    let tty = std::fs::File::open("/dev/tty").ok()?;
    let out = std::process::Command::new("stty")
        .arg("size")
        .stdin(tty)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let mut it = text.split_whitespace().map(|n| n.parse::<usize>().ok());
    let (rows, cols) = (it.next()??, it.next()??);
    (rows > 0 && cols > 0).then_some((rows, cols))
}

/// The frame drawn over the previous one: cursor home, each line cleared to its end, the rest
/// of the screen cleared (no full clear, so nothing flickers). The first frame clears the screen.
fn redraw(text: &str, first: bool) -> String {
    let mut s = String::from(if first { "\x1b[H\x1b[2J" } else { "\x1b[H" });
    for line in text.lines() {
        s.push_str(line);
        s.push_str("\x1b[K\n");
    }
    s.push_str("\x1b[J");
    s
}
