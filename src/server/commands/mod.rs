//! The command table: names, arity and how each command is executed.

mod admin;
mod history;
mod info;
mod observe;
mod pitr;
mod strings;
mod tables;

pub use admin::exec_admin;
pub use info::{archive_lag_seconds, render_info};
pub use pitr::exec_pitr;
pub use strings::{exec_read, exec_write, read_keys};
pub use tables::exec_table;

/// How a command runs relative to the connection's pipelined writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Joins the pipelined write batch; answered when the batch commits.
    Write,
    /// Reads the map: pending writes of this connection are committed first.
    Read,
    /// Tables and connection state: pending writes are committed first.
    Table,
    /// Everything else (PING, HELLO, INFO ...): pending writes are committed first.
    Admin,
    /// Continuous backups and restores: pending writes are committed first.
    Pitr,
}

pub struct Spec {
    pub name: &'static str,
    /// Redis convention: `n` exactly n arguments (command included), `-n` at least n.
    pub arity: i32,
    pub kind: Kind,
}

const fn spec(name: &'static str, arity: i32, kind: Kind) -> Spec {
    Spec { name, arity, kind }
}

pub const COMMANDS: &[Spec] = &[
    spec("get", 2, Kind::Read),
    spec("set", -3, Kind::Write),
    spec("del", -2, Kind::Write),
    spec("exists", -2, Kind::Read),
    spec("mget", -2, Kind::Read),
    spec("mset", -3, Kind::Write),
    spec("incr", 2, Kind::Write),
    spec("incrby", 3, Kind::Write),
    spec("decr", 2, Kind::Write),
    spec("decrby", 3, Kind::Write),
    spec("dbsize", 1, Kind::Read),
    spec("ping", -1, Kind::Admin),
    spec("echo", 2, Kind::Admin),
    spec("quit", -1, Kind::Admin),
    spec("hello", -1, Kind::Admin),
    spec("select", 2, Kind::Admin),
    spec("command", -1, Kind::Admin),
    spec("config", -2, Kind::Admin),
    spec("info", -1, Kind::Admin),
    spec("time", 1, Kind::Admin),
    spec("client", -2, Kind::Admin),
    spec("auth", -2, Kind::Admin),
    spec("table.create", 2, Kind::Table),
    spec("table.drop", 2, Kind::Table),
    spec("table.list", 1, Kind::Table),
    spec("table.use", 2, Kind::Table),
    spec("table.describe", 2, Kind::Table),
    spec("pitr.enable", -2, Kind::Pitr),
    spec("pitr.disable", 2, Kind::Pitr),
    spec("pitr.describe", 2, Kind::Pitr),
    spec("pitr.restore", -4, Kind::Pitr),
    spec("pitr.history", -3, Kind::Pitr),
    spec("pitr.get", 5, Kind::Pitr),
    spec("pitr.diff", -6, Kind::Pitr),
    spec("pitr.revert", -6, Kind::Pitr),
    spec("table.digest", 2, Kind::Table),
    spec("slowlog", -2, Kind::Admin),
    spec("latency", -2, Kind::Admin),
    spec("memory", -2, Kind::Admin),
];

/// Finds a command by name, case-insensitively.
pub fn lookup(name: &[u8]) -> Option<usize> {
    if name.len() > 32 {
        return None;
    }
    COMMANDS
        .iter()
        .position(|s| s.name.as_bytes().eq_ignore_ascii_case(name))
}

pub fn arity_ok(spec: &Spec, argc: usize) -> bool {
    let argc = argc as i32;
    if spec.arity >= 0 {
        argc == spec.arity
    } else {
        argc >= -spec.arity
    }
}

/// Redis's message for an unknown command, quoting the first few arguments.
pub fn unknown_command(args: &[&[u8]]) -> String {
    let name = String::from_utf8_lossy(args[0]);
    let mut msg = format!(
        "ERR unknown command '{}', with args beginning with: ",
        trim(&name)
    );
    for a in args.iter().skip(1).take(8) {
        msg.push_str(&format!("'{}' ", trim(&String::from_utf8_lossy(a))));
    }
    msg
}

fn trim(s: &str) -> String {
    s.chars().take(128).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_is_case_insensitive_and_arity_follows_redis() {
        let get = lookup(b"GeT").unwrap();
        assert_eq!(COMMANDS[get].name, "get");
        assert!(arity_ok(&COMMANDS[get], 2) && !arity_ok(&COMMANDS[get], 3));
        let set = lookup(b"set").unwrap();
        assert!(arity_ok(&COMMANDS[set], 5) && !arity_ok(&COMMANDS[set], 2));
        assert!(lookup(b"flushall").is_none());
    }
}
