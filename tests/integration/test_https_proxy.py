#!/usr/bin/env python3
"""test_https_proxy: HTTPS through nginx in front of the agent, as
docs/security.md describes (civetweb's own TLS is never used).

nginx runs with a generated config and a self-signed certificate on a free
port in the test folder; GET /api/status over https is 401 without
credentials and 200 with them, and a same-origin POST passes the Origin check
(nginx forwards the Host with its port).
"""
import base64
import http.client
import os
import shutil
import ssl

import harness as h

USER, PASSWORD = "ops", "proxy pass 1"


def nginx_conf(env, port, agent_port, cert, key):
    d = env.dir
    lines = ["daemon off;", "worker_processes 1;", "pid %s/nginx.pid;" % d,
             "error_log %s/nginx-error.log;" % d, "events { worker_connections 64; }",
             "http {", "  access_log %s/nginx-access.log;" % d,
             "  client_body_temp_path %s/nginx-body;" % d, "  proxy_temp_path %s/nginx-proxy;" % d,
             "  fastcgi_temp_path %s/nginx-fcgi;" % d, "  uwsgi_temp_path %s/nginx-uwsgi;" % d,
             "  scgi_temp_path %s/nginx-scgi;" % d,
             "  server {", "    listen 127.0.0.1:%d ssl;" % port,
             "    ssl_certificate %s;" % cert, "    ssl_certificate_key %s;" % key,
             "    client_max_body_size 1m;",
             "    location / {", "      proxy_pass http://127.0.0.1:%d;" % agent_port,
             "      proxy_http_version 1.1;", "      proxy_set_header Host $http_host;", "    }",
             "  }", "}"]
    if os.geteuid() == 0:
        lines.insert(0, "user root;")
    path = env.path("nginx.conf")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def scenario(env):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    h.check(os.path.exists(nginx), "nginx is not installed (scripts/deps.sh installs nginx-light)")
    users = env.path("users")
    r = h.subprocess.run([env.args.cli, "passwd", users, USER, "--stdin"], input=PASSWORD + "\n",
                         capture_output=True, text=True, timeout=30)
    h.check(r.returncode == 0, "passwd: %s" % r.stderr)
    broker = env.broker()
    agent = env.agent(broker.port, extra=["--http.auth_file", users])
    agent.start()
    cert, key = env.path("proxy.pem"), env.path("proxy.key")
    h.openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
              "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key,
              "-out", cert)
    port = h.free_port()
    proc = env.spawn("nginx", [nginx, "-p", env.dir, "-c",
                               nginx_conf(env, port, agent.http_port, cert, key)])

    def up():
        proc.check_alive()
        return h.port_open(port)
    h.wait_for(up, 10, "nginx to listen")
    ctx = ssl.create_default_context(cafile=cert)

    def call(method, path, headers, body=None):
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()
    auth = {"Authorization": "Basic " + base64.b64encode(
        ("%s:%s" % (USER, PASSWORD)).encode()).decode()}
    st, _ = call("GET", "/api/status", {})
    h.check(st == 401, "over https without credentials: %d" % st)
    st, body = call("GET", "/api/status", auth)
    h.check(st == 200 and b"journal" in body, "over https with credentials: %d %s" % (st, body))
    hdr = dict(auth, **{"Content-Type": "application/json",
                        "Origin": "https://127.0.0.1:%d" % port})
    st, body = call("POST", "/api/events", hdr, '{"type":"t.x","subject":"s","data":{}}')
    h.check(st == 202, "same-origin POST through the proxy: %d %s" % (st, body))
    hdr["Origin"] = "https://evil.example"
    st, _ = call("POST", "/api/events", hdr, '{"type":"t.x","subject":"s","data":{}}')
    h.check(st == 403, "cross-site POST through the proxy: %d" % st)
    return "https via nginx: 401 without credentials, 200 with, Origin check intact"


h.main(scenario, "HTTPS through an nginx reverse proxy")
