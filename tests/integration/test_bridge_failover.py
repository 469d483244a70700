#!/usr/bin/env python3
"""test_bridge_failover: cloud.url lists two brokers (a cluster's nodes, here
two mosquittos); the one the bridge uses goes away mid-stream and the bridge
moves to the other one; nothing is lost.

One agent posts at a steady rate; the bridge's cloud.url is "first,second".
An `edgespool sub` (persistent session) records what reaches each broker.
Asserted: before, /api/status names the first broker (node 0, no
fail-over); the first broker is stopped (SIGTERM: it keeps what it
acknowledged) mid-stream; the bridge connects to the second (status: its URL,
node 1, failovers 1; /metrics: edgespool_cloud_failovers_total 1 and
edgespool_cloud_node 1 for it, 0 for the first). After the stream, the
first broker comes back (its sub collects what it held), and every
acknowledged id has reached one of the two subs, with its sequence. The
cluster tests (tests/cluster) do the same with SIGKILL against RabbitMQ.
"""
import harness as h

TOTAL = 3000
RATE = 800


def check_status(bridge, url, node, failovers):
    c = bridge.status()["cloud"]
    h.check(c["state"] == "connected" and c["url"] == url and c["node"] == node and
            c["nodes"] == 2 and c["failovers"] == failovers,
            "bridge cloud status %s, expected %s node %d failovers %d" %
            (c, url, node, failovers))


def check_metrics(bridge, first, second):
    status, body = h.http_call(bridge.http_port, "GET", "/metrics")
    text = body.decode()
    for want in ("edgespool_cloud_failovers_total 1",
                 'edgespool_cloud_node{url="%s"} 0' % first,
                 'edgespool_cloud_node{url="%s"} 1' % second):
        h.check(want in text.splitlines(), "/metrics lacks the line %r" % want)


def scenario(env):
    edge = env.broker(name="edge")
    one = env.broker(name="cloud1")
    two = env.broker(name="cloud2")
    urls = ["mqtt://127.0.0.1:%d" % b.port for b in (one, two)]
    sub1 = env.sub(one.port, name="sub1")
    sub2 = env.sub(two.port, name="sub2")
    agent = env.agent(edge.port)
    agent.start()
    bridge = env.bridge(edge.port, 0, cloud_url=",".join(urls))
    bridge.start()
    check_status(bridge, urls[0], 0, 0)

    poster = h.Poster(agent.http_port)
    thread = h.PosterThread(poster, TOTAL, rate=RATE)
    thread.start()
    h.wait_for(lambda: thread.check() or bridge.status()["cloud"]["acked"] >= TOTAL // 3, 30,
               "the bridge to forward a third of the events")
    one.stop()
    h.wait_for(lambda: bridge.status()["cloud"]["url"] == urls[1] and
               bridge.status()["cloud"]["state"] == "connected", 30,
               "the bridge to fail over to the second broker")
    thread.finish(60)
    h.wait_for(bridge.quiet, 30, "the bridge to forward everything")
    check_status(bridge, urls[1], 1, 1)
    check_metrics(bridge, urls[0], urls[1])

    one.start()  # its sub gets what it acknowledged before it stopped
    acked = poster.snapshot()

    def all_there():
        sub1.poll()
        sub2.poll()
        return all(i in sub1.seqs or i in sub2.seqs for i in acked)
    h.wait_for(all_there, 60, "every acknowledged id at one of the two brokers", interval=0.2)
    for sub in (sub1, sub2):
        for i, seqs in sub.seqs.items():
            h.check(i in acked and seqs == {acked[i]},
                    "%s: id %s with sequences %s, acknowledged as %s" %
                    (sub.name, i, sorted(seqs), acked.get(i)))
    n1, n2 = len(sub1.seqs), len(sub2.seqs)
    bridge.stop()
    return ("%d events: %d reached the first broker, %d the second after the fail-over; "
            "none lost" % (len(acked), n1, n2))


if __name__ == "__main__":
    h.main(scenario, "the bridge fails over across cloud.url when its broker goes away")
