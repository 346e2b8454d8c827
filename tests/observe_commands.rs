//! What operators and their tools ask a running server: INFO in Redis's format, SLOWLOG,
//! CLIENT LIST/KILL, CONFIG GET/SET, LATENCY and MEMORY, checked over real connections.

mod common;

use std::collections::HashMap;
use std::io::Read;
use std::time::{Duration, Instant};

use common::{start, Client, Value};

fn text(v: Value) -> String {
    match v {
        Value::Bulk(b) => String::from_utf8(b).unwrap(),
        other => panic!("expected a bulk string, got {other:?}"),
    }
}

/// INFO as redis_exporter reads it: `field:value` lines, `# Section` headers skipped.
fn info(c: &mut Client, section: &str) -> HashMap<String, String> {
    let mut args = vec!["INFO"];
    if !section.is_empty() {
        args.push(section);
    }
    text(c.cmd(&args))
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l
                .split_once(':')
                .unwrap_or_else(|| panic!("not field:value: {l}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// Every string in a reply, nested arrays included.
fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Bulk(b) => vec![String::from_utf8_lossy(b).into_owned()],
        Value::Simple(s) => vec![s.clone()],
        Value::Array(items) => items.iter().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

fn num(fields: &HashMap<String, String>, k: &str) -> f64 {
    let v = fields.get(k).unwrap_or_else(|| panic!("INFO lacks {k}"));
    v.parse()
        .unwrap_or_else(|_| panic!("INFO {k} is not a number: {v}"))
}

/// `cmdstat_x:calls=1,usec=2,...` as a map of its parts.
fn cmdstat(fields: &HashMap<String, String>, cmd: &str) -> HashMap<String, f64> {
    let v = fields
        .get(&format!("cmdstat_{cmd}"))
        .unwrap_or_else(|| panic!("no cmdstat_{cmd}"));
    v.split(',')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

#[test]
fn info_has_the_fields_redis_dashboards_read() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "auto", &[]);
    let mut c = srv.client();
    c.cmd(&["SET", "k", "12345"]);
    c.cmd(&["GET", "k"]);
    c.cmd(&["GET", "missing"]);
    assert!(c.cmd(&["INCR", "k"]).as_int() == 12346);
    c.cmd(&["SET", "word", "x"]);
    assert!(c.cmd(&["INCR", "word"]).is_error(), "INCR of a word fails");
    assert!(c.cmd(&["GET"]).is_error(), "GET without a key is refused");
    assert!(c.cmd(&["NOSUCHCOMMAND"]).is_error());
    // Commands until the 100 ms sampler has seen some (however busy the machine is).
    let t0 = Instant::now();
    let all = loop {
        for _ in 0..100 {
            assert_eq!(c.cmd(&["PING"]), Value::Simple("PONG".into()));
        }
        let all = info(&mut c, "all");
        if num(&all, "instantaneous_ops_per_sec") > 0.0 {
            break all;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "no rate after 60 s");
    };
    // The fields redis_exporter turns into the metrics Grafana's Redis dashboard plots.
    for k in [
        "uptime_in_seconds",
        "connected_clients",
        "blocked_clients",
        "used_memory",
        "used_memory_rss",
        "used_memory_peak",
        "maxmemory",
        "mem_fragmentation_ratio",
        "total_connections_received",
        "total_commands_processed",
        "instantaneous_ops_per_sec",
        "total_net_input_bytes",
        "total_net_output_bytes",
        "instantaneous_input_kbps",
        "instantaneous_output_kbps",
        "rejected_connections",
        "expired_keys",
        "evicted_keys",
        "keyspace_hits",
        "keyspace_misses",
        "total_error_replies",
        "connected_slaves",
        "used_cpu_sys",
        "used_cpu_user",
        "aof_enabled",
        "log_syncs",
        "log_sync_mean_usec",
    ] {
        num(&all, k);
    }
    assert_eq!(all["redis_version"].split('.').count(), 3);
    assert_eq!(all["role"], "master");
    assert!(num(&all, "used_memory") > 1e6, "{}", all["used_memory"]);
    assert!(num(&all, "instantaneous_ops_per_sec") > 0.0);
    assert_eq!(num(&all, "keyspace_hits"), 1.0);
    assert_eq!(num(&all, "keyspace_misses"), 1.0);
    assert!(num(&all, "total_net_input_bytes") > 100.0);
    // The refused GET, the failed INCR and the unknown command.
    assert_eq!(num(&all, "total_error_replies"), 3.0);
    assert_eq!(all["db0"], "keys=2,expires=0,avg_ttl=0");
    assert_eq!(all["table_default"].split(',').next(), Some("keys=2"));

    let set = cmdstat(&all, "set");
    assert_eq!(set["calls"], 2.0);
    assert!(set["usec"] > 0.0, "a durable SET takes time: {set:?}");
    assert!((set["usec_per_call"] - set["usec"] / 2.0).abs() < 0.01);
    assert_eq!((set["rejected_calls"], set["failed_calls"]), (0.0, 0.0));
    let incr = cmdstat(&all, "incr");
    assert_eq!((incr["calls"], incr["failed_calls"]), (2.0, 1.0));
    let get = cmdstat(&all, "get");
    assert_eq!((get["calls"], get["rejected_calls"]), (2.0, 1.0));
    // One section alone, and several.
    let two = info(&mut c, "memory");
    assert!(two.contains_key("used_memory") && !two.contains_key("uptime_in_seconds"));
    let text = text(c.cmd(&["INFO", "server", "keyspace"]));
    assert!(
        text.starts_with("# Server") && text.contains("# Keyspace") && !text.contains("# Memory")
    );
    // CONFIG RESETSTAT starts the counters again.
    assert_eq!(c.cmd(&["CONFIG", "RESETSTAT"]), Value::ok());
    let after = info(&mut c, "commandstats");
    assert!(!after.contains_key("cmdstat_set"), "{after:?}");
}

#[test]
fn slowlog_records_slow_commands_writes_with_their_sync() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(
        dir.path(),
        "auto",
        &["--slowlog-log-slower-than", "0", "--slowlog-max-len", "3"],
    );
    let mut c = srv.client();
    // An entry keeps 128 bytes of a long client name.
    let mut n = srv.client();
    n.cmd(&["CLIENT", "SETNAME", &"n".repeat(300)]);
    n.cmd(&["PING"]);
    let Value::Array(e) = c.cmd(&["SLOWLOG", "GET", "1"]) else {
        panic!()
    };
    let Value::Array(ping) = &e[0] else { panic!() };
    assert_eq!(ping[5], Value::bulk("n".repeat(128)));
    c.cmd(&["CLIENT", "SETNAME", "slowpoke"]);
    assert_eq!(c.cmd(&["SLOWLOG", "RESET"]), Value::ok());
    let long = "k".repeat(300);
    c.cmd(&["SET", &long, "value"]);
    c.cmd(&["GET", "key"]);
    let Value::Array(entries) = c.cmd(&["SLOWLOG", "GET"]) else {
        panic!()
    };
    // Newest first: GET, SET, and the RESET itself (logged once it had run).
    assert_eq!(entries.len(), 3, "{entries:?}");
    let Value::Array(get) = &entries[0] else {
        panic!()
    };
    assert_eq!(get.len(), 6);
    assert_eq!(
        get[3],
        Value::Array(vec![Value::bulk("GET"), Value::bulk("key")])
    );
    assert_eq!(get[5], Value::bulk("slowpoke"));
    let Value::Bulk(addr) = &get[4] else { panic!() };
    assert!(String::from_utf8_lossy(addr).starts_with("127.0.0.1:"));
    let Value::Array(set) = &entries[1] else {
        panic!()
    };
    let Value::Array(args) = &set[3] else {
        panic!()
    };
    // A pending write keeps its command and key (trimmed), and counts the rest.
    assert_eq!(args.len(), 3, "{args:?}");
    assert_eq!(args[0], Value::bulk("SET"));
    let Value::Bulk(k) = &args[1] else { panic!() };
    assert!(k.starts_with(&[b'k'; 128]) && k.ends_with(b"... (172 more bytes)"));
    assert_eq!(args[2], Value::bulk("... (1 more arguments)"));
    // A write's entry includes its log sync: it took at least what the sync took.
    let sync = info(&mut c, "persistence");
    assert!(
        set[2].as_int() as f64 >= num(&sync, "log_sync_mean_usec").floor(),
        "{set:?}"
    );
    assert!(get[0].as_int() > set[0].as_int(), "ids grow");
    // Passwords never reach it.
    let mut a = srv.client();
    assert!(a.cmd(&["AUTH", "not-the-password"]).is_error());
    a.cmd(&["HELLO", "3", "AUTH", "default", "also-secret"]);
    let all = strings(&c.cmd(&["SLOWLOG", "GET", "-1"])).join(" ");
    assert!(
        !all.contains("not-the-password") && !all.contains("also-secret"),
        "{all}"
    );
    assert!(all.contains("(redacted)"), "{all}");
    // The log keeps --slowlog-max-len entries.
    for _ in 0..5 {
        c.cmd(&["PING"]);
    }
    assert_eq!(c.cmd(&["SLOWLOG", "LEN"]).as_int(), 3);
    // Off at run time.
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "slowlog-log-slower-than", "-1"]),
        Value::ok()
    );
    c.cmd(&["SLOWLOG", "RESET"]);
    c.cmd(&["SET", "a", "b"]);
    assert_eq!(c.cmd(&["SLOWLOG", "LEN"]).as_int(), 0);
    assert!(c.cmd(&["SLOWLOG", "GET", "-5"]).is_error());
    assert!(c
        .cmd(&["CONFIG", "SET", "fsync", "never"])
        .err_text()
        .contains("--print-config"));
}

