"""The markdown report: machine, the side-by-side table with ratios, memory/disk/restore, and
each target of issue 6 with its figure and whether it was met."""

def pairs_of(servers):
    """Each rewind server against the Redis of the same durability (or, with no such Redis in
    the run, against the first server)."""
    out = []
    for s in servers:
        if s.kind != "rewind":
            continue
        partner = next((r for r in servers if r.kind == "redis" and r.durability == s.durability),
                       servers[0])
        if partner is not s:
            out.append((s.name, partner.name))
    return out


def fmt_ms(v):
    return "—" if v is None else f"{v:.3f}"


def cell_name(cmd, size, pipe):
    return f"{cmd} {size} B -P {pipe}"


def table(res, tool, cells, pairs):
    out = [f"### {tool}", "",
           "| cell | rewind | against | rewind ops/s | its ops/s | ratio | p99 ms rewind / it | "
           "p99.9 ms rewind / it | server CPU µs/op rewind / it |",
           "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for cmd, size, pipe in cells:
        for a, b in pairs:
            ra, rb = res.get((a, tool, cmd, size, pipe)), res.get((b, tool, cmd, size, pipe))
            if not ra or not rb:
                continue
            out.append(f"| {cell_name(cmd, size, pipe)} | {a.removeprefix('rewind ')} | {b} | {ra['ops']:,.0f} | "
                       f"{rb['ops']:,.0f} | {ra['ops'] / rb['ops']:.2f}x | {fmt_ms(ra['p99'])} / "
                       f"{fmt_ms(rb['p99'])} | {fmt_ms(ra['p999'])} / {fmt_ms(rb['p999'])} | "
                       f"{ra['cpu_us']:.2f} / {rb['cpu_us']:.2f} |")
    return out


def ratio(res, a, b, tool, cmd, size, pipe, key="ops"):
    ra, rb = res.get((a, tool, cmd, size, pipe)), res.get((b, tool, cmd, size, pipe))
    if not ra or not rb or ra[key] is None or rb[key] is None:
        return None
    return ra[key] / rb[key]


def targets(res, extras):
    """(target, figure, met) rows; throughput ratios from both tools, the lower one counts."""
    rows = []

    def both(a, b, cmd, pipe, need, label):
        r = [ratio(res, a, b, t, cmd, 100, pipe) for t in ("rewind-loadgen", "redis-benchmark")]
        r = [x for x in r if x is not None]
        if r:
            rows.append((label, " / ".join(f"{x:.2f}x" for x in r) + " (loadgen / redis-benchmark)",
                         min(r) >= need))

    for pipe in (1, 16):
        both("rewind always", "redis always", "SET", pipe, 2.0,
             f"SET 100 B -P {pipe}, fsync always vs Redis appendfsync always: >= 2x")
    both("rewind always", "redis off", "SET", 16, 0.8,
         "SET 100 B -P 16, fsync always vs Redis persistence off: >= 0.8x")
    for pipe in (1, 16):
        both("rewind always", "redis always", "GET", pipe, 1.0,
             f"GET 100 B -P {pipe} vs Redis (appendfsync always): >= 1.0x")
        for key, name in (("p99", "p99"), ("p999", "p99.9")):
            r = ratio(res, "rewind always", "redis always", "rewind-loadgen", "GET", 100, pipe, key)
            if r is not None:
                rows.append((f"GET 100 B -P {pipe} {name} no worse than Redis's (loadgen)",
                             f"rewind/Redis = {r:.2f}", r <= 1.0))
    mem = {m["server"]: m for m in extras.get("memory", [])}
    if "rewind" in mem and "redis" in mem:
        a, b = mem["rewind"]["bytes_per_key"], mem["redis"]["bytes_per_key"]
        rows.append(("Memory per 100-byte key <= Redis's", f"{a:.0f} B vs {b:.0f} B", a <= b))
    r = extras.get("restore")
    if r:
        x = r["redis_s"] / r["rewind_s"]
        rows.append(("Restore >= 5x faster than Redis's AOF load",
                     f"{r['rewind_s']:.2f} s vs {r['redis_s']:.2f} s = {x:.1f}x", x >= 5))
    return rows


def markdown(machine, fsync, res, cells, extras, command, minutes, pairs):
    out = ["# rewind vs Redis, side by side", "",
           f"Command: `{command}` ({minutes:.1f} minutes end to end).", "",
           f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['mem_gib']} GiB, "
           f"Linux {machine['kernel']}, {machine['fs']} (disk {machine['disk']['device']}: "
           f"{machine['disk']['write_cache']} cache, FUA {machine['disk']['fua']}); "
           f"Redis {machine['redis']}. "
           f"4 KiB write + fdatasync: p50 {fsync['preallocated']['p50']:.0f} µs, p99 "
           f"{fsync['preallocated']['p99']:.0f} µs into preallocated space; p50 "
           f"{fsync['growing']['p50']:.0f} µs, p99 {fsync['growing']['p99']:.0f} µs growing the file.", "",
           "50 connections, 100,000 keys. rewind-loadgen values are random letters; "
           "redis-benchmark's (`-d`) are constant bytes. `ratio` = rewind / Redis ops/s. "
           "Server CPU from /proc/PID/stat over the run.", ""]
    for tool in ("rewind-loadgen", "redis-benchmark"):
        out += table(res, tool, cells, pairs) + [""]
    mem = extras.get("memory")
    if mem:
        out += ["### Memory and disk after loading 1,000,000 keys of 100 random letters", "",
                "| server | RSS growth per key | bytes on disk per logical byte |", "|---|---:|---:|"]
        for m in mem:
            out.append(f"| {m['server']} | {m['bytes_per_key']:.0f} B | {m['disk_per_logical']:.3f} |")
        out.append("")
    r = extras.get("restore")
    if r:
        out += ["### Restore vs Redis's start-up load of the same append-only file", "",
                f"{r['writes']:,} SETs of 100 random letters over {r['writes']:,} possible keys "
                f"({r['logical_bytes'] / 1e6:.0f} MB logical): rewind `PITR.RESTORE ... LATEST SYNC` "
                f"on {r['shards']} shards {r['rewind_s']:.2f} s ({r['rewind_items']:,} keys); Redis "
                f"AOF load {r['redis_s']:.2f} s ({r['redis_items']:,} keys): "
                f"{r['redis_s'] / r['rewind_s']:.1f}x.", ""]
    out += ["### Targets (issue 6)", "", "| target | measured | met |", "|---|---|---|"]
    for t, fig, ok in targets(res, extras):
        out.append(f"| {t} | {fig} | {'yes' if ok else 'NO'} |")
    return "\n".join(out) + "\n"
