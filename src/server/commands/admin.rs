//! Connection and server commands: PING, ECHO, QUIT, HELLO, SELECT, COMMAND, INFO, TIME,
//! AUTH (CONFIG, CLIENT, SLOWLOG, LATENCY and MEMORY are in `observe.rs`).

use super::super::conn::Conn;
use super::{render_info, COMMANDS};
use crate::protocol::Proto;

fn upper(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_ascii_uppercase()
}

pub fn exec_admin(conn: &mut Conn<'_>, name: &str, args: &[&[u8]]) {
    match name {
        "ping" => match args.len() {
            1 => conn.reply().simple("PONG"),
            2 => conn.reply().bulk(args[1]),
            _ => conn.error("ERR wrong number of arguments for 'ping' command"),
        },
        "echo" => conn.reply().bulk(args[1]),
        "quit" => {
            conn.reply().ok();
            conn.session.closing = true;
        }
        "hello" => hello(conn, args),
        "select" => match args[1] {
            b"0" => conn.reply().ok(),
            _ => conn
                .error("ERR DB index is out of range (rewind has tables instead: TABLE.USE name)"),
        },
        "command" => command(conn, args),
        "config" => super::observe::config(conn, args),
        "info" => {
            let sections: Vec<String> = args[1..]
                .iter()
                .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
                .collect();
            let text = render_info(conn.state, &sections);
            conn.reply().bulk(text.as_bytes());
        }
        "time" => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let mut w = conn.reply();
            w.array(2);
            w.bulk(now.as_secs().to_string().as_bytes());
            w.bulk(now.subsec_micros().to_string().as_bytes());
        }
        "client" => super::observe::client(conn, args),
        "slowlog" => super::observe::slowlog(conn, args),
        "latency" => super::observe::latency(conn, args),
        "memory" => super::observe::memory(conn, args),
        "auth" => auth(conn, args),
        other => unreachable!("{other} is not an admin command"),
    }
}

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// `AUTH [user] password`.
fn auth(conn: &mut Conn<'_>, args: &[&[u8]]) {
    if conn.state.password.is_none() {
        return conn.error(
            "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
        );
    }
    let (user, pass): (&[u8], &[u8]) = match args {
        [_, pass] => (b"default", pass),
        [_, user, pass] => (user, pass),
        _ => return conn.error("ERR syntax error"),
    };
    if conn.state.check_password(user, pass) {
        conn.session.authenticated = true;
        conn.reply().ok();
    } else {
        conn.error(WRONGPASS);
    }
}

/// `HELLO [protover [AUTH user pass] [SETNAME name]]`.
fn hello(conn: &mut Conn<'_>, args: &[&[u8]]) {
    let mut proto = conn.session.proto;
    if let Some(v) = args.get(1) {
        proto = match *v {
            b"2" => Proto::Resp2,
            b"3" => Proto::Resp3,
            _ => return conn.error("NOPROTO unsupported protocol version"),
        };
    }
    let mut i = 2;
    while i < args.len() {
        match upper(args[i]).as_str() {
            "AUTH" if i + 2 < args.len() => {
                if !conn.state.check_password(args[i + 1], args[i + 2]) {
                    return conn.error(WRONGPASS);
                }
                conn.session.authenticated = true;
                i += 3;
            }
            "SETNAME" if i + 1 < args.len() => {
                let name = String::from_utf8_lossy(args[i + 1]).into_owned();
                conn.session.info.set_name(Some(name));
                i += 2;
            }
            _ => return conn.error("ERR syntax error in HELLO option"),
        }
    }
    if !conn.session.authenticated {
        return conn.error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
    }
    conn.session.proto = proto;
    conn.session
        .info
        .set_resp(if proto == Proto::Resp3 { 3 } else { 2 });
    let id = conn.session.id as i64;
    let mut w = conn.reply();
    w.map(7);
    w.bulk(b"server");
    w.bulk(b"rewind");
    w.bulk(b"version");
    w.bulk(env!("CARGO_PKG_VERSION").as_bytes());
    w.bulk(b"proto");
    w.int(if proto == Proto::Resp3 { 3 } else { 2 });
    w.bulk(b"id");
    w.int(id);
    w.bulk(b"mode");
    w.bulk(b"standalone");
    w.bulk(b"role");
    w.bulk(b"master");
    w.bulk(b"modules");
    w.array(0);
}

/// Enough of `COMMAND` for `redis-cli` and client libraries: they cope with empty answers.
fn command(conn: &mut Conn<'_>, args: &[&[u8]]) {
    match args.get(1).map(|a| upper(a)).as_deref() {
        None | Some("DOCS") | Some("INFO") => conn.reply().array(0),
        Some("COUNT") => conn.reply().int(COMMANDS.len() as i64),
        Some(other) => {
            let msg = format!(
                "ERR unknown subcommand '{other}'. Try COMMAND, COMMAND COUNT, COMMAND DOCS"
            );
            conn.error(&msg)
        }
    }
}
