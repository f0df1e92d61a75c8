//! `version [--short]`.

use clap::Args;

use crate::cli::Output;
use crate::cli::error::CliError;

#[derive(Args, Debug)]
pub struct VersionArgs {
    /// Print only the version number.
    #[arg(long, env = "SLUICE_VERSION_SHORT")]
    pub short: bool,
}

/// The plugin's version line(s).
pub fn version_text(short: bool) -> String {
    let mut s = format!("kubectl-sluice: v{}\n", env!("CARGO_PKG_VERSION"));
    if !short {
        s.push_str(&format!(
            "  Platform: {}/{}\n  API: {}\n",
            std::env::consts::OS,
            std::env::consts::ARCH,
            crate::api::consts::API_VERSION
        ));
    }
    s
}

pub fn run(args: &VersionArgs, out: &mut Output<'_>) -> Result<(), CliError> {
    out.write(&version_text(args.short))
}
