#!/usr/bin/env python3
"""A FUSE file system that forgets what was never synced, for power-loss tests.

Every file's bytes exist twice: what processes see (live) and what a power cut would leave
(durable). A file's live bytes become durable when it is fsynced or fdatasynced (an O_DSYNC
or RWF_DSYNC write reaches the file system as a write and then an fsync); a directory's
entries (creates, renames, unlinks, mkdirs) become durable when the directory itself is
fsynced. A handle opened O_DIRECT takes only 4 KiB-aligned writes (else EINVAL), as a disk
would. Nothing else is durable: not a rename nobody synced, not a new file's name before
its directory is synced, not data written and never synced. No kernel page cache writes
back later either: FUSE without writeback caching hands every write to this process at once.

    volatile_fs.py MOUNTPOINT --state FILE

mounts it in the foreground; the durable state is loaded from FILE if it exists. Unmounting
(umount MOUNTPOINT) is the power cut: the durable state, and only it, is written to FILE,
and a new mount from FILE is the machine after the reboot.
"""
import argparse
import errno
import os
import pickle
import stat
import threading
import time

from fuse import FUSE, FuseOSError, Operations  # fusepy


ALIGN = 4096


class Node:
    def __init__(self, ino, mode):
        self.ino = ino
        self.mode = mode
        self.live = bytearray()  # files
        self.durable = b""
        self.entries = {}  # directories: name -> ino
        self.durable_entries = {}
        self.mtime = time.time()

    def is_dir(self):
        return stat.S_ISDIR(self.mode)


