"""A starter configuration file (INI, so comments work on every Python): ``templates/sessionkit.ini``."""

from __future__ import annotations

import configparser
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from .runtimes import PRESETS, Runtime

__all__ = ["Config", "load"]


@dataclass(frozen=True)
class Config:
    store: str
    runtime: Runtime
    warning_at: float
    handover_at: float
    lease_ttl: float
    webhook_url: Optional[str]
    webhook_format: str

    def webhook(self):  # -> Optional[notify.WebhookNotifier]
        """The WebhookNotifier for the configured URL (started on first call), or None.
        Idempotent: calling it again (re-running a cell) returns the same notifier, so
        each event is sent once, not once per call."""
        if not self.webhook_url:
            return None
        from .notify import WebhookNotifier, is_open

        key = (self.webhook_url, self.webhook_format)
        notifier = _notifiers.get(key)
        if notifier is None or not is_open(notifier):
            notifier = _notifiers[key] = WebhookNotifier(self.webhook_url, format=self.webhook_format)
        return notifier

    def session_options(self) -> dict[str, Any]:
        """What this configuration sets for a Session, Primary or Backup."""
        return {"runtime": self.runtime, "warning_at": self.warning_at, "handover_at": self.handover_at}

    def primary(self, job_id: str, **options: Any) -> Any:  # -> handover.Primary
        """A Primary for ``job_id`` on the configured store, runtime, phase thresholds and
        lease ttl (``options`` override them), with the configured webhook started."""
        from .handover import Primary

        self.webhook()
        return Primary(self.store, job_id, **{"ttl": self.lease_ttl, **self.session_options(), **options})

    def backup(self, label: Optional[str] = None, **options: Any) -> Any:  # -> handover.Backup
        """A Backup on the configured store, runtime, phase thresholds and lease ttl."""
        from .handover import Backup

        self.webhook()
        return Backup(self.store, label, **{"ttl": self.lease_ttl, **self.session_options(), **options})


_notifiers: dict[tuple[str, str], Any] = {}  # (url, format) -> the WebhookNotifier Config.webhook started


def load(path: Union[str, Path]) -> Config:
    """Read a sessionkit.ini; a missing file or a bad value is a ValueError naming it."""
    parser = configparser.ConfigParser()
    if not parser.read(path):
        raise ValueError(f"no configuration file at {path} (copy templates/sessionkit.ini)")

    def number(section: str, key: str, default: Optional[float]) -> Optional[float]:
        raw = parser.get(section, key, fallback=None)
        if raw is None or raw.strip() == "":
            return default
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"{path}: [{section}] {key} = {raw!r} is not a number of seconds") from None

    preset = parser.get("runtime", "preset", fallback="colab-free")
    if preset not in PRESETS:
        raise ValueError(f"{path}: [runtime] preset = {preset!r}; use one of {', '.join(PRESETS)}")
    base = PRESETS[preset]
    max_runtime = number("runtime", "max_runtime", base.max_runtime)
    idle = number("runtime", "idle_timeout", base.idle_timeout)
    runtime = base if (max_runtime, idle) == (base.max_runtime, base.idle_timeout) else \
        Runtime(max_runtime, idle, name=f"{preset} (configured)")
    warning_at, handover_at = number("phases", "warning_at", 3600.0), number("phases", "handover_at", 900.0)
    if not warning_at > handover_at >= 0:
        raise ValueError(f"{path}: [phases] warning_at must be greater than handover_at")
    return Config(store=parser.get("store", "url", fallback="sessionkit-state"), runtime=runtime,
                  warning_at=warning_at, handover_at=handover_at, lease_ttl=number("lease", "ttl", 60.0),
                  webhook_url=parser.get("webhook", "url", fallback=None) or None,
                  webhook_format=parser.get("webhook", "format", fallback="json"))
