//! Where `rewind serve`'s settings come from, and what they are in the end.
//!
//! Precedence, highest first: a flag on the command line, its `REWIND_*` environment
//! variable (the flag's name in capitals, `-` as `_`: `--data-dir` is `REWIND_DATA_DIR`),
//! the `--config` TOML file (keys are the flag names: `data-dir = "/var/lib/rewind"`), the
//! default. A key the file has that no flag has is an error naming the key and the file.
//!
//! The file is read into extra command-line arguments for exactly the settings neither a
//! flag nor the environment gave, and everything is parsed once more by clap, so one
//! parser checks every value whatever its source.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgAction, Args, Command, FromArgMatches};

use super::config::ServeArgs;

/// Settings whose values `CONFIG GET` and `--print-config` never show.
const SECRETS: [&str; 2] = ["requirepass", "dynamodb-access-keys"];
/// Flags that are not settings.
const NOT_SETTINGS: [&str; 3] = ["config", "print-config", "help"];
/// A config file larger than this is refused (it would be a mistake, not a config).
const MAX_FILE_BYTES: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    Cli(#[from] clap::Error),
    #[error("cannot read the config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {msg}")]
    Invalid { path: PathBuf, msg: String },
}

fn command() -> Command {
    ServeArgs::augment_args(Command::new("rewind serve").about("Run the server."))
}

/// The settings of `rewind serve ARGS...` (`args` without the program and `serve`).
pub fn resolve(args: Vec<OsString>) -> Result<ServeArgs, SettingsError> {
    let argv = |extra: &[OsString]| {
        std::iter::once(OsString::from("rewind serve"))
            .chain(args.iter().cloned())
            .chain(extra.iter().cloned())
            .collect::<Vec<_>>()
    };
    // The first pass only finds --config and what flags and the environment set: a
    // relation between settings (`requires`) may be met by the file, so only the second pass,
    // with the file's settings in, checks everything.
    let first = match command().try_get_matches_from(argv(&[])) {
        Ok(m) => m,
        // Only a missing requirement is left for the file to meet: it is found after every
        // flag and variable was read, so the lenient pass sees them all too. Any other error
        // (a bad value in a flag or variable) stands.
        Err(e) if e.kind() == clap::error::ErrorKind::MissingRequiredArgument => command()
            .ignore_errors(true)
            .try_get_matches_from(argv(&[]))?,
        Err(e) => return Err(e.into()),
    };
    let file = first.get_one::<PathBuf>("config").cloned();
    let extra = match &file {
        Some(path) => from_file(path, &first)?,
        None => Vec::new(),
    };
    let matches = command().try_get_matches_from(argv(&extra))?;
    let mut serve = ServeArgs::from_arg_matches(&matches)?;
    serve.settings = effective(&matches);
    serve.config = file;
    Ok(serve)
}

