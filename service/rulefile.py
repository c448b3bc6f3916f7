"""The rule file on disk: reading it, noticing edits, and keeping the last rule set that
validated. The daemon reloads through it; a refused edit leaves `ruleset` as it was."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from pydantic import BaseModel, SecretStr

from service.config import load_env
from service.logs import SecretMask
from service.rules import ChannelCheck, RuleSet, load_rules


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
    ) -> None:
        self.path = path
        self.channel_check = channel_check
        self.env_file = env_file
        self.channel_configs = channel_configs
        self.mask = mask
        self.ruleset: RuleSet | None = None
        self._digest: str | None = None
        self._stat: tuple[int, int] | None = None

    def load(self) -> RuleSet:
        """Read and validate the file; raises RuleFileError or OSError. Keeps the old set."""
        text = self.path.read_text(encoding="utf-8")
        ruleset = load_rules(
            text,
            source=str(self.path),
            env=load_env(self.env_file),
            channel_configs=self.channel_configs,
            channel_check=self.channel_check,
        )
        self._digest = hashlib.sha256(text.encode()).hexdigest()
        self._register_secrets(ruleset)
        self.ruleset = ruleset
        return ruleset

    def changed(self) -> bool:
        """Cheap check first (mtime, size), then the content hash."""
        try:
            stat = self.path.stat()
            key = (stat.st_mtime_ns, stat.st_size)
            if key == self._stat:
                return False
            self._stat = key
            digest = hashlib.sha256(self.path.read_bytes()).hexdigest()
        except OSError:
            return False
        return digest != self._digest

    def _register_secrets(self, ruleset: RuleSet) -> None:
        if self.mask is None:
            return
        for channel in ruleset.channels.values():
            for secret in _secrets_in(channel.config.__dict__.values()):
                self.mask.add(secret)


def _secrets_in(values: Iterable[object]) -> Iterator[str]:
    """Every SecretStr among `values`, also inside dicts and lists (webhook headers)."""
    for value in values:
        if isinstance(value, SecretStr):
            yield value.get_secret_value()
        elif isinstance(value, Mapping):
            yield from _secrets_in(value.values())
        elif isinstance(value, list | tuple):
            yield from _secrets_in(value)
