"""The tap-point driver: an nfcpy ContactlessFrontend polled on its own thread.

nfcpy's `connect(rdwr=...)` blocks while it polls, activates a tag, and then
waits until the tag leaves; it runs here on a daemon thread and hands each
detection to the pure debouncer, and each tap to the gateway node (the outbox
is thread-safe). Anything the reader or a tag does wrong is counted and the
loop goes on; a reader that disappears (USB unplugged, serial cable pulled) is
reopened with an exponential backoff.
"""

import errno
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from omnizone.contract import GatewayConfig
from omnizone.gateway.nfc.ndef import NdefDecoder
from omnizone.gateway.nfc.settings import NfcReaderSettings
from omnizone.gateway.nfc.taps import (
    MAX_TAG_TYPE,
    UID_BYTES,
    TagRead,
    TapDebouncer,
    read_problem,
)
from omnizone.gateway.node import Clock, GatewayNode

log = logging.getLogger(__name__)

FIRST_BACKOFF_S = 0.5


class Frontend(Protocol):
    """The part of nfc.ContactlessFrontend this driver uses."""

    def connect(self, **options: Any) -> Any: ...

    def close(self) -> None: ...


FrontendFactory = Callable[[str], Frontend]


def open_frontend(device: str) -> Frontend:
    """Open an nfcpy reader; OSError if none answers on `device`."""
    import nfc

    frontend = nfc.ContactlessFrontend()
    if not frontend.open(device):
        raise OSError(errno.ENODEV, f"no NFC reader found on {device!r}")
    return frontend  # type: ignore[no-any-return]


