"""
Honest start-up (issue 18 item 1): whoever started the process learns
whether it serves, and a failure before serving is a non-zero exit with
one clear line, whichever runner started it.

    twistd -n xmppchat          foreground: the line on stderr, exit code 1
    python -m twisted xmppchat  the same
    twistd xmppchat             daemon: the launcher waits for the status pipe

twistd's daemon launcher waits on a status pipe that
C{UnixApplicationRunner.postApplication} writes (C{0}) as soon as the
services' C{startService} has returned, before the reactor even runs, and
it never writes when C{startService} raises C{SystemExit}: the launcher
then hangs and the pidfile stays.  L{Launch} takes that pipe from twistd's
options (it is set in C{setupEnvironment}, before
C{privilegedStartService}) and writes it itself: C{0} once storage, and
Redis in cluster mode, are up and the ports are published (L{Launch.ready}),
or a failure message (L{Launch.fail}).  The daemon's standard error is
C{/dev/null}, so the launcher's is kept (duplicated before the fork, closed
at readiness) to print the reason on.

A failure before the reactor runs (a port in use) exits at once with
C{SystemExit} after removing the pidfile; a failure after it (storage,
Redis) stops the reactor cleanly (twistd removes the pidfile) and the
process then tells the launcher and exits with code 1 (L{Launch._exit}).
Under systemd, readiness is also C{READY=1} on C{$NOTIFY_SOCKET}
(C{Type=notify}); a C{--workers} worker reports to its supervisor instead,
on the descriptor it was given (C{--ready-fd}).
"""

from __future__ import annotations

import atexit
import os
import sys

from twisted.logger import Logger

#: what the daemon launcher prints after the line with the reason
PIPE_MESSAGE = b"1 xmppchat did not start (the reason is above and in the log)"
#: how long a failed start may take to stop cleanly before it just exits
STOP_GRACE_SECONDS = 10


class StartupError(Exception):
    """
    The server cannot start; the message says why, for a human.
    """


class Launch:
    """
    How this process was started, and how it reports readiness or a
    failure before serving.

    @param runner: the runner's options, twistd's C{ServerOptions} (with
        C{nodaemon}, C{pidfile} and, once daemonised, C{statusPipe}) or
        C{twist}'s options; C{None} when nothing but the caller has to
        know (a service built in-process).
    @param readyFD: with C{--workers}, the descriptor a worker reports its
        start on to its supervisor (C{0} or C{1 <why>}).
    """

    log = Logger()

    def __init__(self, runner=None, reactor=None, readyFD=None):
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.readyFD = readyFD
        self.runner = runner if runner is not None else {}
        self.daemon = not self.runner.get("nodaemon", True)
        # the daemon's fd 2 becomes /dev/null at the fork: keep the launcher's
        self.stderr = os.dup(2) if self.daemon else 2
        self.done = False
        self.reason = ""
        self.pipe = None

    def claim(self) -> None:
        """
        Take twistd's status pipe, so that readiness is reported by
        L{ready} rather than when C{startService} returns; call it from
        C{startService}, before it returns.
        """
        if self.runner.get("statusPipe") is not None:
            self.pipe = self.runner["statusPipe"]
            self.runner["statusPipe"] = None  # postApplication must not report success

    def _report(self, reason: str = "") -> None:
        """
        Tell the daemon launcher and the supervisor: serving (no C{reason})
        or not.
        """
        self.claim()
        pipe, self.pipe = self.pipe, None
        if pipe is not None:
            _write(pipe, PIPE_MESSAGE if reason else b"0")
            os.close(pipe)
        readyFD, self.readyFD = self.readyFD, None
        if readyFD is not None:
            _write(readyFD, f"1 {reason}".encode("utf-8", "replace") if reason else b"0")
            os.close(readyFD)
        if self.stderr != 2:
            os.close(self.stderr)
            self.stderr = 2

    def ready(self) -> None:
        """
        The server serves: tell the daemon launcher (exit code 0), the
        supervisor, or systemd (C{Type=notify}).
        """
        if not self.done:
            self.done = True
            worker = self.readyFD is not None
            self._report()
            if not worker:  # systemd listens to the main process only
                notifySystemd("READY=1")

    def fail(self, reason: str) -> None:
        """
        A failure before serving: log C{reason}, print it on standard error
        as one line, tell the daemon launcher, exit with code 1.  Raises
        C{SystemExit} when the reactor is not running yet; otherwise stops
        it.
        """
        if self.done:
            return
        self.done = True
        self.reason = reason = " ".join(reason.split()) or "unknown"
        self.log.error("xmppchat did not start: {reason}", reason=reason)
        _write(self.stderr, f"xmppchat: {reason}\n".encode("utf-8", "replace"))
        if getattr(self.reactor, "running", False):
            # the launcher learns it once the process has cleaned up
            atexit.register(self._exit)
            self.reactor.callLater(STOP_GRACE_SECONDS, self._exit)
            self.reactor.stop()
            return
        self._removePidfile()
        self._report(reason)
        raise SystemExit(1)

    def _removePidfile(self) -> None:
        """
        Remove the pidfile twistd wrote for this process (twistd removes it
        only when the reactor has run).
        """
        path = self.runner.get("pidfile")
        try:
            with open(path) as f:
                mine = f.read().strip() == str(os.getpid())
            if mine:
                os.remove(path)
        except (OSError, TypeError):
            pass

    def _exit(self) -> None:
        """
        Exit with code 1 once the reactor has stopped and the runner has
        returned (at interpreter exit: neither twistd nor C{twist} has a way
        to set the exit code), or when stopping takes longer than
        L{STOP_GRACE_SECONDS}.
        """
        self._removePidfile()
        self._report(self.reason)
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(1)


def _write(fd: int, data: bytes) -> None:
    try:
        os.write(fd, data)
    except OSError:
        pass


def notifySystemd(state: str) -> None:
    """
    Send C{state} to systemd's notification socket (C{sd_notify(3)}) when
    started by a C{Type=notify} unit (C{$NOTIFY_SOCKET}); nothing otherwise.
    """
    import socket

    path = os.environ.get("NOTIFY_SOCKET", "")
    if not path.startswith(("/", "@")):
        return
    if path.startswith("@"):
        path = "\0" + path[1:]  # an abstract socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(state.encode(), path)
    except OSError:
        pass
