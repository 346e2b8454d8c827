#!/usr/bin/env python3
"""How long one durable 4 KiB append takes on this disk, by way of writing it: buffered
`pwrite` + `fdatasync`, `RWF_DSYNC`, and `O_DIRECT` with and without `O_DSYNC`, into a file
preallocated with zeros (as rewind's segments are); then two files synced at once from two
threads. Also prints the disk's `write_cache` and `fua` from /sys/block.

    python3 loadgen/scripts/fsync_modes.py [--dir DIR] [--count 2000]
"""
import argparse
import mmap
import os
import threading
import time

SZ = 4096


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default=".")
    ap.add_argument("--count", type=int, default=2000)
    args = ap.parse_args()
    n = args.count
    paths = [os.path.join(args.dir, f"fsync-modes-{i}.dat") for i in range(2)]
    for p in paths:
        fd = os.open(p, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o600)
        os.write(fd, b"\0" * (n * SZ + SZ))
        os.fsync(fd)
        os.close(fd)
    buf = mmap.mmap(-1, SZ)  # page-aligned, as O_DIRECT needs
    buf.write(b"x" * SZ)

    def timed(name, flags, step):
        fd = os.open(paths[0], os.O_RDWR | flags)
        ts = []
        for i in range(n):
            t = time.perf_counter_ns()
            step(fd, i)
            ts.append((time.perf_counter_ns() - t) / 1000)
        os.close(fd)
        ts.sort()
        print(f"| {name} | {ts[n // 2]:.1f} | {ts[int(n * .99)]:.1f} |")

    print("| 4 KiB append into zeroed space | p50 µs | p99 µs |\n|---|---:|---:|")
    timed("buffered pwrite + fdatasync", 0, lambda fd, i: (os.pwrite(fd, buf, i * SZ), os.fdatasync(fd)))
    timed("buffered pwritev RWF_DSYNC", 0, lambda fd, i: os.pwritev(fd, [buf], i * SZ, os.RWF_DSYNC))
    timed("O_DIRECT pwrite + fdatasync", os.O_DIRECT, lambda fd, i: (os.pwrite(fd, buf, i * SZ), os.fdatasync(fd)))
    timed("O_DIRECT pwritev RWF_DSYNC", os.O_DIRECT, lambda fd, i: os.pwritev(fd, [buf], i * SZ, os.RWF_DSYNC))
    timed("O_DIRECT \\| O_DSYNC pwrite", os.O_DIRECT | os.O_DSYNC, lambda fd, i: os.pwrite(fd, buf, i * SZ))
    timed("O_DIRECT pwrite, no sync", os.O_DIRECT, lambda fd, i: os.pwrite(fd, buf, i * SZ))

    def per_op(k, flags, out):
        fd = os.open(paths[k], os.O_RDWR | flags)
        t = time.perf_counter()
        for i in range(n):
            os.pwrite(fd, buf, i * SZ)
            if not flags & os.O_DSYNC:
                os.fdatasync(fd)
        out[k] = (time.perf_counter() - t) / n * 1e6
        os.close(fd)

    print("\n| durable append | one file, µs each | two files at once, µs each |\n|---|---:|---:|")
    for name, flags in (("buffered + fdatasync", 0), ("O_DIRECT \\| O_DSYNC", os.O_DIRECT | os.O_DSYNC)):
        out = {}
        per_op(0, flags, out)
        solo = out[0]
        ts = [threading.Thread(target=per_op, args=(k, flags, out)) for k in range(2)]
        [t.start() for t in ts]
        [t.join() for t in ts]
        print(f"| {name} | {solo:.0f} | {out[0]:.0f} / {out[1]:.0f} |")
    for p in paths:
        os.unlink(p)
    dev = os.path.basename(os.popen(f"df --output=source {args.dir} | tail -1").read().strip())
    for f in ("write_cache", "fua"):
        try:
            print(f"{dev} {f}: {open(f'/sys/block/{dev}/queue/{f}').read().strip()}")
        except OSError:
            pass


if __name__ == "__main__":
    main()
