//! The `rewind` command line.
//!
//! `rewind serve` runs the server; `verify-shard` checks every checksum of one shard's log.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "rewind",
    version,
    about = "Durable Redis-protocol table server with point-in-time recovery"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(rewind::server::ServeArgs),
    /// Check every checksum of one shard's log; exits 1 naming file and offset on damage.
    VerifyShard {
        /// The shard's directory (holding `*.seg` files).
        dir: PathBuf,
        /// Table id the segments must belong to.
        #[arg(long)]
        table: u64,
        /// Shard number the segments must belong to.
        #[arg(long)]
        shard: u32,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match Cli::parse().command {
        Command::Serve(args) => match rewind::server::serve(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("rewind serve: {e}");
                ExitCode::FAILURE
            }
        },
        Command::VerifyShard { dir, table, shard } => {
            match rewind::log::verify_shard(&dir, table, shard) {
                Ok(s) => {
                    println!(
                        "ok: {} segments, {} blocks, {} records, {} logical bytes in {} bytes on disk",
                        s.segments, s.blocks, s.records, s.raw_bytes, s.stored_bytes
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("damage: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
