//! Connection and server commands: PING, ECHO, QUIT, HELLO, SELECT, COMMAND, CONFIG, INFO,
//! TIME, CLIENT, AUTH.

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
        "config" => config(conn, args),
        "info" => {
            let section = args
                .get(1)
                .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase());
            let text = render_info(conn.state, section.as_deref());
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
        "client" => client(conn, args),
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
                conn.session.name = Some(String::from_utf8_lossy(args[i + 1]).into_owned());
                i += 2;
            }
            _ => return conn.error("ERR syntax error in HELLO option"),
        }
    }
    if !conn.session.authenticated {
        return conn.error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
    }
    conn.session.proto = proto;
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

/// `CONFIG GET pattern`: a few read-only settings; `*` matches all.
fn config(conn: &mut Conn<'_>, args: &[&[u8]]) {
    if upper(args[1]) != "GET" || args.len() != 3 {
        return conn.error("ERR rewind supports only CONFIG GET <parameter>; settings are given on the command line");
    }
    let db = &conn.state.db;
    let fsync = match db.cfg.fsync {
        crate::log::FsyncPolicy::Always => "always",
        crate::log::FsyncPolicy::EverySec => "everysec",
        crate::log::FsyncPolicy::Never => "no",
    };
    let params = [
        ("appendonly", "yes".to_string()),
        ("appendfsync", fsync.to_string()),
        ("save", String::new()),
        ("databases", "1".to_string()),
        ("maxclients", conn.state.max_clients.to_string()),
        ("proto-max-bulk-len", conn.state.max_value_bytes.to_string()),
    ];
    let pattern = String::from_utf8_lossy(args[2]).to_ascii_lowercase();
    let hits: Vec<_> = params
        .iter()
        .filter(|(k, _)| pattern == "*" || pattern == *k)
        .collect();
    let mut w = conn.reply();
    w.map(hits.len());
    for (k, v) in hits {
        w.bulk(k.as_bytes());
        w.bulk(v.as_bytes());
    }
}

fn client(conn: &mut Conn<'_>, args: &[&[u8]]) {
    match upper(args[1]).as_str() {
        "SETINFO" if args.len() == 4 => conn.reply().ok(),
        "SETNAME" if args.len() == 3 => {
            conn.session.name = Some(String::from_utf8_lossy(args[2]).into_owned());
            conn.reply().ok();
        }
        "GETNAME" => match conn.session.name.clone() {
            Some(n) => conn.reply().bulk(n.as_bytes()),
            None => conn.reply().null(),
        },
        "ID" => {
            let id = conn.session.id as i64;
            conn.reply().int(id);
        }
        other => {
            let msg = format!("ERR unknown or malformed subcommand '{other}' for 'client'");
            conn.error(&msg);
        }
    }
}
