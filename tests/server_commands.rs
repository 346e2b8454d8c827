//! Every command of the server, over real TCP, on both I/O paths.

mod common;

use common::{start, Value, IO_MODES};

fn strings(io: &str) {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), io, &[]);
    let mut c = srv.client();
    assert_eq!(c.cmd(&["PING"]), Value::Simple("PONG".into()));
    assert_eq!(c.cmd(&["ping", "hi"]), Value::bulk("hi"));
    assert_eq!(c.cmd(&["ECHO", "x y"]), Value::bulk("x y"));
    assert_eq!(c.cmd(&["SET", "k", "v1"]), Value::ok());
    assert_eq!(c.cmd(&["GET", "k"]), Value::bulk("v1"));
    assert_eq!(c.cmd(&["GET", "missing"]), Value::Null);
    assert_eq!(c.cmd(&["SET", "k", "v2"]), Value::ok());
    assert_eq!(c.cmd(&["GET", "k"]), Value::bulk("v2"));
    assert_eq!(c.cmd(&["MSET", "a", "1", "b", "2", "c", "3"]), Value::ok());
    assert_eq!(
        c.cmd(&["MGET", "a", "nope", "c"]),
        Value::Array(vec![Value::bulk("1"), Value::Null, Value::bulk("3")])
    );
    assert_eq!(c.cmd(&["EXISTS", "a", "a", "nope"]).as_int(), 2);
    assert_eq!(c.cmd(&["DBSIZE"]).as_int(), 4);
    assert_eq!(c.cmd(&["DEL", "a", "b", "a", "nope"]).as_int(), 2);
    assert_eq!(c.cmd(&["DEL", "a"]).as_int(), 0);
    assert_eq!(c.cmd(&["DBSIZE"]).as_int(), 2);
    assert_eq!(c.cmd(&["INCR", "n"]).as_int(), 1);
    assert_eq!(c.cmd(&["INCR", "n"]).as_int(), 2);
    assert_eq!(c.cmd(&["GET", "n"]), Value::bulk("2"));
    assert_eq!(c.cmd(&["INCRBY", "n", "40"]).as_int(), 42);
    assert_eq!(c.cmd(&["DECRBY", "n", "50"]).as_int(), -8);
    assert_eq!(c.cmd(&["DECR", "n"]).as_int(), -9);
    assert!(c
        .cmd(&["INCRBY", "n", "x"])
        .err_text()
        .contains("not an integer"));
    assert_eq!(c.cmd(&["INCR", "n"]).as_int(), -8);
    assert!(c.cmd(&["INCR", "k"]).err_text().contains("not an integer"));
    assert_eq!(c.cmd(&["SET", "big", "9223372036854775807"]), Value::ok());
    assert!(c.cmd(&["INCR", "big"]).err_text().contains("overflow"));
    // Unsupported SET options are refused and change nothing.
    for opt in ["EX", "px", "NX", "XX", "GET", "KEEPTTL"] {
        let r = c.cmd(&["SET", "k", "v3", opt, "10"]);
        assert!(r.err_text().contains(&opt.to_uppercase()), "{r:?}");
    }
    assert_eq!(c.cmd(&["GET", "k"]), Value::bulk("v2"));
    assert_eq!(
        c.cmd(&["SET", "k", "v", "bogus"]).err_text(),
        "ERR syntax error"
    );
    // Errors in Redis's shapes.
    assert_eq!(
        c.cmd(&["FLUSHALL", "now"]).err_text(),
        "ERR unknown command 'FLUSHALL', with args beginning with: 'now' "
    );
    assert_eq!(
        c.cmd(&["GET"]).err_text(),
        "ERR wrong number of arguments for 'get' command"
    );
    assert!(c.cmd(&["MSET", "a", "1", "b"]).is_error());
    drop(c);
    assert!(srv.stop().success());
}

