#!/usr/bin/env python3
"""Restore speed: rewind's PITR restore of N writes against Redis loading an append-only file
holding the same writes at start-up, on the same machine.

One seeded file of `SET key value` commands (RESP) is fed with `redis-cli --pipe` to rewind
(PITR on, for each shard count asked) and to Redis (appendonly yes). Then rewind restores the
table with `PITR.RESTORE ... LATEST SYNC` and Redis is restarted and timed until it answers
PING (it refuses with LOADING until the AOF is in).

Usage: loadgen/scripts/restore_vs_aof.py [--writes 10000000] [--keys 10000000]
       [--value-size 100] [--values random|constant] [--shards 1,2] [--bin PATH]
"""
import argparse, os, random, re, shutil, signal, socket, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ALNUM = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True,
                          text=True).stdout.strip()


def wait_ready(port, proc, timeout=600):
    t = time.time()
    while time.time() - t < timeout:
        if proc.poll() is not None:
            raise SystemExit("server exited")
        if cli(port, "PING") == "PONG":
            return time.time() - t
        time.sleep(0.01)
    raise SystemExit("server not ready")


def generate(path, writes, keys, size, kind, seed=42):
    rng = random.Random(seed)
    pool = bytes(ALNUM[b % 62] for b in os.urandom(1 << 22)) if kind == "random" else b"x" * (1 << 22)
    logical = 0
    with open(path, "wb", buffering=1 << 22) as f:
        buf = []
        for i in range(writes):
            k = b"key:%010d" % rng.randrange(keys)
            off = rng.randrange(len(pool) - size)
            v = pool[off:off + size]
            logical += len(k) + len(v)
            buf.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v))
            if len(buf) == 100000:
                f.write(b"".join(buf)); buf = []
        f.write(b"".join(buf))
    return logical


def pipe(port, path):
    t = time.time()
    with open(path, "rb") as f:
        out = subprocess.run(["redis-cli", "-p", str(port), "--pipe"], stdin=f, capture_output=True,
                             text=True)
    m = re.search(r"errors: (\d+), replies: (\d+)", out.stdout)
    if not m or m.group(1) != "0":
        raise SystemExit(f"pipe failed: {out.stdout} {out.stderr}")
    return time.time() - t


def rewind_run(path, shards, writes, logical, rw):
    d = tempfile.mkdtemp(prefix="rw-restore-")
    port = free_port()
    p = subprocess.Popen([rw, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", d,
                          "--shards", str(shards), "--fsync", "never"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port, p)
        cli(port, "PITR.ENABLE", "default")
        load_s = pipe(port, path)
        out = cli(port, "PITR.RESTORE", "default", "restored", "LATEST", "SYNC")
        secs = float(out.split("\n")[out.split("\n").index("seconds") + 1])
        items = cli(port, "TABLE.DESCRIBE", "restored").split("\n")
        items = int(items[items.index("items") + 1])
        disk = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(os.path.join(d, "tables", "1")) for f in fs)
    finally:
        p.send_signal(signal.SIGTERM); p.wait(); shutil.rmtree(d, ignore_errors=True)
    return {"name": f"rewind restore, {shards} shard(s)", "seconds": secs, "items": items,
            "load_s": load_s, "disk": disk}


def redis_run(path):
    d = tempfile.mkdtemp(prefix="redis-aof-")
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--dir", d, "--save", "", "--appendonly", "yes",
            "--appendfsync", "no", "--auto-aof-rewrite-percentage", "0", "--bind", "127.0.0.1",
            "--logfile", os.path.join(d, "log")]
    p = subprocess.Popen(argv)
    try:
        wait_ready(port, p)
        load_s = pipe(port, path)
        cli(port, "SHUTDOWN", "NOSAVE")
        p.wait()
        aof = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs if "aof" in f)
        p = subprocess.Popen(argv)
        secs = wait_ready(port, p)
        items = int(cli(port, "DBSIZE"))
        log = open(os.path.join(d, "log")).read()
        m = re.findall(r"DB loaded from append only file: ([0-9.]+) seconds", log)
    finally:
        p.send_signal(signal.SIGTERM); p.wait(); shutil.rmtree(d, ignore_errors=True)
    return {"name": "redis AOF load at start-up", "seconds": float(m[-1]) if m else secs,
            "items": items, "load_s": load_s, "disk": aof}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--writes", type=int, default=10_000_000)
    ap.add_argument("--keys", type=int, default=10_000_000)
    ap.add_argument("--value-size", type=int, default=100)
    ap.add_argument("--values", choices=["random", "constant"], default="random")
    ap.add_argument("--shards", default="1,2")
    ap.add_argument("--bin", help="the rewind binary to run (default: build and run "
                    "target/release/rewind)")
    args = ap.parse_args()
    rw = args.bin
    if not rw:
        subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "rewind"], cwd=ROOT, check=True)
        from bench.servers import REWIND  # CARGO_TARGET_DIR, as the harness reads it
        rw = REWIND
    work = tempfile.mkdtemp(prefix="restore-bench-")
    path = os.path.join(work, "writes.resp")
    t = time.time()
    logical = generate(path, args.writes, args.keys, args.value_size, args.values)
    print(f"generated {args.writes} writes ({logical / 1e6:.0f} MB logical, {args.values} values) "
          f"in {time.time() - t:.1f} s", file=sys.stderr)
    rows = [rewind_run(path, int(s), args.writes, logical, rw) for s in args.shards.split(",")]
    rows.append(redis_run(path))
    shutil.rmtree(work, ignore_errors=True)
    print(f"{args.writes:,} SETs, {args.value_size}-byte {args.values} values, keys drawn from "
          f"{args.keys:,}; {logical / 1e6:.0f} MB logical\n")
    print("| what | seconds | writes/s | logical MB/s | items | on disk MB | feeding it took s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['name']} | {r['seconds']:.2f} | {args.writes / r['seconds']:,.0f} | "
              f"{logical / 1e6 / r['seconds']:,.0f} | {r['items']:,} | {r['disk'] / 1e6:,.0f} | "
              f"{r['load_s']:.1f} |")
    redis_s = rows[-1]["seconds"]
    for r in rows[:-1]:
        print(f"\n- {r['name']}: {redis_s / r['seconds']:.1f}x faster than Redis's AOF load")


if __name__ == "__main__":
    main()
