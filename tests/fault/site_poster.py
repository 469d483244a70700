#!/usr/bin/env python3
"""site_poster.py PORT TOTAL RATE OUT - run inside the site's namespace by
test_cloud_repair.py: posts TOTAL events to the agent on 127.0.0.1:PORT at
about RATE a second (batches of 100), then writes what the 202 answers
acknowledged ({id: sequence}) to OUT as JSON."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

import harness as h  # noqa: E402


def main():
    port, total, rate, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    poster = h.Poster(port, batch=100)
    sent = poster.post_many(total, timeout=30, rate=rate)
    with open(out + ".tmp", "w") as f:
        json.dump(poster.snapshot(), f)
    os.rename(out + ".tmp", out)
    return 0 if sent == total else 1


if __name__ == "__main__":
    t0 = time.monotonic()
    rc = main()
    print("posted in %.1f s, exit %d" % (time.monotonic() - t0, rc))
    sys.exit(rc)
