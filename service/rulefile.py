"""The rule file on disk: reading it, noticing edits, and keeping the last rule set that
validated. The daemon reloads through it; a refused edit leaves `ruleset` as it was.

One reading path for every caller (`check`, the other commands, the daemon's start and
its reloads): the size limit (EARNWATCH_RULES_MAX_BYTES) is checked before the file is
read whole, the bytes must be UTF-8 text, and a refusal is one line, `PATH: message`.

A reload is two halves: `RuleFile.inspect()` reads, parses, validates and compiles (the
SSRF look-ups of `channel_check` included) and changes nothing, so the daemon runs it in a
thread; `RuleFile.apply()` records the outcome and swaps the rule set, on the loop. The
stat of the file (mtime, size, inode) is recorded only once its content was read, so a
file that could not be read (permission denied, removed, replaced by a directory) is
tried again at every watch tick until it can be, even if a later `chmod` keeps its mtime
and size.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import logging
import os
import stat as _stat
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from service.config import DEFAULT_RULES_MAX_BYTES, SECRET_ENV_NAMES, load_env
from service.errors import Problem, RuleFileError
from service.logs import SecretMask
from service.notify import channel_secrets
from service.rules import ChannelCheck, RuleSet, load_rules

log = logging.getLogger(__name__)

_Key = tuple[int, int, int]


class RuleFileRefused(RuleFileError):
    """The file as a whole was refused before any YAML was read: `PATH: message`."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(source, [Problem(0, 0, "", message)])
        self.message = message

    def __str__(self) -> str:
        return f"{self.source}: {self.message}"

    def lines(self) -> list[str]:
        return [str(self)]


def read_rule_bytes(path: Path, *, max_bytes: int) -> tuple[bytes, os.stat_result]:
    """The file's bytes and the stat of what was read. Raises RuleFileRefused (too large,
    not a regular file) or OSError (missing, permission denied, a directory)."""
    source = str(path)
    found = os.stat(path)
    if not _stat.S_ISREG(found.st_mode) and not _stat.S_ISDIR(found.st_mode):
        # A FIFO or a device would block or never end; a directory fails to open below.
        raise RuleFileRefused(source, "not a regular file")
    with path.open("rb") as handle:
        found = os.fstat(handle.fileno())
        if found.st_size > max_bytes:
            raise RuleFileRefused(source, _too_large(found.st_size, max_bytes))
        data = handle.read(max_bytes + 1)  # the file may have grown since the fstat
    if len(data) > max_bytes:
        raise RuleFileRefused(source, _too_large(len(data), max_bytes))
    return data, found


def _too_large(size: int, max_bytes: int) -> str:
    return f"the file is {size:,} bytes, above EARNWATCH_RULES_MAX_BYTES ({max_bytes:,})"


def decode_rule_text(path: Path, data: bytes) -> str:
    """The bytes as text, or RuleFileRefused naming the first byte that is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RuleFileRefused(str(path), f"not UTF-8 text (byte {exc.start})") from None


def load_rule_file(
    path: Path,
    *,
    env: Mapping[str, str],
    channel_configs: Mapping[str, type[BaseModel]],
    channel_check: ChannelCheck | None = None,
    max_bytes: int = DEFAULT_RULES_MAX_BYTES,
) -> RuleSet:
    """Read, decode, validate and compile a rule file. Raises RuleFileError or OSError."""
    data, _ = read_rule_bytes(path, max_bytes=max_bytes)
    return _compile(path, data, env, channel_configs, channel_check)


def _compile(
    path: Path,
    data: bytes,
    env: Mapping[str, str],
    channel_configs: Mapping[str, type[BaseModel]],
    channel_check: ChannelCheck | None,
) -> RuleSet:
    text = decode_rule_text(path, data)
    with collections_paused():  # only around a real load: it freezes what is alive
        return load_rules(
            text,
            source=str(path),
            env=env,
            channel_configs=channel_configs,
            channel_check=channel_check,
            reserved_env=SECRET_ENV_NAMES,
        )


@contextlib.contextmanager
def collections_paused() -> Generator[None, None, None]:
    """Pause the cyclic garbage collector around a large load, then freeze what is alive.

    Loading 30,000 rules allocates some 400,000 long-lived objects, and each 25 % of growth
    triggers a full collection that walks the whole heap holding the GIL: 13 of them, up to
    1.5 s each, half the load's time, and the event loop stands still during each. A rule
    set holds no reference cycles (reference counting frees it when it is replaced), so
    nothing is lost by not looking for cycles meanwhile; `gc.freeze()` at the end keeps
    the rule set out of the walks of later collections. The price: cyclic garbage already
    unreachable at that moment is never collected (a few objects per reload)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


