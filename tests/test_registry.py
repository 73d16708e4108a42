"""Process-wide state in one shape (issue 28, item 8): every registry is a
``sessionkit.registry.Registry``, and its ``reset()`` gives back a fresh process's state."""

from __future__ import annotations

import gc
import signal
import sys

import pytest

from sessionkit.registry import Registry, registries


class Thing:
    def __init__(self, name: str) -> None:
        self.name = name


def test_values_by_key():
    r: Registry[str, Thing] = Registry("tests.by_key")
    a = r.put("a", Thing("a"))
    assert r.get("a") is a and "a" in r and len(r) == 1 and r.get("b") is None
    assert r.get_or_make("a", lambda: Thing("other")) is a
    made = r.get_or_make("a", lambda: Thing("new"), keep=lambda t: t.name == "new")
    assert made.name == "new" and r.get("a") is made, "a value keep refuses is replaced"
    assert r.pop("a") is made and r.pop("a") is None and len(r) == 0


def test_a_weak_registry_keeps_nothing_alive():
    r: Registry[int, Thing] = Registry("tests.weak", weak=True)
    kept, dropped = Thing("kept"), Thing("dropped")
    r.add(kept)
    r.add(dropped)
    assert sorted(t.name for t in r) == ["dropped", "kept"]
    del dropped
    gc.collect()
    assert [t.name for t in r] == ["kept"]
    r.discard(kept)
    assert list(r) == []


def test_reset_empties_and_undoes_what_its_owner_installed():
    undone = []
    r: Registry[str, int] = Registry("tests.reset", on_reset=lambda: undone.append(r.get("x")))
    r.put("x", 1)
    r.reset()
    assert undone == [1], "on_reset runs first: it may read what it undoes"
    assert len(r) == 0


def test_the_four_process_wide_registries_are_registries():
    import sessionkit.jobs  # noqa: F401  (each module makes its registries at import)
    import sessionkit.notebook  # noqa: F401
    import sessionkit.sessions  # noqa: F401
    import sessionkit.stopping  # noqa: F401

    assert {"stopping.primaries", "stopping.hooks", "jobs.interrupted", "jobs.live", "notebook.kernel_primaries",
            "sessions.drop_watchers", "store.schemes"} <= set(registries())
    assert all(isinstance(r, Registry) for r in registries().values())


def test_resetting_the_store_schemes_leaves_the_built_in_ones():
    from sessionkit.store import SCHEMES, known_schemes, register_scheme
    from sessionkit.store.memory import MemoryStore

    built_in = known_schemes()
    register_scheme("testreset", lambda url: MemoryStore())
    assert "testreset" in known_schemes()
    SCHEMES.reset()
    assert known_schemes() == built_in


class Primaryish:
    """A stand-in for handover.Primary as stopping sees it (``stopping.Stoppable``): what
    is under test is the SIGTERM bookkeeping, not a lease."""

    def __init__(self) -> None:
        self.stopped: list[str] = []

    def stop_now(self, reason: str) -> bool:
        self.stopped.append(reason)
        return True


def test_resetting_stopping_restores_the_programs_sigterm_handler():
    from sessionkit import stopping

    own = lambda signum, frame: None  # noqa: E731
    previous = signal.signal(signal.SIGTERM, own)
    try:
        primary = Primaryish()
        stopping.install(primary)
        assert signal.getsignal(signal.SIGTERM) is not own
        stopping.HOOKS.reset()
        assert signal.getsignal(signal.SIGTERM) is own and len(stopping.PRIMARIES) == 0
        assert stopping.requested() is None
        stopping.install(primary)  # and it installs again as in a fresh process
        assert signal.getsignal(signal.SIGTERM) is not own
        stopping.uninstall(primary)
        assert signal.getsignal(signal.SIGTERM) is own
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_resetting_the_interrupted_jobs_removes_the_excepthook(tmp_path):
    from sessionkit.clock import FakeClock
    from sessionkit.jobs import Job
    from sessionkit.jobs.outcome import OUTCOMES

    OUTCOMES.interrupted.reset()  # as in a fresh process, whatever tests ran before
    before = sys.excepthook
    job = Job(tmp_path / "store", "j", clock=FakeClock())
    for _ in job.track(range(3), display=False):
        break  # the loop left early: the job is watched until the cell or script ends
    try:
        assert sys.excepthook is not before
        assert job in list(OUTCOMES.interrupted)
    finally:
        OUTCOMES.interrupted.reset()
    assert sys.excepthook is before and job not in list(OUTCOMES.interrupted)
    job.record_outcome(None)  # settled by hand now: paused


@pytest.fixture(autouse=True)
def _forget_test_registries():
    yield
    for name in [n for n in registries() if n.startswith("tests.")]:
        registries()[name].reset()


MUTATORS = {"append", "add", "update", "pop", "popitem", "discard", "remove", "clear", "setdefault", "extend",
            "insert"}


def process_wide_state_outside_registries() -> list[str]:
    """Module-level containers a sessionkit module changes (``_x.append``, ``_x[k] = v``,
    ``del _x[k]``) and names it rebinds through ``global``: process-wide state kept in its own
    style instead of a Registry; as "module: name"."""
    import ast
    from pathlib import Path

    import sessionkit

    root = Path(sessionkit.__file__).resolve().parent
    found = set()
    for path in sorted(root.rglob("*.py")):
        module = ".".join(path.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__")
        tree = ast.parse(path.read_text(), str(path))
        if module == "sessionkit.registry":
            continue  # the list of registries itself
        top = {t.id for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign)) and not (
                   isinstance(n.value, ast.Call) and ast.unparse(n.value.func).endswith("Registry"))
               for t in (n.targets if isinstance(n, ast.Assign) else [n.target]) if isinstance(t, ast.Name)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Global):
                found |= {f"{module}: {name} (global)" for name in node.names}
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MUTATORS
                  and isinstance(node.func.value, ast.Name) and node.func.value.id in top):
                found.add(f"{module}: {node.func.value.id}")
            elif (isinstance(node, ast.Subscript) and isinstance(node.ctx, (ast.Store, ast.Del))
                  and isinstance(node.value, ast.Name) and node.value.id in top):
                found.add(f"{module}: {node.value.id}")
    return sorted(found)


#: Process-wide state on main kept in its own style when this check was written (issue 28
#: names four; these are the rest). Make each a Registry and delete its entry.
KNOWN_OTHER_STATE = {
    "sessionkit.config: _notifiers",  # the webhook notifier per config (once per process)
    "sessionkit.events: _listeners",  # sched: event listeners
    "sessionkit.events: _unflushed",
    "sessionkit.events: _exit_hook (global)",
    "sessionkit.notify: _open_webhooks",
    "sessionkit.records: _reported",  # damaged records logged once
    "sessionkit.store.local: _warned_roots",  # mounted-Drive warning once per folder
    "sessionkit.store.memory: _spaces",  # the named memory:// stores
    "sessionkit.store.objects: _checked_here",  # object stores whose preconditions were probed
}


def test_process_wide_state_lives_in_registries():
    from support.allowlist import check

    check(process_wide_state_outside_registries(), KNOWN_OTHER_STATE, "KNOWN_OTHER_STATE",
          "keep process-wide state in a sessionkit.registry.Registry (with reset() for tests)")
