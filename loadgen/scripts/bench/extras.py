"""Figures beyond throughput: memory per key and disk bytes per logical byte after loading one
million 100-byte keys, and restore time against Redis's start-up load of the same writes."""
import os, subprocess, sys, tempfile, time

from .servers import LOADGEN, REWIND, Server, du_bytes, rss_kb

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import restore_vs_aof  # noqa: E402  (the restore comparison, shared with its own script)

KEY_BYTES = len("key:000000000000")


def load_keys(server, keys, size):
    argv = [LOADGEN, "run", "--addr", f"127.0.0.1:{server.port}", "--connections", "1",
            "--pipeline", "256", "--ratio", "1:0", "--key-dist", "sequential", "--keys", str(keys),
            "--requests", str(keys), "--duration", "600s", "--value-size", str(size)]
    subprocess.run(argv, capture_output=True, check=True, timeout=900)


def memory_and_disk(base_dir, keys=1_000_000, size=100):
    """RSS growth per key and bytes on disk per logical byte, rewind (default flags) against
    Redis with its append-only file on (everysec). Values are random letters."""
    rows = []
    for srv in (Server("rewind", "rewind", "always", [], base_dir),
                Server("redis", "redis", "everysec", ["--appendonly", "yes", "--appendfsync", "everysec"], base_dir)):
        srv.start()
        try:
            time.sleep(0.3)
            before = rss_kb(srv.pid)
            load_keys(srv, keys, size)
            time.sleep(1.5)  # let the log / AOF reach the disk
            after = rss_kb(srv.pid)
            disk = du_bytes(srv.dir) - sum(
                os.path.getsize(os.path.join(srv.dir, f)) for f in ("redis.log",)
                if os.path.exists(os.path.join(srv.dir, f)))
        finally:
            srv.stop()
        logical = keys * (KEY_BYTES + size)
        rows.append({"server": srv.kind, "keys": keys, "rss_before_kb": before, "rss_after_kb": after,
                     "bytes_per_key": (after - before) * 1024 / keys,
                     "disk_bytes": disk, "disk_per_logical": disk / logical})
    return rows


def restore(writes, shards):
    """rewind's PITR restore vs Redis's AOF load, same writes (random 100-byte values)."""
    work = tempfile.mkdtemp(prefix="restore-bench-")
    path = os.path.join(work, "writes.resp")
    try:
        logical = restore_vs_aof.generate(path, writes, writes, 100, "random")
        rw = restore_vs_aof.rewind_run(path, shards, writes, logical, REWIND)
        rd = restore_vs_aof.redis_run(path)
    finally:
        subprocess.run(["rm", "-rf", work])
    return {"writes": writes, "logical_bytes": logical, "shards": shards,
            "rewind_s": rw["seconds"], "redis_s": rd["seconds"],
            "rewind_items": rw["items"], "redis_items": rd["items"]}