@dataclass(frozen=True)
class Reload:
    """What one look at the file found. `unreadable` is not recorded (tried again at the
    next look); the others record `key`, the stat of the content they read."""

    kind: Literal["unchanged", "loaded", "refused", "unreadable"]
    key: _Key | None = None
    digest: str | None = None
    ruleset: RuleSet | None = None
    error: RuleFileError | OSError | None = None

    @property
    def reason(self) -> str:
        """Why the file could not be read (for `unreadable`)."""
        if isinstance(self.error, OSError):
            return self.error.strerror or type(self.error).__name__
        return str(self.error)


class RuleFile:
    """The rule file on disk and the last rule set that validated from it."""

    def __init__(
        self,
        path: Path,
        *,
        env_file: str | Path | None,
        channel_configs: Mapping[str, type[BaseModel]],
        channel_check: ChannelCheck | None = None,
        mask: SecretMask | None = None,
        max_bytes: int = DEFAULT_RULES_MAX_BYTES,
    ) -> None:
        self.path = path
        self.channel_check = channel_check
        self.env_file = env_file
        self.channel_configs = channel_configs
        self.mask = mask
        self.max_bytes = max_bytes
        self.ruleset: RuleSet | None = None
        #: Why the file could not be read at the last look (None: it could).
        self.failure: str | None = None
        self._digest: str | None = None
        self._key: _Key | None = None

    @property
    def current(self) -> RuleSet:
        """The rule set in force; only after the first successful `load()`."""
        if self.ruleset is None:
            raise RuntimeError(f"{self.path}: no rule set loaded yet")
        return self.ruleset

    def load(self) -> RuleSet:
        """Read and validate the file now; raises RuleFileError or OSError. Keeps the old
        set on failure. For a start and for tests; the daemon reloads in two halves."""
        found = self.inspect(force=True)
        self.apply(found)
        if found.error is not None:
            raise found.error
        assert self.ruleset is not None
        return self.ruleset

    def inspect(self, *, force: bool = False) -> Reload:
        """Look at the file and build the new rule set if it changed. Changes nothing: safe
        to run in a thread while the loop goes on using `ruleset`. With `force` (SIGHUP)
        the content is read even if the stat did not move; content identical to the
        running set's (the rule file and `.env` alike) is still `unchanged`."""
        try:
            key = _key(os.stat(self.path))
            if not force and self.failure is None and key == self._key:
                return Reload("unchanged")
            data, found = read_rule_bytes(self.path, max_bytes=self.max_bytes)
        except RuleFileError as exc:
            return Reload("refused", key=key, error=exc)
        except OSError as exc:
            return Reload("unreadable", error=exc)
        key = _key(found)
        digest = _digest(data, self.env_file)
        if digest == self._digest and self.ruleset is not None:
            return Reload("unchanged", key=key, digest=digest)
        try:
            env = load_env(self.env_file)
            ruleset = _compile(self.path, data, env, self.channel_configs, self.channel_check)
        except RuleFileError as exc:
            return Reload("refused", key=key, digest=digest, error=exc)
        except OSError as exc:  # `.env` unreadable
            return Reload("unreadable", error=exc)
        except Exception as exc:  # a loader bug must not leave a traceback to the user
            log.debug("loading %s failed", self.path, exc_info=True)
            refused = RuleFileRefused(str(self.path), f"cannot be loaded ({type(exc).__name__})")
            return Reload("refused", key=key, digest=digest, error=refused)
        return Reload("loaded", key=key, digest=digest, ruleset=ruleset)

    def apply(self, found: Reload) -> None:
        """Record what `inspect()` found; swap in its rule set when it loaded one."""
        if found.kind == "unreadable":
            self.failure = found.reason
            return
        self.failure = None
        if found.key is not None:
            self._key = found.key
        if found.kind == "loaded":
            assert found.ruleset is not None
            self._digest = found.digest
            self._register_secrets(found.ruleset)
            self.ruleset = found.ruleset

    def _register_secrets(self, ruleset: RuleSet) -> None:
        if self.mask is None:
            return
        for channel in ruleset.channels.values():
            for secret in channel_secrets(channel.kind, channel.config):
                self.mask.add(secret)


def _key(found: os.stat_result) -> _Key:
    return (found.st_mtime_ns, found.st_size, found.st_ino)


def _digest(data: bytes, env_file: str | Path | None) -> str:
    """The rule file's content and `.env`'s: `${VAR}` values come from the latter."""
    digest = hashlib.sha256(data)
    if env_file is not None:
        with contextlib.suppress(OSError):  # no `.env` (unreadable: `load_env` says so)
            digest.update(b"\0.env\0" + Path(env_file).read_bytes())
    return digest.hexdigest()
