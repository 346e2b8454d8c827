//! `rewind-loadgen`: the load generator for RESP servers.
//!
//! Only the command-line skeleton exists so far; `run`, `capacity` and `verify` arrive with
//! the load-generator issue. Every subcommand that is not built yet says so and exits 2.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "rewind-loadgen",
    version,
    about = "Load generator for RESP servers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Closed- or open-loop load against a RESP server (not built yet).
    Run,
    /// Highest rate that meets a latency SLO (not built yet).
    Capacity,
    /// PITR correctness oracle against a running rewind (not built yet).
    Verify,
}

fn main() {
    let cli = Cli::parse();
    let name = match cli.command {
        Command::Run => "run",
        Command::Capacity => "capacity",
        Command::Verify => "verify",
    };
    eprintln!("rewind-loadgen {name}: not implemented yet");
    std::process::exit(2);
}
