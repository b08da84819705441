"""The verdict cache: every verdict an API judge was paid for, so that no run pays for it twice.

A verdict is P(first ≻ second) for one order of one comparison, keyed by `verdict_key`: the judge's
key (endpoint model, template, system prompt, sampling settings) and the prompt and the two answers
as sent. The run's cache is `RUN/judge/verdicts.sqlite`; a shared one (`judge_api.shared_cache`)
is read after it and written with it.

SQLite, because each verdict must be on disk the moment it is paid for: a run killed by SIGKILL
between two requests must not ask for the first again. Every verdict is its own transaction (WAL
journal), so a killed writer leaves every committed verdict and never half of one, as the other
artifacts' atomic renames do; rewriting a JSON file per verdict would cost O(n²) writes. A verdict
that could not be had is recorded in `failures` with its reason, and never stored as a verdict."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path

SCHEMA = ("CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, p REAL NOT NULL, how TEXT "
          "NOT NULL, attempts INTEGER NOT NULL, at REAL NOT NULL)",
          "CREATE TABLE IF NOT EXISTS failures (key TEXT PRIMARY KEY, reason TEXT NOT NULL, "
          "attempts INTEGER NOT NULL, at REAL NOT NULL)")


def verdict_key(judge_key: str, prompt: str, first: str, second: str) -> str:
    """The cache key of one order of one comparison (SHA-256 of the judge's key and the texts)."""
    return hashlib.sha256(json.dumps([judge_key, prompt, first, second]).encode()).hexdigest()


class _Store:
    """One SQLite file (or memory), one connection shared by the judge's threads under a lock."""

    def __init__(self, path: Path | None):
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        # (a shared cache may be used by two runs at once: wait for the other's write, do not fail)
        self.db = sqlite3.connect(":memory:" if path is None else str(path), timeout=60,
                                  check_same_thread=False, isolation_level=None)
        if path is not None:
            self.db.execute("PRAGMA journal_mode=WAL")
            # committed verdicts survive the process being killed
            self.db.execute("PRAGMA synchronous=NORMAL")
        for statement in SCHEMA:
            self.db.execute(statement)
        self.lock = threading.Lock()

    def get(self, keys: list[str]) -> dict[str, float]:
        out = {}
        with self.lock:
            for s in range(0, len(keys), 500):  # (SQLite's limit on bound parameters)
                chunk = keys[s:s + 500]
                rows = self.db.execute(f"SELECT key, p FROM verdicts WHERE key IN "
                                       f"({','.join('?' * len(chunk))})",
                                       chunk).fetchall()
                out.update(rows)
        return out

    def put(self, key: str, p: float, how: str, attempts: int) -> None:
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?, ?)",
                            (key, p, how, attempts, time.time()))
            self.db.execute("DELETE FROM failures WHERE key = ?", (key,))
            self.db.execute("COMMIT")

    def fail(self, key: str, reason: str, attempts: int) -> None:
        with self.lock:
            self.db.execute("INSERT INTO failures VALUES (?, ?, ?, ?) ON CONFLICT(key) DO UPDATE "
                            "SET reason = excluded.reason, attempts = attempts + "
                            "excluded.attempts, at = excluded.at",
                            (key, reason, attempts, time.time()))

    def close(self) -> None:
        with self.lock:
            self.db.close()


class VerdictCache:
    """The run's verdicts (``path``; None: in memory only) and, optionally, a ``shared`` cache."""

    def __init__(self, path: str | Path | None, shared: str | Path | None = None):
        self.path = Path(path) if path else None
        self.run = _Store(self.path)
        self.shared = _Store(Path(shared).expanduser()) if shared else None

    def get(self, keys: list[str]) -> dict[str, float]:
        """The cached verdicts among ``keys``; those found only in the shared cache are copied into
        the run's (as verdicts that cost this run no call)."""
        found = self.run.get(keys)
        if self.shared is not None:
            rest = [k for k in keys if k not in found]
            more = self.shared.get(rest) if rest else {}
            for k, p in more.items():
                self.run.put(k, p, "shared cache", 0)
            found.update(more)
        return found

    def put(self, key: str, p: float, how: str, attempts: int) -> None:
        self.run.put(key, p, how, attempts)
        if self.shared is not None:
            self.shared.put(key, p, how, attempts)

    def fail(self, key: str, reason: str, attempts: int) -> None:
        self.run.fail(key, reason, attempts)

    def totals(self) -> dict:
        """Over every process that judged into this cache: verdicts held (by how they were read),
        requests paid for, retries, and the verdicts still failed (with their reasons)."""
        with self.run.lock:
            db = self.run.db
            how = dict(db.execute("SELECT how, COUNT(*) FROM verdicts GROUP BY how").fetchall())
            ok = db.execute("SELECT COUNT(*), COALESCE(SUM(attempts), 0), "
                            "COALESCE(SUM(MAX(attempts - 1, 0)), 0) FROM verdicts").fetchone()
            bad = db.execute("SELECT COUNT(*), COALESCE(SUM(attempts), 0) FROM failures").fetchone()
            reasons = dict(db.execute("SELECT reason, COUNT(*) FROM failures GROUP BY "
                                      "reason").fetchall())
        return {"verdicts": ok[0], "by_how": how, "requests": ok[1] + bad[1],
                "retried": ok[2] + max(bad[1] - bad[0], 0), "failed": bad[0], "failures": reasons}

    def close(self) -> None:
        self.run.close()
        if self.shared is not None:
            self.shared.close()