#[test]
fn client_list_and_kill() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "auto", &[]);
    let mut me = srv.client();
    let mut other = srv.client();
    other.cmd(&["CLIENT", "SETNAME", "victim"]);
    assert_eq!(other.cmd(&["TABLE.CREATE", "tab2"]), Value::ok());
    assert_eq!(other.cmd(&["TABLE.USE", "tab2"]), Value::ok());
    other.cmd(&["GET", "x"]);
    let list = text(me.cmd(&["CLIENT", "LIST"]));
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    let victim = lines
        .iter()
        .find(|l| l.contains(" name=victim "))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(
        victim.contains(" cmd=get ") && victim.contains(" table=tab2 "),
        "{victim}"
    );
    let field = |line: &str, k: &str| -> String {
        line.split(' ')
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
            .unwrap()
            .to_string()
    };
    let id = field(victim, "id");
    let addr = field(victim, "addr");
    assert!(addr.starts_with("127.0.0.1:") && field(victim, "laddr") == srv.addr());
    let mine = text(me.cmd(&["CLIENT", "INFO"]));
    assert!(
        mine.contains(" cmd=client ") && !mine.contains("victim"),
        "{mine}"
    );
    // By an id nobody has, then by the victim's.
    assert_eq!(me.cmd(&["CLIENT", "KILL", "ID", "999999"]).as_int(), 0);
    // A user rewind does not have matches nobody, whatever else the filter says.
    assert_eq!(
        me.cmd(&["CLIENT", "KILL", "USER", "bob", "ID", &id])
            .as_int(),
        0
    );
    assert_eq!(me.cmd(&["CLIENT", "KILL", "ID", &id]).as_int(), 1);
    // The victim's connection is closed: it reads the end of the stream.
    let mut rest = Vec::new();
    let mut raw = other.into_stream();
    raw.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    assert_eq!(raw.read_to_end(&mut rest).unwrap(), 0, "{rest:?}");
    // The old form: by address; SKIPME no kills the asker too.
    let mut third = srv.client();
    third.cmd(&["PING"]);
    let list = text(me.cmd(&["CLIENT", "LIST"]));
    assert_eq!(list.lines().count(), 2, "the victim is gone: {list}");
    assert!(me.cmd(&["CLIENT", "KILL", "127.0.0.1:1"]).is_error());
    assert_eq!(
        me.cmd(&["CLIENT", "KILL", "LADDR", &srv.addr(), "SKIPME", "no"])
            .as_int(),
        2
    );
    assert!(
        me.try_read().is_err(),
        "the asker's connection closed after the reply"
    );
}

