//! The `rewind` command line.
//!
//! `rewind serve` runs the server; `verify-shard` checks every checksum of one shard's log.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rewind::log::Clock;

/// mimalloc instead of glibc malloc: the map makes two small allocations per new key, and
/// restore replay measured 1.7-2x faster with it (`benches/restore_replay.rs`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    Serve(Box<rewind::server::ServeArgs>),
    /// Restore a table to a point in time without a running server (takes the data-directory
    /// lock).
    Restore {
        #[arg(long, default_value = "./rewind-data")]
        data_dir: PathBuf,
        /// Source table: its name (a dropped one too) or id:<n>.
        #[arg(long)]
        source: String,
        /// The new table.
        #[arg(long)]
        target: String,
        /// RFC 3339 or Unix seconds with a fraction.
        #[arg(long, conflicts_with = "latest", required_unless_present = "latest")]
        at: Option<String>,
        /// The newest durable state (from an archive: the newest it holds).
        #[arg(long)]
        latest: bool,
        /// Restore from this archive (s3://bucket/prefix or file:///path) instead of the data
        /// directory's own history; --data-dir is then the directory to restore into (created
        /// if missing).
        #[arg(long)]
        archive: Option<String>,
        /// With --archive: the generation to restore from (default: the newest that has the
        /// table).
        #[arg(long, requires = "archive")]
        generation: Option<String>,
    },
    /// Show segments, checkpoints, time ranges, markers and compression per table and shard.
    Inspect {
        #[arg(long, default_value = "./rewind-data")]
        data_dir: PathBuf,
        /// Only this table.
        #[arg(long)]
        table: Option<String>,
        /// List the tables of this archive and their restorable windows instead.
        #[arg(long, conflicts_with = "table")]
        archive: Option<String>,
    },
    /// Check every checksum of a data directory; exits 1 naming file and offset on damage.
    Verify {
        #[arg(long, default_value = "./rewind-data")]
        data_dir: PathBuf,
    },
    /// Rebuild a lost or damaged catalog from each table directory's own table.meta (on a
    /// stopped server's data directory; a damaged catalog is kept beside it).
    RecoverCatalog {
        #[arg(long, default_value = "./rewind-data")]
        data_dir: PathBuf,
        /// Shards of the empty `default` table, if it has to be added.
        #[arg(long, default_value_t = 2)]
        shards: u32,
        /// Rebuild even when some table directories have no readable metadata (the next start
        /// moves those to lost+found/; nothing is deleted).
        #[arg(long)]
        force: bool,
    },
    /// A key's writes, newest first, on a stopped server's data directory.
    History {
        #[arg(long, default_value = "./rewind-data")]
        data_dir: PathBuf,
        /// The table: its name (a dropped one too) or id:<n>.
        #[arg(long)]
        table: String,
        /// The key, as bytes.
        #[arg(
            long,
            required_unless_present = "dynamodb_key",
            conflicts_with = "dynamodb_key"
        )]
        key: Option<String>,
        /// A DynamoDB table's key, as the JSON of its key attributes
        /// ('{"artist":{"S":"A"}}'): the history is printed as JSON items.
        #[arg(long)]
        dynamodb_key: Option<String>,
        /// RFC 3339 or Unix seconds (default: the window's start).
        #[arg(long)]
        from: Option<String>,
        /// RFC 3339 or Unix seconds (default: now).
        #[arg(long)]
        to: Option<String>,
        #[arg(long, default_value_t = 100)]
        count: usize,
    },
    /// The keys whose value changed between two moments, on a stopped server's data
    /// directory.
    Diff {
        #[arg(long, default_value = "./rewind-data")]
        data_dir: PathBuf,
        #[arg(long)]
        table: String,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        /// Only keys matching this Redis-style glob.
        #[arg(long = "match")]
        pattern: Option<String>,
        #[arg(long, default_value_t = 1000)]
        count: usize,
    },
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

/// Log lines to stderr, as text or one JSON object a line; `RUST_LOG` filters them.
fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        fmt.json().with_current_span(false).init();
    } else {
        fmt.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
}

