//! kubectl-sluice: on PATH it makes `kubectl sluice …` work. Parses the command line, runs the
//! library, and reports any failure as one `error: …` line with a non-zero exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use sluice::cli::{Cli, CliError, Output};

fn main() -> ExitCode {
    // Last line of defence: a bug must still end in one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        eprintln!("error: internal error: {}", msg.replace('\n', "; "));
    }));
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stdout = std::io::stdout();
    let tty = stdout.is_terminal();
    let mut lock = stdout.lock();
    let mut out = Output {
        out: &mut lock,
        tty,
    };
    match runtime.block_on(sluice::cli::run(cli, &mut out)) {
        Ok(()) => ExitCode::SUCCESS,
        // `kubectl sluice … | head`: the reader left; not an error worth reporting.
        Err(CliError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.one_line());
            ExitCode::FAILURE
        }
    }
}