#[test]
fn config_get_latency_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(
        dir.path(),
        "auto",
        &["--shards", "3", "--requirepass", "pw", "--zstd-level", "2"],
    );
    let mut c = srv.client();
    assert_eq!(c.cmd(&["AUTH", "pw"]), Value::ok());
    let all = c.cmd(&["CONFIG", "GET", "*"]).fields();
    let get = |k: &str| -> String {
        all.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| text(v.clone()))
            .unwrap_or_else(|| panic!("CONFIG GET * lacks {k}"))
    };
    assert_eq!(get("shards"), "3");
    assert_eq!(get("zstd-level"), "2");
    assert_eq!(get("fsync"), "always");
    assert_eq!(get("appendfsync"), "always");
    assert_eq!(get("requirepass"), "(set)", "secrets are not shown");
    assert_eq!(get("maxmemory"), "0");
    assert!(get("data-dir").ends_with(dir.path().file_name().unwrap().to_str().unwrap()));
    assert_eq!(get("archive"), "", "unset");
    let some = c.cmd(&["CONFIG", "GET", "max*", "fsync"]).fields();
    let names: Vec<&str> = some.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        names.contains(&"max-clients") && names.contains(&"maxmemory") && names.contains(&"fsync")
    );
    assert!(!names.contains(&"shards"));

    c.cmd(&["SET", "k", "0123456789"]);
    c.cmd(&["GET", "k"]);
    // 8 bytes of header, the key and the value rounded to 8, and a 9-byte table slot.
    assert_eq!(c.cmd(&["MEMORY", "USAGE", "k"]).as_int(), 24 + 9);
    assert_eq!(c.cmd(&["MEMORY", "USAGE", "none"]), Value::Null);
    let stats = c.cmd(&["MEMORY", "STATS"]).fields();
    assert!(stats
        .iter()
        .any(|(k, v)| k == "keys.count" && *v == Value::Int(1)));

    let hist = c
        .cmd(&["LATENCY", "HISTOGRAM", "set", "get", "nosuch"])
        .fields();
    assert_eq!(hist.len(), 2, "{hist:?}");
    let set = hist.iter().find(|(k, _)| k == "set").unwrap().1.clone();
    assert_eq!(set.field("calls"), Value::Int(1));
    // RESP2: a flat array of bucket bound, count.
    let Value::Array(buckets) = set.field("histogram_usec") else {
        panic!("{set:?}")
    };
    assert_eq!(buckets.len(), 2, "one SET, one bucket: {buckets:?}");
    assert_eq!(buckets[1], Value::Int(1));
    let sync = c.cmd(&["LATENCY", "SYNC"]).field("log-sync");
    assert!(sync.field("calls").as_int() >= 1);
    let doctor = text(c.cmd(&["LATENCY", "DOCTOR"]));
    assert!(
        doctor.contains("Log syncs: p50") && doctor.contains("set: p50"),
        "{doctor}"
    );
    assert_eq!(c.cmd(&["LATENCY", "LATEST"]), Value::Array(vec![]));
}