/// The arguments the file `path` adds: one per key that neither a flag nor the
/// environment set.
fn from_file(path: &Path, given: &clap::ArgMatches) -> Result<Vec<OsString>, SettingsError> {
    let read_err = |source| SettingsError::Read {
        path: path.to_path_buf(),
        source,
    };
    let invalid = |msg: String| SettingsError::Invalid {
        path: path.to_path_buf(),
        msg,
    };
    let len = std::fs::metadata(path).map_err(read_err)?.len();
    if len > MAX_FILE_BYTES {
        return Err(invalid(format!(
            "{len} bytes; a config file may hold at most {MAX_FILE_BYTES}"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(read_err)?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| invalid(e.to_string().trim_end().to_string()))?;
    let cmd = command();
    let mut out = Vec::new();
    for (key, value) in &table {
        let name = key.replace('_', "-");
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(name.as_str()))
            .filter(|_| !NOT_SETTINGS.contains(&name.as_str()))
            .ok_or_else(|| {
                invalid(format!(
                    "unknown key '{key}' (the keys are rewind serve's flag names, e.g. data-dir; `rewind serve --print-config` lists them)"
                ))
            })?;
        let id = arg.get_id().as_str();
        if matches!(
            given.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue; // a flag or the environment overrides the file
        }
        let flag = matches!(arg.get_action(), ArgAction::SetTrue);
        let scalar = |v: &toml::Value| -> Result<String, SettingsError> {
            match v {
                toml::Value::String(s) => Ok(s.clone()),
                toml::Value::Integer(i) => Ok(i.to_string()),
                toml::Value::Float(f) => Ok(f.to_string()),
                toml::Value::Boolean(b) => Ok(b.to_string()),
                other => Err(invalid(format!(
                    "key '{key}' takes a {}, not a {}",
                    if flag { "boolean" } else { "string or number" },
                    other.type_str()
                ))),
            }
        };
        match (flag, value) {
            (true, toml::Value::Boolean(true)) => out.push(OsString::from(format!("--{name}"))),
            (true, toml::Value::Boolean(false)) => {}
            (true, other) => {
                return Err(invalid(format!(
                    "key '{key}' is a switch: true or false, not {other}"
                )))
            }
            (false, toml::Value::Array(items)) => {
                let parts = items.iter().map(scalar).collect::<Result<Vec<_>, _>>()?;
                out.push(OsString::from(format!("--{name}={}", parts.join(","))));
            }
            (false, v) => out.push(OsString::from(format!("--{name}={}", scalar(v)?))),
        }
    }
    Ok(out)
}

/// Every setting by its flag name with its value as given or defaulted (`""` when unset),
/// secrets shown only as whether they are set.
fn effective(m: &clap::ArgMatches) -> Vec<(String, String)> {
    let cmd = command();
    let mut out = Vec::new();
    for arg in cmd.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if NOT_SETTINGS.contains(&long) {
            continue;
        }
        let id = arg.get_id().as_str();
        let value = if matches!(arg.get_action(), ArgAction::SetTrue) {
            m.get_flag(id).to_string()
        } else {
            m.get_raw(id)
                .map(|vals| {
                    vals.map(|v| v.to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default()
        };
        let value = if SECRETS.contains(&long) {
            if value.is_empty() { "" } else { "(set)" }.to_string()
        } else {
            value
        };
        out.push((long.to_string(), value));
    }
    out
}

/// `--print-config`: the effective settings as a config file `--config` reads back.
/// Secrets are left out (commented); unset settings are commented out too.
pub fn render_toml(settings: &[(String, String)]) -> String {
    let mut out = String::from(
        "# rewind serve: the effective settings (flags > REWIND_* environment > --config file > defaults)\n",
    );
    let cmd = command();
    for (k, v) in settings {
        let flag = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(k.as_str()))
            .is_some_and(|a| matches!(a.get_action(), ArgAction::SetTrue));
        if SECRETS.contains(&k.as_str()) {
            let state = if v.is_empty() {
                "not set"
            } else {
                "set, not shown"
            };
            out.push_str(&format!("# {k} = ... ({state})\n"));
        } else if flag {
            out.push_str(&format!("{k} = {v}\n"));
        } else if v.is_empty() {
            out.push_str(&format!("# {k} = (not set)\n"));
        } else if v.parse::<i64>().is_ok() {
            out.push_str(&format!("{k} = {v}\n"));
        } else {
            out.push_str(&format!("{k} = {}\n", toml::Value::String(v.clone())));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn get<'a>(s: &'a [(String, String)], k: &str) -> &'a str {
        &s.iter().find(|(n, _)| n == k).unwrap().1
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rewind.toml");
        std::fs::write(
            &path,
            "data-dir = \"/from/file\"\nshards = 3\nmax_clients = 7\nno-protected-mode = true\ndynamodb-access-keys = [\"a:b\", \"c:d\"]\nrequirepass = \"s3cret\"\n",
        )
        .unwrap();
        let p = path.to_str().unwrap();
        let a = resolve(os(&["--config", p, "--shards", "5"])).unwrap();
        assert_eq!(a.data_dir, PathBuf::from("/from/file"));
        assert_eq!(a.shards, Some(5), "the flag wins");
        assert_eq!(a.max_clients, 7, "underscores read as dashes");
        assert!(a.no_protected_mode);
        assert_eq!(a.dynamodb_access_keys, vec!["a:b", "c:d"]);
        assert_eq!(a.requirepass.as_deref(), Some("s3cret"));
        assert_eq!(get(&a.settings, "shards"), "5");
        assert_eq!(get(&a.settings, "fsync"), "always", "a default");
        assert_eq!(get(&a.settings, "requirepass"), "(set)");
        let toml = render_toml(&a.settings);
        assert!(!toml.contains("s3cret") && !toml.contains("a:b"), "{toml}");
        // What --print-config prints reads back to the same settings.
        let again = dir.path().join("again.toml");
        std::fs::write(&again, &toml).unwrap();
        let b = resolve(os(&["--config", again.to_str().unwrap()])).unwrap();
        let visible = |s: &[(String, String)]| -> Vec<(String, String)> {
            s.iter()
                .filter(|(k, _)| !SECRETS.contains(&k.as_str()))
                .cloned()
                .collect()
        };
        assert_eq!(visible(&b.settings), visible(&a.settings));
    }

    #[test]
    fn a_setting_another_requires_may_come_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rewind.toml");
        std::fs::write(&path, "archive = \"file:///tmp/a\"\n").unwrap();
        let p = path.to_str().unwrap();
        let a = resolve(os(&["--config", p, "--archive-takeover"])).unwrap();
        assert!(a.archive_takeover && a.archive.as_deref() == Some("file:///tmp/a"));
        // Without the file, the relation is still checked.
        let e = resolve(os(&["--archive-takeover"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--archive"), "{e}");
        // A bad value from a flag stays an error though the file sets the key.
        std::fs::write(&path, "shards = 4\n").unwrap();
        let e = resolve(os(&["--config", p, "--shards", "100"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("shards") || e.contains("100"), "{e}");
    }

    #[test]
    fn unknown_keys_bad_types_and_bad_values_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let write = |text: &str| {
            let p = dir.path().join("c.toml");
            std::fs::write(&p, text).unwrap();
            p.to_str().unwrap().to_string()
        };
        let err = |text: &str| {
            resolve(os(&["--config", &write(text)]))
                .unwrap_err()
                .to_string()
        };
        let e = err("data-dri = \"x\"\n");
        assert!(
            e.contains("unknown key 'data-dri'") && e.contains("c.toml"),
            "{e}"
        );
        let e = err("no-protected-mode = \"yes\"\n");
        assert!(e.contains("switch"), "{e}");
        let e = err("shards = [1, [2]]\n");
        assert!(e.contains("shards"), "{e}");
        let e = err("shards = 0\n");
        assert!(e.contains("shards"), "{e}");
        let e = err("this is not toml");
        assert!(e.contains("c.toml"), "{e}");
        let e = err("config = \"other.toml\"\n");
        assert!(e.contains("unknown key 'config'"), "{e}");
        let e = resolve(os(&["--config", "/nonexistent/rewind.toml"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/rewind.toml"), "{e}");
    }
}
