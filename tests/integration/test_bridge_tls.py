#!/usr/bin/env python3
"""test_bridge_tls: the bridge forwards to the cloud broker over mutual TLS,
and a bridge without a client certificate is refused but keeps journaling.

A CA, a server certificate (SAN IP:127.0.0.1) and client certificates for the
bridge and the cloud sub are made with openssl. The cloud mosquitto listens
with TLS only and `require_certificate true`; the edge broker is plain.
- br1 (--cloud.url mqtts://... --cloud.ca/.cert/.key) forwards 2 x 1,000
  events from two agents; the cloud sub (over TLS with its own client
  certificate) receives every acknowledged id, nothing else.
- br2 has the CA but no client certificate: the cloud broker refuses it. It
  must report the cloud disconnected with failed attempts and a last error,
  never forward anything, and keep journaling: the 2 x 300 events posted after
  it subscribed wait in its inbox (backlog = journaled = 600, exactly those
  ids), while br1 forwards them to the cloud as usual.
"""
import harness as h

FIRST, LATER = 1000, 300  # per agent


def post_all(posters, n):
    threads = [h.PosterThread(p, n, timeout=30) for p in posters]
    for t in threads:
        t.start()
    for t in threads:
        t.finish(60)


def scenario(env):
    ca = h.make_ca(env, "ca")
    server = h.make_cert(env, "server", ca, san="IP:127.0.0.1")
    client = h.make_cert(env, "br1", ca)
    sub_cert = h.make_cert(env, "cloudsub", ca)
    edge = env.broker(name="edge")
    cloud = env.broker(name="cloud", extra=h.tls_listener_conf(ca, server))
    url = "mqtts://127.0.0.1:%d" % cloud.port
    csub = env.sub(cloud.port, name="cloudsub", from_start=True,
                   extra=["--mqtt.url", url, "--mqtt.ca", ca[0], "--mqtt.cert", sub_cert[0],
                          "--mqtt.key", sub_cert[1]])
    br1 = env.bridge(edge.port, cloud.port, cloud_url=url,
                     extra=["--cloud.ca", ca[0], "--cloud.cert", client[0],
                            "--cloud.key", client[1]])
    br1.start()
    agents = h.start_agents(env, edge.port)
    posters = [h.Poster(a.http_port) for a in agents]
    post_all(posters, FIRST)
    first = h.merge_acked(h.acked_by_node(agents, posters))
    csub.wait_all(first, 30)

    # br2: no client certificate.
    br2 = env.bridge(edge.port, cloud.port, name="bridge2", node="br2", cloud_url=url,
                     extra=["--cloud.ca", ca[0]])
    br2.start(connected=False)
    h.wait_for(lambda: h.ready(br2.http_port) and br2.status()["cloud"]["failures"] >= 2, 20,
               "br2 to be ready (subscribed at the edge) and fail connecting to the cloud "
               "twice")
    post_all(posters, LATER)
    acked = h.acked_by_node(agents, posters)
    every = h.merge_acked(acked)
    later = {i: s for i, s in every.items() if i not in first}
    h.check(len(later) == 2 * LATER, "%d later events acknowledged" % len(later))
    csub.wait_all(every, 30)
    h.wait_for(lambda: br2.status()["inbox"]["journaled"] >= len(later), 20,
               "br2 to journal the later events")
    h.wait_for(br1.quiet, 20, "br1 to be quiet")

    f = h.check_nodes_delivery(acked, csub)
    s1 = br1.status()
    h.check(s1["cloud"]["state"] == "connected" and s1["cloud"]["acked"] == len(every) and
            s1["inbox"]["backlog"] == 0,
            "br1 over TLS: %s" % s1["cloud"])
    s2 = br2.status()
    c2, i2 = s2["cloud"], s2["inbox"]
    h.check(c2["state"] == "disconnected" and c2["failures"] >= 2 and c2["last_error"] != "",
            "br2 without a client certificate: cloud %s" % c2)
    h.check(c2["forwarded"] == 0 and c2["acked"] == 0, "br2 forwarded: %s" % c2)
    h.check(i2["journaled"] == len(later) and i2["backlog"] == len(later),
            "br2 journaled %d with backlog %d, expected %d each" %
            (i2["journaled"], i2["backlog"], len(later)))
    held = h.journal_states(env, br2.db)
    h.check(set(held) == set(later) and all(st == "pending" for _, st in held.values()),
            "br2's inbox does not hold exactly the later events, all pending")
    h.check(br2.proc.alive() and h.http_call(br2.http_port, "GET", "/healthz")[0] == 200,
            "br2 stopped serving while refused")
    cs = csub.stop()
    h.check(cs.get("invalid") == 0, "cloud sub: %s" % cs)
    print("  %s" % h.bridge_figures(s1))
    print("  %s; cloud last error: %s" % (h.bridge_figures(s2), c2["last_error"]))
    return ("%d events over mutual TLS to the cloud (%d copies); br2 without a client "
            "certificate refused (%d failed attempts: %s) and holding %d events in its inbox; "
            "br1 holes detected %d / filled %d, duplicates dropped %d, out_of_order %d" %
            (len(every), f["copies"], c2["failures"], c2["last_error"], i2["backlog"],
             s1["gaps"]["holes_detected"], s1["gaps"]["filled"],
             s1["inbox"]["duplicates_dropped"], s1["order"]["out_of_order"]))


if __name__ == "__main__":
    h.main(scenario, "bridge to cloud over mutual TLS; no client certificate: refused, "
           "journals on")