#[test]
fn client_kill_closes_a_client_that_does_not_read_its_replies() {
    // On both socket paths: a tokio-uring write left in flight keeps its socket open unless
    // the server shuts the socket down.
    for io in ["auto", "uring"] {
        kill_a_client_that_does_not_read(io);
    }
}

fn kill_a_client_that_does_not_read(io: &str) {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), io, &["--write-timeout", "120"]);
    let mut me = srv.client();
    me.cmd(&["SET", "big", &"x".repeat(1 << 20)]);
    let mut hog = srv.client();
    hog.cmd(&["CLIENT", "SETNAME", "hog"]);
    // 300 MiB of replies asked for and never read: the server waits to write them.
    let mut burst = Vec::new();
    for _ in 0..300 {
        burst.extend(common::resp::encode(&[b"GET", b"big"]));
    }
    hog.send_raw(&burst);
    let hog_port = hog.local_port();
    let hog_line = |me: &mut Client| -> Option<String> {
        text(me.cmd(&["CLIENT", "LIST"]))
            .lines()
            .find(|l| l.contains(" name=hog "))
            .map(str::to_string)
    };
    let t0 = Instant::now();
    let line = loop {
        let l = hog_line(&mut me).expect("the hog is connected");
        if l.contains(" cmd=get ") {
            break l;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "{l}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let id = line
        .split(' ')
        .find_map(|kv| kv.strip_prefix("id="))
        .unwrap()
        .to_string();
    assert!(
        server_side_established(srv.port, hog_port),
        "the connection is seen in /proc/net/tcp before the kill"
    );
    assert_eq!(me.cmd(&["CLIENT", "KILL", "ID", &id]).as_int(), 1);
    // Gone long before --write-timeout would have let it go.
    let t0 = Instant::now();
    while hog_line(&mut me).is_some() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "a killed client that does not read is still connected"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // And the server closed its end, though the client still reads nothing: the server's
    // side of the connection leaves ESTABLISHED (tokio-uring keeps a socket with a write in
    // flight open unless the server shuts it down).
    let t0 = Instant::now();
    while server_side_established(srv.port, hog_port) {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "{io}: the server still holds the killed client's connection open"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(hog);
}

/// Whether /proc/net/tcp has the server's end of the connection from `client_port`
/// (127.0.0.1) to `server_port` in state ESTABLISHED.
fn server_side_established(server_port: u16, client_port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let local = format!("0100007F:{server_port:04X}");
    let remote = format!("0100007F:{client_port:04X}");
    table.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3 && f[1] == local && f[2] == remote && f[3] == "01"
    })
}

