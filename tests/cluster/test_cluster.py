"""test_cluster.py - the site forwarding into a real RabbitMQ cluster.

Agents -> edge mosquitto -> cloud-bridge -> a cluster of three RabbitMQ
nodes (MQTT plugin) -> a durable quorum queue bound on amq.topic, and an MQTT
consumer (`edgespool sub`) on another node than the bridge's. One cluster
boot for every phase:

  failover: while agents post, the node the bridge is connected to is
            SIGKILLed; the bridge moves to another node (/api/status shows
            the node and the fail-over); every acknowledged event reaches the
            MQTT consumer on a surviving node, and the quorum queue (a
            majority of three survives) holds at least one copy of each.
"""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rabbit  # noqa: E402
from rabbit import h  # noqa: E402

QUEUE = "es-events"
KEYS = ["edgespool.*.*.ev.#"]  # every event of every site and node
TOTAL = 3000                  # events per agent


def node_of_bridge(cluster, bridge):
    """The Node the bridge says it uses (status cloud.node)."""
    st = bridge.status()
    return cluster.nodes[st["cloud"]["node"]], st


def failover(env, cluster, bridge, posters, threads):
    """Kills the bridge's node mid-stream; waits for the bridge to use
    another one."""
    h.wait_for(lambda: [t.check() for t in threads] and
               bridge.status()["cloud"]["acked"] >= TOTAL // 2, 60,
               "the bridge to forward half of the events")
    victim, st = node_of_bridge(cluster, bridge)
    before = st["cloud"]["failovers"]
    h.check(st["cloud"]["state"] == "connected" and st["cloud"]["url"] == victim.mqtt_url(),
            "bridge status before the kill: %s" % st["cloud"])
    victim.kill()
    print("  killed %s (%s) with %d forwards acknowledged" %
          (victim.label, victim.name, st["cloud"]["acked"]))

    def moved():
        c = bridge.status()["cloud"]
        return (c["state"] == "connected" and c["url"] != victim.mqtt_url() and
                c["failovers"] > before) and c
    c = h.wait_for(moved, 60, "the bridge to fail over to another node")
    # More than one fail-over is normal: RabbitMQ 3.10's MQTT plugin closes
    # a connection whose publish a quorum queue refuses (basic.nack) while it
    # elects a new leader; the bridge then moves on and re-sends.
    print("  the bridge failed over to %s (failovers %d)" % (c["url"], c["failovers"]))
    metrics = h.http_call(bridge.http_port, "GET", "/metrics")[1].decode()
    h.check("edgespool_cloud_failovers_total %d" % c["failovers"] in metrics,
            "/metrics lacks edgespool_cloud_failovers_total %d" % c["failovers"])
    h.check('edgespool_cloud_node{url="%s"} 1' % c["url"] in metrics,
            "/metrics does not mark %s as the node in use" % c["url"])
    return victim


def queue_holds(cluster, total):
    """Waits until the quorum queue counts at least total messages."""
    def enough():
        q = cluster.queue_info(QUEUE)
        return q["messages"] >= total and q
    q = h.wait_for(enough, 60, "the quorum queue %s to hold %d messages" % (QUEUE, total),
                   interval=1.0)
    h.check(q["type"] == "quorum", "queue %s is %s, not quorum" % (QUEUE, q["type"]))
    return q


def scenario(env):
    cluster = rabbit.Cluster(env, rabbit.OPTS.nodes)
    edge = env.broker(name="edge")
    cluster.start()
    a, b, c = cluster.nodes
    cluster.declare_quorum_queue(QUEUE, KEYS)
    sub = env.sub(c.mqtt_port, name="sub-c")
    agents = h.start_agents(env, edge.port)
    bridge = env.bridge(edge.port, 0, cloud_url=",".join(n.mqtt_url() for n in cluster.nodes))
    bridge.start(timeout=30)
    h.check(bridge.status()["cloud"]["nodes"] == 3, "status cloud.nodes is not 3")
    posters = [h.Poster(ag.http_port) for ag in agents]
    threads = [h.PosterThread(p, TOTAL, rate=1500) for p in posters]
    for t in threads:
        t.start()
    victim = failover(env, cluster, bridge, posters, threads)
    for t in threads:
        t.finish(120)
    acked = h.acked_by_node(agents, posters)
    total = sum(len(x) for x in acked.values())
    sub.wait_all(h.merge_acked(acked), 90)
    fig = h.check_nodes_delivery(acked, sub)
    h.wait_for(bridge.quiet, 60, "the bridge to have nothing left to forward")
    q = queue_holds(cluster, total)
    return ("%d events acknowledged; %s killed, the bridge failed over; the MQTT consumer "
            "on %s got all (%d copies); quorum queue holds %d" %
            (total, victim.label, c.label, fig["copies"], q["messages"]))


if __name__ == "__main__":
    rabbit.main(scenario, "the site forwarding into a RabbitMQ cluster, with fail-over")
