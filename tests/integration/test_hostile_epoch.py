#!/usr/bin/env python3
"""test_hostile_epoch: a gateway whose journal is replaced starts its
sequence again; the bridge and the consumers see a new epoch of the node,
not duplicates, conflicts or a hole of millions (issue 14).

1. Deleted: the agent is SIGKILLed mid-stream, its journal deleted, and it
   starts again with a new journal (a new journal_id, sequences from 1).
   Every event acknowledged after the restart reaches the cloud with the
   sequence its 202 named; what reached the cloud before was acknowledged;
   the bridge counts one epoch, no conflict, no hole, no dead letter; a
   consumer on the edge broker sees the new epoch's events as new.
2. Restored: the agent is stopped, its journal copied, more events
   journaled, then the old copy put back: the same journal_id, but its
   sequence goes back. The bridge takes it as a new epoch (a new boot
   whose journal held less when it began, boot_seq, than the journal had
   announced or sent; the events posted as it starts are journaled before
   its first status, so its latest_seq may not say so): the events
   journaled after the restore reuse sequences the inbox holds under other
   ids, and still are no conflict; every one reaches the cloud.
"""
import os
import shutil
import signal

import harness as h

NODE = "gw1"
KEY = "site1/" + NODE


def remove_journal(path):
    for suffix in ("", "-wal", "-shm"):
        try:
            os.remove(path + suffix)
        except FileNotFoundError:
            pass


def arrived_with(csub, acked, what):
    """Every id of acked reached the cloud with its sequence."""
    csub.wait_all(acked, 60)
    for i, seq in acked.items():
        h.check(csub.seqs[i] == {seq}, "%s: %s came with sequences %s, acknowledged as %d" %
                (what, i, sorted(csub.seqs[i]), seq))


def deleted(env, bridge, agent, poster, csub, esub):
    """Phase 1: the journal deleted under a running stream."""
    thread = h.PosterThread(poster, 3000, timeout=60, rate=600)
    thread.start()
    h.wait_for(lambda: len(poster.snapshot()) >= 1000 or thread.check(), 30,
               "1000 events acknowledged")
    agent.kill()
    before = poster.snapshot()
    remove_journal(agent.db)
    agent.start()
    thread.finish(90)
    after = {i: s for i, s in poster.snapshot().items() if i not in before}
    h.check(after and min(after.values()) == 1,
            "the new journal did not start again at 1: %s" % sorted(after.values())[:3])
    arrived_with(csub, after, "after the restart")
    h.wait_for(bridge.quiet, 30, "the bridge to be quiet")
    stranger = [i for i in csub.seqs if i not in poster.snapshot()]
    h.check(not stranger, "the cloud got ids never acknowledged: %s" % stranger[:3])
    st = bridge.status()
    h.check(st["gaps"]["epochs"] == 1 and st["inbox"]["conflicts"] == 0 and
            st["inbox"]["invalid"] == 0 and st["gaps"]["missing"] == 0 and
            st["gaps"]["holes_open"] == 0 and st["gaps"]["lost"] == 0,
            "the bridge after a new journal: %s" % st)
    esub.wait_all(after, 30)
    bad = [r for r in esub.records if r["id"] in after and r["verdict"] == "dup"]
    h.check(not bad, "the edge consumer took %d events of the new epoch as duplicates, e.g. %s" %
            (len(bad), bad[0]["id"] if bad else ""))
    lost = len([i for i in before if i not in csub.seqs])
    return "deleted: %d events after the restart arrived (sequences 1..%d again); %d of %d " \
        "acknowledged before the SIGKILL went with the deleted journal" % (
            len(after), max(after.values()), lost, len(before))


def restored(env, bridge, agent, poster, csub):
    """Phase 2: an old copy of the journal put back."""
    agent.proc.signal(signal.SIGTERM)
    h.check(agent.proc.wait_exit(20) == 0, "the agent did not stop on SIGTERM")
    copy = env.path("backup.db")
    shutil.copy(agent.db, copy)
    agent.start()
    earlier = dict(poster.snapshot())
    h.check(poster.post_many(300) == 300, "not every batch was acknowledged")
    between = dict(poster.snapshot())
    # Only this phase's events: some acknowledged before phase 1's SIGKILL
    # may have gone with the deleted journal (phase 1 counts them).
    csub.wait_all({i: s for i, s in between.items() if i not in earlier}, 60)
    h.wait_for(lambda: agent.pending() == 0, 30, "the agent to publish everything")
    agent.proc.signal(signal.SIGTERM)
    h.check(agent.proc.wait_exit(20) == 0, "the agent did not stop on SIGTERM")
    remove_journal(agent.db)
    shutil.copy(copy, agent.db)
    agent.start()
    h.check(poster.post_many(300) == 300, "not every batch was acknowledged")
    after = {i: s for i, s in poster.snapshot().items() if i not in between}
    reused = set(after.values()) & {s for i, s in between.items()}
    h.check(len(reused) == 300, "the restored journal did not reuse sequences: %d reused" %
            len(reused))
    arrived_with(csub, after, "after the restore")
    h.wait_for(bridge.quiet, 30, "the bridge to be quiet")
    st = bridge.status()
    h.check(st["gaps"]["epochs"] == 2 and st["inbox"]["conflicts"] == 0 and
            st["gaps"]["holes_open"] == 0 and st["gaps"]["lost"] == 0,
            "the bridge after a restored journal: %s" % st)
    return "restored: 300 events reusing sequences %d..%d under new ids arrived, no " \
        "conflict" % (min(reused), max(reused))


def scenario(env):
    edge = env.broker(name="edge")
    cloud = env.broker(name="cloud")
    csub = env.sub(cloud.port, name="cloudsub", from_start=True)
    esub = env.sub(edge.port, name="edgesub", from_start=True)
    bridge = env.bridge(edge.port, cloud.port)
    bridge.start()
    agent = env.agent(edge.port, name=NODE, node=NODE)
    agent.start()
    poster = h.Poster(agent.http_port)
    one = deleted(env, bridge, agent, poster, csub, esub)
    two = restored(env, bridge, agent, poster, csub)
    h.journal_verify(env, bridge.db)
    print("  " + one)
    print("  " + two)
    return "two new journals of %s, two epochs at the bridge, nothing after them lost" % NODE


if __name__ == "__main__":
    h.main(scenario, "a replaced journal is a new epoch of its node, end to end")
