"""Ctrl-C for the ``flowers`` command, from the process's first lines to its exit.

Light on purpose (standard modules only): the command installs the handler
before it imports anything heavy, so no Ctrl-C of a start-up is lost.

Two ways a Ctrl-C used to go missing: during start-up Python's own handler
raised KeyboardInterrupt into module-level imports (a traceback), and any
KeyboardInterrupt raised while the main thread runs a finalizer or a weakref
callback (gc during imports, a dropped connection) is printed as "ignored"
and lost, leaving the main thread waiting for requests the service still
holds. So a first Ctrl-C is held while the command cannot take it yet, and
raised again until the command says it has it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType

EXIT_INTERRUPTED = 130
#: Seconds between re-raises of a first Ctrl-C the main thread has not taken yet.
REDELIVER_EVERY = 0.2


class Interrupts:
    """First Ctrl-C: KeyboardInterrupt (held while deferred). Second: exit 130 at once."""

    def __init__(self) -> None:
        self._installed = False
        self._reset()

    def _reset(self) -> None:
        self.count = 0
        self.first_at: float | None = None  # time.monotonic() of the first Ctrl-C
        self._deferring = 0
        self._pending = False
        self._raised = threading.Event()  # a first Ctrl-C was raised into the main thread
        self._taken = threading.Event()  # ...and the command caught it (or the run is over)
        self._redelivering = False
        self._previous: object = None

    def install(self, *, hold: bool = False) -> bool:
        """Take SIGINT (main thread only); ``hold``: keep a Ctrl-C until :meth:`release_hold`.

        False when already installed (by the command's first lines) or not on the main thread.
        """
        if self._installed or threading.current_thread() is not threading.main_thread():
            return False
        self._reset()
        self._deferring = int(hold)
        self._previous = signal.signal(signal.SIGINT, self._handle)
        self._installed = True
        threading.Thread(
            target=self._redeliver, args=(self._raised, self._taken), name="flowers-ctrl-c", daemon=True
        ).start()
        return True

    def uninstall(self) -> None:
        if self._installed:
            self._taken.set()
            self._raised.set()  # lets the re-raising thread end
            signal.signal(signal.SIGINT, self._previous)  # type: ignore[arg-type]
            self._installed = False

    def release_hold(self) -> None:
        """The command can take a KeyboardInterrupt now: raise a Ctrl-C that came meanwhile."""
        if self._deferring:
            self._deferring -= 1
            self._raise_pending()

    def taken(self) -> None:
        """The command caught the KeyboardInterrupt: no more re-raising."""
        self._taken.set()

    def finished(self) -> None:
        """The run is over (its exit code stands): hold any first Ctrl-C from now on."""
        self._deferring += 1
        self._taken.set()

    def since_first(self) -> float:
        """Seconds since the first Ctrl-C (0 if none came through the handler)."""
        return 0.0 if self.first_at is None else time.monotonic() - self.first_at

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Hold a first Ctrl-C until the block is done (a line is written whole)."""
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1
            self._raise_pending()

    def _raise_pending(self) -> None:
        if not self._deferring and self._pending:
            self._pending = False
            self._raise()

    def _raise(self) -> None:
        self._raised.set()
        raise KeyboardInterrupt

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._redelivering:
            self._redelivering = False  # our own re-raise of the first Ctrl-C
        else:
            self.count += 1
            if self.first_at is None:
                self.first_at = time.monotonic()
            if self.count > 1:
                os.write(2, b"\nflowers: interrupted again; exiting now\n")
                os._exit(EXIT_INTERRUPTED)
        if self._deferring:
            self._pending = True
            return
        if not self._taken.is_set():
            self._raise()

    def _redeliver(self, raised: threading.Event, taken: threading.Event) -> None:
        """Until the command has the first Ctrl-C, signal the main thread again (wakes a blocked wait too)."""
        if hasattr(signal, "pthread_sigmask"):  # Ctrl-C goes to the main thread, where Python handles it
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        raised.wait()
        main = threading.main_thread().ident
        if not hasattr(signal, "pthread_kill"):  # Windows: nothing to re-raise with
            return
        while not taken.wait(REDELIVER_EVERY):
            if self._deferring or main is None:
                continue  # held on purpose (a line being written): raised when the block ends
            self._redelivering = True
            signal.pthread_kill(main, signal.SIGINT)


#: The one handler of this process's command.
INTERRUPTS = Interrupts()
