#!/usr/bin/env python3
"""walstat.py - where a journal's bytes go: follows a live SQLite WAL file,
counts the frames each commit appends by the b-tree their page belongs to
(table, index, freelist, header page), and prints the breakdown. A tool for
bench/flash.sh's figures (bench/README.md, "Flash and memory"), not a test.

    walstat.py DB [--seconds S] [--poll MS]

It reads the -wal file every --poll ms from where it left off (a WAL that
restarted, after a checkpoint, is followed from its start), so frames
written and overwritten between two polls are missed: keep the poll short.
Pages are named after the run by dbstat on a read-only connection.
"""
import argparse
import collections
import os
import sqlite3
import struct
import threading
import time

WAL_HEADER, FRAME_HEADER = 32, 24


class Follower:
    def __init__(self, path):
        self.path, self.salt, self.off, self.page = path, None, WAL_HEADER, 0
        self.commits, self.frames = [], collections.Counter()
        self.cur = []

    def poll(self):
        try:
            with open(self.path, "rb") as f:
                head = f.read(WAL_HEADER)
                if len(head) < WAL_HEADER:
                    return
                page = struct.unpack(">I", head[8:12])[0]
                salt = head[16:24]
                if salt != self.salt:
                    self.salt, self.off, self.page, self.cur = salt, WAL_HEADER, page, []
                f.seek(self.off)
                data = f.read()
        except FileNotFoundError:
            return
        size = FRAME_HEADER + self.page
        n = 0
        while (n + 1) * size <= len(data):
            fh = data[n * size:n * size + FRAME_HEADER]
            if fh[8:16] != self.salt:
                break
            pgno, dbsize = struct.unpack(">II", fh[:8])
            self.cur.append(pgno)
            self.frames[pgno] += 1
            if dbsize:
                self.commits.append(self.cur)
                self.cur = []
            n += 1
        self.off += n * size


class Watcher(threading.Thread):
    """Follows db's WAL every poll_s until stop(); then breakdown(db)."""

    def __init__(self, db, poll_s=0.02):
        super().__init__(daemon=True)
        self.follower, self.poll_s, self.stop_ev = Follower(db + "-wal"), poll_s, threading.Event()

    def run(self):
        while not self.stop_ev.wait(self.poll_s):
            self.follower.poll()

    def stop(self):
        self.stop_ev.set()
        self.join(5)


def breakdown(db, f):
    """Frames a commit by b-tree name, most first, and the commits seen."""
    m = names(db)
    by = collections.Counter()
    for pg, n in f.frames.items():
        by[m.get(pg, "freelist or new")] += n
    nc = len(f.commits) or 1
    return [(name, n / nc) for name, n in by.most_common()], len(f.commits)


def names(db):
    with sqlite3.connect("file:%s?mode=ro" % db, uri=True) as c:
        m = {pg: name for name, pg in c.execute("SELECT name, pageno FROM dbstat")}
    m[1] = "page 1 (header, schema)"
    return m


def main():
    p = argparse.ArgumentParser()
    p.add_argument("db")
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--poll", type=float, default=20)
    a = p.parse_args()
    f = Follower(a.db + "-wal")
    end = time.monotonic() + a.seconds
    while time.monotonic() < end:
        f.poll()
        time.sleep(a.poll / 1000)
    parts, nc = breakdown(a.db, f)
    frames = sum(f.frames.values())
    print("%d commits, %d frames of %d B: %.2f frames a commit, %d distinct pages" %
          (nc, frames, f.page + FRAME_HEADER, frames / (nc or 1), len(f.frames)))
    for name, per in parts:
        print("  %-28s %5.2f frames a commit" % (name, per))
    sizes = collections.Counter(len(c) for c in f.commits)
    print("  frames per commit: " + ", ".join("%d: %d" % kv for kv in sorted(sizes.items())))


if __name__ == "__main__":
    main()
