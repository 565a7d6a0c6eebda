"""The running rule set: loaded at start, reloaded on request or when a rule file changes; a broken one is refused."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine.language import ast
from engine.language.diagnostics import render_all
from engine.language.loader import RuleSetNotFound, load_rule_set

log = logging.getLogger("smartcampaign.service")


@dataclass(frozen=True)
class Reload:
    ok: bool
    version: int
    campaigns: int
    errors: list[str] = field(default_factory=list)  # `FILE:LINE:COL: error: MESSAGE`
    rendered: str = ""  # the errors with their source lines and carets, as `smartcampaign check` prints them


class RuleBook:
    """The current rule set and its version (workers rebuild their interpreter when the version moves)."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = paths
        self._lock = threading.Lock()
        self.rule_set: ast.RuleSet | None = None
        self.version = 0
        self.loaded_at: float | None = None

    def load(self) -> Reload:
        """Loads the rule files; a rule set with errors (or a missing path) is refused and the running one stays."""
        with self._lock:
            try:
                loaded = load_rule_set(self.paths, use_cache=False)
            except RuleSetNotFound as error:
                log.error("rules not loaded: %s", error)
                return Reload(False, self.version, self._count(), [str(error)], str(error))
            if loaded.errors:
                messages = [d.header() for d in loaded.errors]
                if self.rule_set is None:
                    log.error("rules not loaded: %d errors: %s", len(messages), messages[0])
                else:
                    log.error("rules not reloaded, the running rule set stays: %d errors: %s", len(messages),
                              messages[0])  # fmt: skip
                rendered = render_all(loaded.errors, loaded.sources)
                return Reload(False, self.version, self._count(), messages, rendered)
            self.rule_set = loaded.rule_set
            self.version += 1
            self.loaded_at = time.time()
            log.info("rules loaded (version %d): %d smart campaigns", self.version, self._count())
            return Reload(True, self.version, self._count())

    def _count(self) -> int:
        return len(self.rule_set.campaigns) if self.rule_set is not None else 0

    @property
    def loaded(self) -> bool:
        return self.rule_set is not None

    def current(self) -> tuple[ast.RuleSet, int]:
        rule_set = self.rule_set
        if rule_set is None:
            raise RuntimeError("no rule set loaded")
        return rule_set, self.version

    def watch(self, stop: threading.Event) -> None:
        """Reloads whenever a `.campaign` file under the paths changes, until `stop` is set (watchfiles)."""
        from watchfiles import watch

        targets = [str(Path(path)) for path in self.paths]
        for changes in watch(*targets, stop_event=stop, debounce=300, raise_interrupt=False):
            if any(str(changed).endswith(".campaign") for _, changed in changes):
                log.info("rule files changed: reloading")
                self.load()