class NfcReader:
    """One tap point: a reader, its debouncer, its counters and state in the node."""

    def __init__(
        self,
        node: GatewayNode,
        settings: NfcReaderSettings,
        *,
        clock: Clock | None = None,
        frontend_factory: FrontendFactory = open_frontend,
    ) -> None:
        self.node = node
        self.settings = settings
        self.tap_point = settings.tap_point
        self.clock = clock or node.clock
        self._open = frontend_factory
        self._debouncer = TapDebouncer(settings.tap_point, settings.debounce_ms)
        self._ndef = NdefDecoder()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reads = 0
        self.releases = 0
        self.invalid_tags = 0
        self.tag_errors = 0
        self.reader_errors = 0
        self.reopen = 0
        self.deliver_errors = 0
        self.last_error: str | None = None
        self._set_state("stopped")
        node.add_counters(f"nfc.{self.tap_point}", self.counters)
        node.on_config(self._apply_config)

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"nfc-{self.tap_point}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Stop polling; True once the thread has ended (nfcpy returns within
        one polling round, about a second on the UDP driver)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)
            if thread.is_alive():
                log.error("nfc %s: reader thread did not stop in %.1f s", self.tap_point, timeout_s)
                return False
        self._set_state("stopped")
        return True

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def debounce_ms(self) -> int:
        return self._debouncer.debounce_ms

    def counters(self) -> Mapping[str, int]:
        return {
            "reads": self.reads,
            "taps": self._debouncer.taps,
            "debounced": self._debouncer.debounced,
            "ndef_errors": self._ndef.errors,
            "tag_errors": self.tag_errors,
            "invalid_tags": self.invalid_tags,
            "reader_errors": self.reader_errors,
            "reopen": self.reopen,
            "deliver_errors": self.deliver_errors,
        }

    # -- the polling thread --------------------------------------------------

    def _run(self) -> None:
        backoff = FIRST_BACKOFF_S
        failed = False
        while not self._stop.is_set():
            self._set_state("opening")
            try:
                frontend = self._open(self.settings.device)
            except Exception as error:  # nfcpy raises IOError, usb1 errors, ValueError
                failed = True
                self._reader_error(f"cannot open {self.settings.device!r}: {error}")
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.settings.reopen_max_backoff_s)
                continue
            if failed:
                self.reopen += 1
                log.info("nfc %s: reader reopened on %s", self.tap_point, self.settings.device)
            try:
                self._poll(frontend)
                backoff = FIRST_BACKOFF_S
            except Exception as error:
                failed = True
                self._reader_error(f"reader failed: {error!r}")
            finally:
                try:
                    frontend.close()
                except Exception as error:  # closing an unplugged reader may fail too
                    log.debug("nfc %s: close failed: %r", self.tap_point, error)
            if failed and not self._stop.is_set():
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.settings.reopen_max_backoff_s)

    def _poll(self, frontend: Frontend) -> None:
        self._set_state("polling")
        interval = self.settings.poll_interval_s
        options = {
            "targets": list(self.settings.targets),
            "on-connect": self._on_connect,
            "on-release": self._on_release,
            # One sense per round; the pause between rounds is the terminate
            # callback, so stop() is honoured within one round.
            "iterations": 1,
            "interval": interval,
        }
        while not self._stop.is_set():
            result = frontend.connect(rdwr=options, terminate=lambda: self._stop.wait(interval))
            if result is False:  # nfcpy caught an IOError: the reader is gone
                raise OSError(errno.EIO, "nfcpy lost the reader")

    def _on_connect(self, tag: Any) -> bool:
        """nfcpy activated a tag: read it, debounce it, publish the tap.

        True asks nfcpy to wait for the tag to leave before polling again, so
        a tag lying on the reader is one detection. OSError (the reader itself
        failing) goes back to nfcpy, which ends connect() with False.
        """
        self._set_state("tag-present")
        try:
            self._detected(tag)
        finally:
            self.reads += 1  # counted once the detection is fully handled
        return True

    def _detected(self, tag: Any) -> None:
        at_ms = self.clock()
        try:
            uid = bytes(tag.identifier)
            tag_type = str(tag.type)
        except Exception as error:
            self.tag_errors += 1
            self.last_error = f"unreadable tag: {error!r}"
            return
        read = TagRead(uid, at_ms, self._read_uri(tag), tag_type)
        problem = read_problem(read)
        if problem is not None and len(uid) in UID_BYTES:
            read = TagRead(uid, at_ms, None, tag_type[:MAX_TAG_TYPE])  # keep the tap itself
            problem = read_problem(read)
        if problem is not None:
            self.invalid_tags += 1
            self.last_error = f"tag {uid.hex()}: {problem}"
            return
        with self._lock:
            tap = self._debouncer.offer(read)
        if tap is None:
            return
        try:
            self.node.on_nfc_taps([tap])
        except Exception as error:  # a full disk must not stop the tap point
            self.deliver_errors += 1
            self.last_error = f"cannot store tap: {error!r}"
            log.error("nfc %s: %s", self.tap_point, self.last_error)

    def _read_uri(self, tag: Any) -> str | None:
        try:
            ndef = tag.ndef
            octets = None if ndef is None else bytes(ndef.octets)
        except OSError:
            raise
        except Exception as error:  # TagCommandError, CommunicationError, a tag gone mid-read
            self.tag_errors += 1
            self.last_error = f"NDEF read failed: {error!r}"
            return None
        if octets is None:
            return None
        summary = self._ndef.decode(octets)
        if summary is None:
            self.last_error = self._ndef.last_error
            return None
        return summary.uri

    def _on_release(self, tag: Any) -> bool:
        try:
            uid = bytes(tag.identifier)
        except Exception:
            uid = b""
        with self._lock:
            self._debouncer.left(uid, self.clock())
        self.releases += 1
        self._set_state("polling")
        return True

    # -- helpers -------------------------------------------------------------

    def _apply_config(self, config: GatewayConfig) -> None:
        if config.nfc is not None and config.nfc.debounce_ms is not None:
            with self._lock:
                self._debouncer.set_debounce(config.nfc.debounce_ms)

    def _reader_error(self, message: str) -> None:
        self.reader_errors += 1
        self.last_error = message
        self._set_state("unavailable")
        log.warning("nfc %s: %s", self.tap_point, message)

    def _set_state(self, state: str) -> None:
        self.node.readers[self.tap_point] = state