/// zstd's fast levels (`--zstd-level -1` to `-7`, here `-3` as a separate argument) log
/// ordinary zstd blocks: they shrink what compresses, and a restart at the default level reads
/// them back.
#[test]
fn a_fast_zstd_level_logs_blocks_a_restart_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let value = |i: usize| format!("{i:06}-").repeat(300);
    let srv = start(dir.path(), "auto", &["--zstd-level", "-3"]);
    let mut c = srv.client();
    assert_eq!(
        text(
            c.cmd(&["CONFIG", "GET", "zstd-level"]).fields()[0]
                .1
                .clone()
        ),
        "-3"
    );
    for i in 0..200 {
        assert_eq!(c.cmd(&["SET", &format!("k{i}"), &value(i)]), Value::ok());
    }
    let stored = num(&info(&mut c, "persistence"), "log_stored_per_logical_byte");
    assert!(stored < 0.2, "repetitive values compressed: {stored}");
    srv.stop();
    let srv = start(dir.path(), "auto", &[]);
    let mut c = srv.client();
    for i in 0..200 {
        assert_eq!(c.cmd(&["GET", &format!("k{i}")]), Value::bulk(value(i)));
    }
    srv.stop();
    // `--print-config` exits once the flags are parsed: a broken range check fails here
    // instead of starting a server.
    let parse = |level: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_rewind"))
            .args([
                "serve",
                "--print-config",
                "--zstd-level",
                level,
                "--data-dir",
            ])
            .arg(dir.path())
            .output()
            .unwrap()
    };
    let out = parse("-7");
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("zstd-level = -7"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = parse("-8");
    assert!(!out.status.success(), "-8 is past the fast levels offered");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("-8"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The log counters INFO and /metrics report are totals since start-up: dropping a table keeps
/// what its logs did in them (Prometheus reads a drop as a counter reset otherwise).
#[test]
fn log_counters_keep_a_dropped_tables_writes() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "auto", &[]);
    let mut c = srv.client();
    assert_eq!(c.cmd(&["TABLE.CREATE", "scratch"]), Value::ok());
    assert_eq!(c.cmd(&["TABLE.USE", "scratch"]), Value::ok());
    for i in 0..300 {
        assert_eq!(c.cmd(&["SET", &format!("k{i}"), "v"]), Value::ok());
    }
    assert_eq!(c.cmd(&["TABLE.USE", "default"]), Value::ok());
    let counters = |c: &mut Client| {
        let f = info(c, "persistence");
        (
            num(&f, "log_records"),
            num(&f, "log_blocks"),
            num(&f, "log_syncs"),
        )
    };
    let before = counters(&mut c);
    assert!(before.0 >= 300.0, "{before:?}");
    assert_eq!(c.cmd(&["TABLE.DROP", "scratch"]), Value::ok());
    let after = counters(&mut c);
    assert!(
        after.0 >= before.0 && after.1 >= before.1 && after.2 >= before.2,
        "counters went down when the table was dropped: {before:?} then {after:?}"
    );
    assert_eq!(
        after.0, before.0,
        "no write since: the dropped table counted once"
    );
    srv.stop();
}