/// `rewind serve`: its settings come from flags, REWIND_* variables and --config
/// (`rewind::server::settings`), so it is parsed apart from the other commands.
fn serve(args: Vec<std::ffi::OsString>) -> ExitCode {
    use rewind::server::settings::{render_toml, resolve, SettingsError};
    let args = match resolve(args) {
        Ok(a) => a,
        Err(SettingsError::Cli(e)) => e.exit(),
        Err(e) => {
            eprintln!("rewind serve: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.print_config {
        print!("{}", render_toml(&args.settings));
        return ExitCode::SUCCESS;
    }
    init_logging(args.log_format == rewind::server::LogFormat::Json);
    #[cfg(feature = "failpoints")]
    rewind::log::failpoint::arm_from_env();
    match rewind::server::serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("rewind serve: {e}");
            eprintln!("rewind serve: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.get(1).is_some_and(|a| a == "serve") {
        return serve(argv[2..].to_vec());
    }
    init_logging(false);
    #[cfg(feature = "failpoints")]
    rewind::log::failpoint::arm_from_env();
    match Cli::parse().command {
        // Handled above; `rewind --help` still lists it.
        Command::Serve(_) => unreachable!("rewind serve is parsed by settings::resolve"),
        Command::Restore {
            data_dir,
            source,
            target,
            at,
            latest,
            archive,
            generation,
        } => {
            let at = match (at, latest) {
                (Some(t), _) => match rewind::restore::parse_time(&t) {
                    Ok(us) => rewind::shard::RestoreAt::Time(us),
                    Err(e) => {
                        eprintln!("rewind restore: {e}");
                        return ExitCode::from(2);
                    }
                },
                (None, _) => rewind::shard::RestoreAt::Latest,
            };
            if let Some(url) = archive {
                return match rewind::cli::restore_from_archive(
                    &url,
                    &data_dir,
                    &source,
                    &target,
                    at,
                    generation.as_deref(),
                ) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("rewind restore: {e}");
                        ExitCode::FAILURE
                    }
                };
            }
            match rewind::cli::restore(&data_dir, &source, &target, at) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("rewind restore: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Inspect {
            data_dir,
            table,
            archive,
        } => {
            let text = match archive {
                Some(url) => rewind::cli::inspect_archive(&url).map_err(|e| e.to_string()),
                None => {
                    rewind::cli::inspect(&data_dir, table.as_deref()).map_err(|e| e.to_string())
                }
            };
            match text {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("rewind inspect: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Verify { data_dir } => match rewind::cli::verify(&data_dir) {
            Ok(r) => {
                for t in &r.torn {
                    println!("torn tail (the next start cuts it): {t}");
                }
                for d in &r.damage {
                    println!("DAMAGE: {d}");
                }
                println!(
                    "{} files checked, {} records, {} damaged, {} torn tails",
                    r.files,
                    r.records,
                    r.damage.len(),
                    r.torn.len()
                );
                if r.damage.is_empty() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("rewind verify: {e}");
                ExitCode::FAILURE
            }
        },
        Command::RecoverCatalog {
            data_dir,
            shards,
            force,
        } => {
            let now_us = rewind::log::SystemClock.now_us();
            match rewind::shard::recover_catalog(&data_dir, shards.max(1), now_us, force) {
                Ok(r) => {
                    print!("{}", rewind::cli::describe_recovery(&data_dir, &r));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("rewind recover-catalog: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::History {
            data_dir,
            table,
            key,
            dynamodb_key,
            from,
            to,
            count,
        } => {
            let key = match (key, dynamodb_key) {
                (_, Some(json)) => rewind::cli::KeyArg::Dynamo(json),
                (Some(k), None) => rewind::cli::KeyArg::Raw(k.into_bytes()),
                (None, None) => unreachable!("clap requires one"),
            };
            let r = rewind::cli::history(
                &data_dir,
                &table,
                key,
                (from.as_deref(), to.as_deref()),
                count.clamp(1, 100_000),
            );
            print_or_fail("history", r)
        }
        Command::Diff {
            data_dir,
            table,
            from,
            to,
            pattern,
            count,
        } => {
            let r = rewind::cli::diff(
                &data_dir,
                &table,
                (&from, &to),
                pattern.as_deref(),
                count.clamp(1, 100_000),
            );
            print_or_fail("diff", r)
        }
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

fn print_or_fail(what: &str, r: Result<String, rewind::shard::DbError>) -> ExitCode {
    match r {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rewind {what}: {e}");
            ExitCode::FAILURE
        }
    }
}
