"""delay_proxy.py - a small TCP proxy that delays every chunk it forwards,
each way, by a random time (latency emulation without netem).

    p = DelayProxy(("10.231.7.2", 1883), delay_ms=100, jitter_ms=50, seed=1)
    p.start()                 # listens on 127.0.0.1:p.port (a free port)
    p.set_delay(0, 0)         # change it at any time (new chunks)
    p.close()

Per connection: one thread reads each direction and stamps every chunk with
a release time now + uniform(delay - jitter, delay + jitter), but never
earlier than the chunk before it (so bytes keep their order per direction:
a late chunk delays the ones behind it, as on a real path); another thread
per direction writes each chunk at its time. An end of stream or error on
either side closes both. The upstream connection is opened only once a
client is accepted; its socket carries SO_MARK = netns.MARK so that an
nftables redirect of the upstream address to this proxy leaves it alone.
Counters: connections, upstream_failures, bytes each way.

Run alone: python3 delay_proxy.py --listen PORT --to HOST:PORT [--delay 100 --jitter 50].
"""
import argparse
import collections
import random
import socket
import threading
import time

try:
    from netns import MARK
except ImportError:  # run from elsewhere
    MARK = 0x5e5f


class _Pipe(threading.Thread):
    """Writes chunks to dst at their release times, in order."""

    def __init__(self, proxy, dst, on_close):
        super().__init__(daemon=True)
        self.proxy, self.dst, self.on_close = proxy, dst, on_close
        self.queue = collections.deque()
        self.cond = threading.Condition()
        self.last_release = 0.0
        self.eof = False

    def put(self, data):
        with self.cond:
            release = max(time.monotonic() + self.proxy.draw_delay(), self.last_release)
            self.last_release = release
            self.queue.append((release, data))
            self.cond.notify()

    def finish(self):
        with self.cond:
            self.eof = True
            self.cond.notify()

    def run(self):
        try:
            while True:
                with self.cond:
                    while not self.queue and not self.eof:
                        self.cond.wait()
                    if not self.queue:
                        break
                    release, data = self.queue[0]
                wait = release - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                with self.cond:
                    self.queue.popleft()
                self.dst.sendall(data)
        except OSError:
            pass
        self.on_close()


class DelayProxy:
    def __init__(self, upstream, delay_ms=100, jitter_ms=50, seed=None, host="127.0.0.1",
                 port=0, connect_timeout=30):
        self.upstream = upstream
        self.rng = random.Random(seed)
        self.rng_lock = threading.Lock()
        self.set_delay(delay_ms, jitter_ms)
        self.connect_timeout = connect_timeout
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, port))
        self.lsock.listen(16)
        self.host, self.port = self.lsock.getsockname()
        self.lock = threading.Lock()
        self.conns = set()
        self.connections = self.upstream_failures = 0
        self.bytes_up = self.bytes_down = 0
        self.closed = False

    def set_delay(self, delay_ms, jitter_ms):
        self.delay_ms, self.jitter_ms = delay_ms, jitter_ms

    def draw_delay(self):
        """Seconds: uniform in delay ± jitter (never negative)."""
        if self.delay_ms <= 0 and self.jitter_ms <= 0:
            return 0.0
        with self.rng_lock:
            ms = self.rng.uniform(self.delay_ms - self.jitter_ms, self.delay_ms + self.jitter_ms)
        return max(0.0, ms) / 1000.0

    def start(self):
        threading.Thread(target=self._accept_loop, daemon=True).start()
        return self

    def _accept_loop(self):
        while not self.closed:
            try:
                client, _ = self.lsock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client):
        up = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            up.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, MARK)
        except (OSError, AttributeError):
            pass  # not root: no redirect can be in the way either
        up.settimeout(self.connect_timeout)
        try:
            up.connect(self.upstream)
        except OSError:
            with self.lock:
                self.upstream_failures += 1
            up.close()
            client.close()
            return
        up.settimeout(None)
        for s in (client, up):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.lock:
            self.connections += 1
            self.conns.add(client)
            self.conns.add(up)
        done = threading.Event()

        def close_both():
            if done.is_set():
                return
            done.set()
            for s in (client, up):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            with self.lock:
                self.conns.discard(client)
                self.conns.discard(up)

        to_up = _Pipe(self, up, close_both)
        to_client = _Pipe(self, client, close_both)
        to_up.start()
        to_client.start()
        threading.Thread(target=self._read, args=(client, to_up, "bytes_up", close_both),
                         daemon=True).start()
        self._read(up, to_client, "bytes_down", close_both)

    def _read(self, src, pipe, counter, close_both):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self.lock:
                    setattr(self, counter, getattr(self, counter) + len(data))
                pipe.put(data)
        except OSError:
            pass
        # What was read still goes (after its delay); then everything closes.
        pipe.finish()

    def stats(self):
        with self.lock:
            return {"connections": self.connections, "open": len(self.conns) // 2,
                    "upstream_failures": self.upstream_failures,
                    "bytes_up": self.bytes_up, "bytes_down": self.bytes_down}

    def close(self):
        self.closed = True
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            conns = list(self.conns)
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def main():
    p = argparse.ArgumentParser(description="a delaying TCP proxy")
    p.add_argument("--listen", type=int, required=True, help="port on 127.0.0.1")
    p.add_argument("--to", required=True, help="HOST:PORT")
    p.add_argument("--delay", type=float, default=100, help="ms")
    p.add_argument("--jitter", type=float, default=50, help="ms, uniform +/-")
    p.add_argument("--seed", type=int, default=None)
    a = p.parse_args()
    host, _, port = a.to.rpartition(":")
    proxy = DelayProxy((host, int(port)), a.delay, a.jitter, a.seed, port=a.listen).start()
    print("delay proxy 127.0.0.1:%d -> %s, %g +/- %g ms" % (proxy.port, a.to, a.delay, a.jitter))
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        proxy.close()


if __name__ == "__main__":
    main()
