"""Process signals for the daemon: SIGTERM and SIGINT stop it, SIGHUP reloads the rule file.

The handlers are installed first thing in `Daemon.run()` and stay in place until the
process exits, so a signal never meets the default action, which ends the process
(systemd counts an exit by SIGHUP as clean and would not restart it; a second SIGTERM
during shutdown would end in rc -15 after `stopped` was logged). They are plain
`signal.signal` handlers rather than `loop.add_signal_handler`, because asyncio resets its
handlers to the default action when the loop closes, while the process still has
executor threads to join and the interpreter to finalise.

A signal is passed to the loop with `call_soon_threadsafe`; once `detach()` was called
(the daemon has ended) later signals are ignored: the process is on its way out anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
RELOAD_SIGNAL = signal.SIGHUP

_Handler = Callable[[int, FrameType | None], object] | int | None


class SignalHandlers:
    """Routes SIGTERM/SIGINT to `on_stop(signum)` and SIGHUP to `on_reload()`, on the loop."""

    def __init__(self, *, on_stop: Callable[[int], None], on_reload: Callable[[], None]) -> None:
        self._on_stop = on_stop
        self._on_reload = on_reload
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous: dict[int, _Handler] = {}

    @property
    def installed(self) -> bool:
        return bool(self._previous)

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        """Take over the three signals (only possible in the main thread; elsewhere, as in
        a test that runs the daemon in a thread, signals are left alone)."""
        self._loop = loop
        if self._previous or threading.current_thread() is not threading.main_thread():
            return
        for sig in (*STOP_SIGNALS, RELOAD_SIGNAL):
            self._previous[sig] = signal.signal(sig, self._handle)

    def detach(self) -> None:
        """The daemon has ended and the process exits: ignore the signals from now on.
        SIG_IGN rather than our handler, because the interpreter resets Python-level
        handlers to the default action while it finalises (but leaves SIG_IGN alone)."""
        self._loop = None
        for sig in self._previous:
            signal.signal(sig, signal.SIG_IGN)

    def restore(self) -> None:
        """Put back the handlers found at `install()` (for callers that go on living)."""
        self._loop = None
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed since the check
            loop.call_soon_threadsafe(self._dispatch, signum)

    def _dispatch(self, signum: int) -> None:
        if self._loop is None:
            return
        if signum == RELOAD_SIGNAL:
            self._on_reload()
        else:
            self._on_stop(signum)
