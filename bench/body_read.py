#!/usr/bin/env python3
"""body_read.py - what reading an event's type and subject from its body costs
(decision 63): this node's own rows keep them in the body only, and readers
take them back with SQLite's JSON functions (common/journal_int.h,
ES_JNL_ROW_COLUMNS). Builds a journal-shaped table of device events in a
temporary file, then times one scan summing the two columns, as stored and as
the readers' expressions (with and without the json_valid guard), in
interleaved rounds; prints each as a ratio to the stored columns of the same
round. Uses the system's SQLite through Python's sqlite3 module.

    bench/body_read.py [--rows N] [--rounds R]
"""
import argparse
import json
import os
import sqlite3
import statistics
import tempfile
import time
import uuid

BODY = "CAST(body AS TEXT)"


def from_body(col, key, guard):
    """The reader's expression for col (journal_int.h, ES_JNL_FROM_BODY)."""
    if guard:
        return ("(CASE WHEN type <> '' THEN %s WHEN json_valid(%s) THEN "
                "json_extract(%s, '$.%s') ELSE %s END)" % (col, BODY, BODY, key, col))
    return "(CASE WHEN type <> '' THEN %s ELSE json_extract(%s, '$.%s') END)" % (
        col, BODY, key)


def scan(col_type, col_subject):
    return "SELECT sum(length(%s) + length(coalesce(%s, ''))) FROM events" % (
        col_type, col_subject)


def fill(db, rows, own):
    db.execute("CREATE TABLE events(seq INTEGER PRIMARY KEY, id TEXT, type TEXT, "
               "subject TEXT, journaled_ms INTEGER, body BLOB)")
    batch = []
    for i in range(rows):
        dev = "dev-%d" % (i % 20)
        body = json.dumps({
            "specversion": "1.0", "id": str(uuid.uuid4()), "source": "/site1/gw1/" + dev,
            "type": "sensor.reading", "subject": dev, "time": "2026-12-07T13:00:00.000Z",
            "datacontenttype": "application/json",
            "data": {"temperature": 21.5, "humidity": 40.2, "seq": i, "note": "x" * 200}})
        batch.append((i + 1, str(uuid.uuid4()), "" if own else "sensor.reading",
                      None if own else dev, 0, body.encode()))
    db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)", batch)
    db.commit()


def timed(db, sql):
    t0 = time.perf_counter()
    db.execute(sql).fetchall()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=200000)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="es-body-read-") as d:
        stored = sqlite3.connect(os.path.join(d, "stored.db"))
        own = sqlite3.connect(os.path.join(d, "own.db"))
        fill(stored, a.rows, False)
        fill(own, a.rows, True)
        cases = [
            ("stored columns (baseline)", stored, scan("type", "subject")),
            ("from the body, guarded (the readers')", own,
             scan(from_body("type", "type", True), from_body("subject", "subject", True))),
            ("from the body, no json_valid", own,
             scan(from_body("type", "type", False), from_body("subject", "subject", False))),
        ]
        times = {name: [] for name, _, _ in cases}
        for _ in range(a.rounds):
            for name, db, sql in cases:
                times[name].append(timed(db, sql))
        base = statistics.median(times[cases[0][0]])
        print("SQLite %s, %d rows of ~%d B bodies, %d rounds (median)" % (
            sqlite3.sqlite_version, a.rows,
            own.execute("SELECT avg(length(body)) FROM events").fetchone()[0], a.rounds))
        for name, _, _ in cases:
            med = statistics.median(times[name])
            print("  %-40s %6.3f s  %5.2fx  %+.2f us a row" % (
                name, med, med / base, (med - base) / a.rows * 1e6))


if __name__ == "__main__":
    main()
