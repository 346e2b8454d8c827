//! The command line refuses bad input with a clear message and exit code 2.

use std::process::Command;

fn loadgen(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rewind-loadgen"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_flags_are_named() {
    let (code, err) = loadgen(&["run", "--ratio", "x"]);
    assert_eq!(code, 2);
    assert!(err.contains("bad ratio"), "{err}");
    let (code, err) = loadgen(&["run", "--key-dist", "pareto"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown key distribution"), "{err}");
    let (code, err) = loadgen(&["capacity", "--slo", "p99"]);
    assert_eq!(code, 2);
    assert!(err.contains("bad SLO"), "{err}");
    let (code, err) = loadgen(&[
        "run",
        "--addr",
        "127.0.0.1:1",
        "--duration",
        "300ms",
        "--connections",
        "1",
    ]);
    assert_eq!(code, 1, "nothing answered: {err}");
    assert!(err.contains("no request succeeded"), "{err}");
}