class VolatileFs(Operations):
    def __init__(self, state_path):
        self.mu = threading.Lock()
        self.state_path = state_path
        self.nodes = {}
        self.next_ino = 2
        self.fhs = {}
        # Handles opened O_DIRECT: their writes must be 4 KiB aligned, as on a disk.
        self.direct = set()
        self.next_fh = 1
        if state_path and os.path.exists(state_path):
            with open(state_path, "rb") as f:
                saved = pickle.load(f)
            self.next_ino = saved["next_ino"]
            for ino, (mode, data, entries) in saved["nodes"].items():
                n = Node(ino, mode)
                n.live, n.durable = bytearray(data), bytes(data)
                n.entries, n.durable_entries = dict(entries), dict(entries)
                self.nodes[ino] = n
        else:
            self.nodes[1] = Node(1, stat.S_IFDIR | 0o755)

    # -- what a power cut leaves -------------------------------------------------------------

    def durable_state(self):
        """The nodes reachable from the root through durable entries, with durable bytes."""
        keep, todo = {}, [1]
        while todo:
            n = self.nodes[todo.pop()]
            keep[n.ino] = (n.mode, n.durable, dict(n.durable_entries))
            todo.extend(i for i in n.durable_entries.values() if i in self.nodes and i not in keep)
        return {"next_ino": self.next_ino, "nodes": keep}

    def destroy(self, path):
        if self.state_path:
            tmp = self.state_path + ".tmp"
            with open(tmp, "wb") as f:
                pickle.dump(self.durable_state(), f)
            os.replace(tmp, self.state_path)

    # -- helpers -----------------------------------------------------------------------------

    def resolve(self, path):
        n = self.nodes[1]
        for part in [p for p in path.split("/") if p]:
            if not n.is_dir() or part not in n.entries:
                raise FuseOSError(errno.ENOENT)
            n = self.nodes[n.entries[part]]
        return n

    def parent(self, path):
        head, name = os.path.split(path.rstrip("/"))
        p = self.resolve(head or "/")
        if not p.is_dir():
            raise FuseOSError(errno.ENOTDIR)
        return p, name

    def node_of(self, path, fh):
        if fh is not None and fh in self.fhs:
            return self.nodes[self.fhs[fh]]
        return self.resolve(path)

    def new_node(self, mode):
        n = Node(self.next_ino, mode)
        self.next_ino += 1
        self.nodes[n.ino] = n
        return n

    def new_fh(self, ino, flags=0):
        fh = self.next_fh
        self.next_fh += 1
        self.fhs[fh] = ino
        if flags & os.O_DIRECT:
            self.direct.add(fh)
        return fh

    # -- operations --------------------------------------------------------------------------

    def getattr(self, path, fh=None):
        with self.mu:
            n = self.node_of(path, fh)
            size = len(n.live) if not n.is_dir() else 4096
            return {
                "st_mode": n.mode,
                "st_ino": n.ino,
                "st_nlink": 2 if n.is_dir() else 1,
                "st_size": size,
                "st_blocks": (size + 511) // 512,
                "st_blksize": 4096,
                "st_uid": os.getuid(),
                "st_gid": os.getgid(),
                "st_atime": n.mtime,
                "st_mtime": n.mtime,
                "st_ctime": n.mtime,
            }

    def readdir(self, path, fh):
        with self.mu:
            n = self.resolve(path)
            return [".", ".."] + list(n.entries)

    def mkdir(self, path, mode):
        with self.mu:
            p, name = self.parent(path)
            if name in p.entries:
                raise FuseOSError(errno.EEXIST)
            p.entries[name] = self.new_node(stat.S_IFDIR | (mode & 0o7777)).ino

    def rmdir(self, path):
        with self.mu:
            p, name = self.parent(path)
            n = self.resolve(path)
            if n.entries:
                raise FuseOSError(errno.ENOTEMPTY)
            del p.entries[name]

    def create(self, path, mode, fi=None):
        with self.mu:
            p, name = self.parent(path)
            if name in p.entries:
                n = self.nodes[p.entries[name]]
            else:
                n = self.new_node(stat.S_IFREG | (mode & 0o7777))
                p.entries[name] = n.ino
            return self.new_fh(n.ino)

    def open(self, path, flags):
        with self.mu:
            n = self.resolve(path)
            if flags & os.O_TRUNC:
                n.live = bytearray()
            return self.new_fh(n.ino, flags)

    def opendir(self, path):
        with self.mu:
            return self.new_fh(self.resolve(path).ino)

    def releasedir(self, path, fh):
        with self.mu:
            self.fhs.pop(fh, None)

    def release(self, path, fh):
        with self.mu:
            self.fhs.pop(fh, None)
            self.direct.discard(fh)

    def read(self, path, size, offset, fh):
        with self.mu:
            return bytes(self.node_of(path, fh).live[offset:offset + size])

    def write(self, path, data, offset, fh):
        with self.mu:
            if fh in self.direct and (offset % ALIGN or len(data) % ALIGN):
                raise FuseOSError(errno.EINVAL)
            n = self.node_of(path, fh)
            end = offset + len(data)
            if len(n.live) < end:
                n.live.extend(b"\0" * (end - len(n.live)))
            n.live[offset:end] = data
            n.mtime = time.time()
            return len(data)

    def truncate(self, path, length, fh=None):
        with self.mu:
            n = self.node_of(path, fh)
            if len(n.live) > length:
                del n.live[length:]
            else:
                n.live.extend(b"\0" * (length - len(n.live)))

    def unlink(self, path):
        with self.mu:
            p, name = self.parent(path)
            if name not in p.entries:
                raise FuseOSError(errno.ENOENT)
            del p.entries[name]

    def rename(self, old, new):
        with self.mu:
            op, oname = self.parent(old)
            np, nname = self.parent(new)
            if oname not in op.entries:
                raise FuseOSError(errno.ENOENT)
            np.entries[nname] = op.entries.pop(oname)

    def fsync(self, path, datasync, fh):
        with self.mu:
            n = self.node_of(path, fh)
            n.durable = bytes(n.live)

    def fsyncdir(self, path, datasync, fh):
        with self.mu:
            n = self.node_of(path, fh)
            n.durable_entries = dict(n.entries)

    def flush(self, path, fh):
        return 0

    def chmod(self, path, mode):
        with self.mu:
            n = self.resolve(path)
            n.mode = (n.mode & ~0o7777) | (mode & 0o7777)

    def chown(self, path, uid, gid):
        return 0

    def utimens(self, path, times=None):
        return 0

    def access(self, path, amode):
        with self.mu:
            self.resolve(path)
        return 0

    def statfs(self, path):
        return {"f_bsize": 4096, "f_frsize": 4096, "f_blocks": 1 << 24, "f_bfree": 1 << 23,
                "f_bavail": 1 << 23, "f_files": 1 << 20, "f_ffree": 1 << 19, "f_namemax": 255}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mountpoint")
    ap.add_argument("--state", required=True)
    args = ap.parse_args()
    FUSE(VolatileFs(args.state), args.mountpoint, foreground=True, nothreads=True,
         entry_timeout=0, attr_timeout=0, negative_timeout=0)


if __name__ == "__main__":
    main()
