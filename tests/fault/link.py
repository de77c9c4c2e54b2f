"""A store's internet link, as a TCP forwarder the fault tests can cut.

Everything a gateway sends to the cluster goes through ``LinkProxy``; ``cut``
closes every open connection at once (both ends see the link die, as when
the store's router loses its uplink) and refuses new ones until ``restore``.
"""

import contextlib
import socket
import threading


class LinkProxy:
    def __init__(self, target_host: str, target_port: int, host: str = "127.0.0.1") -> None:
        self._target = (target_host, target_port)
        self._server = socket.create_server((host, 0))
        self.host, self.port = host, self._server.getsockname()[1]
        self._up = threading.Event()
        self._up.set()
        self._closed = False
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self.cuts = 0
        self.refused = 0
        """Connections the link turned away while down (a gateway's reconnect tries)."""
        threading.Thread(target=self._accept, name="link-proxy", daemon=True).start()

    def cut(self) -> None:
        """The link goes down: every connection dies, new ones are refused."""
        self._up.clear()
        self.cuts += 1
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()
            self._open.clear()

    def restore(self) -> None:
        self._up.set()

    def close(self) -> None:
        self._closed = True
        self.cut()
        with contextlib.suppress(OSError):
            self._server.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if not self._up.is_set():
                client.close()  # the link is down: the gateway's connect fails
                self.refused += 1
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.close()