fn admin(io: &str) {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), io, &["--max-clients", "50"]);
    let mut c = srv.client();
    assert_eq!(c.cmd(&["SELECT", "0"]), Value::ok());
    assert!(c.cmd(&["SELECT", "1"]).is_error());
    assert_eq!(c.cmd(&["COMMAND"]), Value::Array(vec![]));
    assert!(c.cmd(&["COMMAND", "COUNT"]).as_int() > 20);
    assert_eq!(c.cmd(&["COMMAND", "DOCS"]), Value::Array(vec![]));
    let cfg = c.cmd(&["CONFIG", "GET", "maxclients"]).fields();
    assert_eq!(cfg, vec![("maxclients".to_string(), Value::bulk("50"))]);
    assert_eq!(c.cmd(&["CONFIG", "GET", "nothing"]), Value::Array(vec![]));
    assert!(c.cmd(&["CONFIG", "SET", "x", "y"]).is_error());
    let Value::Array(t) = c.cmd(&["TIME"]) else {
        panic!()
    };
    let Value::Bulk(secs) = &t[0] else { panic!() };
    let secs: u64 = String::from_utf8_lossy(secs).parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(secs.abs_diff(now) < 5);
    assert_eq!(c.cmd(&["CLIENT", "SETNAME", "tester"]), Value::ok());
    assert_eq!(c.cmd(&["CLIENT", "GETNAME"]), Value::bulk("tester"));
    assert_eq!(c.cmd(&["CLIENT", "SETINFO", "lib-name", "x"]), Value::ok());
    assert!(c.cmd(&["CLIENT", "ID"]).as_int() > 0);
    c.cmd(&["SET", "x", "1"]);
    c.cmd(&["GET", "x"]);
    let Value::Bulk(info) = c.cmd(&["INFO"]) else {
        panic!()
    };
    let info = String::from_utf8(info).unwrap();
    for field in [
        "rewind_version:",
        "uptime_in_seconds:",
        "connected_clients:1",
        "cmdstat_get:calls=1",
        "cmdstat_set:calls=1",
        "table_default:keys=1",
        "log_bytes_on_disk:",
        "log_syncs:",
        "log_avg_records_per_sync:",
    ] {
        assert!(info.contains(field), "INFO lacks {field}:\n{info}");
    }
    let net = if io == "uring" { "uring" } else { "epoll" };
    assert!(info.contains(&format!("io_mode:{net}")), "{info}");
    let log = if matches!(io, "epoll" | "inline") {
        "std"
    } else {
        "uring"
    };
    assert!(info.contains(&format!("log_io_engine:{log}")), "{info}");
    let commit = if io == "inline" { "inline" } else { "thread" };
    assert!(info.contains(&format!("log_commit:{commit}")), "{info}");
    if io == "inline" {
        // The SET above went through the net thread's own ring.
        assert!(!info.contains("log_blocks_by_net_threads:0\r"), "{info}");
    }
    let Value::Bulk(one) = c.cmd(&["INFO", "keyspace"]) else {
        panic!()
    };
    assert!(String::from_utf8(one).unwrap().starts_with("# Keyspace"));
    // HELLO switches to RESP3: nulls become '_' and field lists become maps.
    let hello = c.cmd(&["HELLO", "3"]);
    assert!(matches!(hello, Value::Map(_)), "{hello:?}");
    assert_eq!(hello.field("proto"), Value::Int(3));
    assert_eq!(c.cmd(&["GET", "missing"]), Value::Null);
    c.send_raw(b"*2\r\n$3\r\nGET\r\n$7\r\nmissing\r\n");
    assert!(matches!(
        c.cmd(&["CONFIG", "GET", "maxclients"]),
        Value::Null
    )); // reply to GET
    assert!(matches!(c.read(), Value::Map(_)));
    assert!(c.cmd(&["HELLO", "4"]).err_text().starts_with("NOPROTO"));
    assert_eq!(c.cmd(&["HELLO", "2"]).field("proto"), Value::Int(2));
    assert_eq!(c.cmd(&["QUIT"]), Value::ok());
    assert!(c.try_read().is_err(), "connection stays open after QUIT");
}

fn tables(io: &str) {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), io, &[]);
    let mut c = srv.client();
    let mut other = srv.client();
    assert_eq!(c.cmd(&["TABLE.CREATE", "orders"]), Value::ok());
    assert!(c
        .cmd(&["TABLE.CREATE", "orders"])
        .err_text()
        .contains("already exists"));
    assert!(c
        .cmd(&["TABLE.CREATE", "a/b"])
        .err_text()
        .contains("invalid table name"));
    assert!(c
        .cmd(&["TABLE.USE", "nope"])
        .err_text()
        .contains("does not exist"));
    assert_eq!(
        c.cmd(&["TABLE.LIST"]),
        Value::Array(vec![Value::bulk("default"), Value::bulk("orders")])
    );
    c.cmd(&["SET", "k", "in-default"]);
    assert_eq!(c.cmd(&["TABLE.USE", "orders"]), Value::ok());
    assert_eq!(c.cmd(&["GET", "k"]), Value::Null, "tables are isolated");
    c.cmd(&["SET", "k", "in-orders"]);
    c.cmd(&["SET", "k2", "x"]);
    assert_eq!(other.cmd(&["GET", "k"]), Value::bulk("in-default"));
    assert_eq!(other.cmd(&["DBSIZE"]).as_int(), 1);
    let d = c.cmd(&["TABLE.DESCRIBE", "orders"]);
    assert_eq!(d.field("status"), Value::bulk("ACTIVE"));
    assert_eq!(d.field("items"), Value::Int(2));
    assert_eq!(
        d.field("bytes"),
        Value::Int(("k".len() + "in-orders".len() + 3) as i64)
    );
    assert_eq!(d.field("pitr_status"), Value::bulk("DISABLED"));
    assert!(c.cmd(&["TABLE.DESCRIBE", "nope"]).is_error());
    assert!(c.cmd(&["TABLE.DROP", "default"]).is_error());
    assert_eq!(other.cmd(&["TABLE.DROP", "orders"]), Value::ok());
    assert!(c.cmd(&["GET", "k"]).err_text().contains("was dropped"));
    assert!(c
        .cmd(&["TABLE.DROP", "orders"])
        .err_text()
        .contains("does not exist"));
    assert_eq!(c.cmd(&["TABLE.CREATE", "orders"]), Value::ok());
    assert_eq!(c.cmd(&["TABLE.USE", "orders"]), Value::ok());
    assert_eq!(
        c.cmd(&["DBSIZE"]).as_int(),
        0,
        "a re-created table starts empty"
    );
    c.cmd(&["SET", "after", "restart"]);
    drop((c, other));
    assert!(srv.stop().success());
    // Tables and their contents survive a restart.
    let srv = start(dir.path(), io, &[]);
    let mut c = srv.client();
    assert_eq!(c.cmd(&["GET", "k"]), Value::bulk("in-default"));
    c.cmd(&["TABLE.USE", "orders"]);
    assert_eq!(c.cmd(&["GET", "after"]), Value::bulk("restart"));
}

#[test]
fn string_commands() {
    for io in IO_MODES {
        strings(io);
    }
}

#[test]
fn admin_commands() {
    for io in IO_MODES {
        admin(io);
    }
}

#[test]
fn table_commands() {
    for io in IO_MODES {
        tables(io);
    }
}
