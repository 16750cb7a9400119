"""The results store of an evaluation: an append-only SQLite database (WAL journal).

Every finished job is inserted in its own transaction the moment its result reaches the
client, so a run that is killed keeps everything it finished, and ``--resume`` runs only
the jobs the store lacks.  A job's key is (network, split, configuration, QP, image): it
is the primary key, rows are inserted with ``INSERT OR IGNORE`` and never updated or
deleted, so two runs writing one store at the same time (SQLite's locking serialises their
transactions; a writer waits up to ``BUSY_TIMEOUT_S`` for the lock) can neither corrupt it
nor count a job twice.  The store also records, per network, the fingerprint of its
weights and, per configuration name, its encoder fields: a run whose network or
configuration has the same name but other content is refused, since its rows would mix
with the stored ones.

Tables: ``meta`` (format version), ``networks``, ``configs``, ``runs`` (options, planned
job count, start and end time), ``jobs`` (the scalar results as JSON, the embeddings as
float32 blobs), ``skipped`` (unreadable images, with the reason) and ``failed`` (jobs whose
coding was refused with a refcodec error).  The store's path is on the machine of the
client: the workers send their results to it and never open it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import numpy as np

from .sources import EvaluationError

FORMAT = "refcodec-eval-store/1"
BUSY_TIMEOUT_S = 120.0
_EMBEDDINGS = ("embedding_pristine", "embedding_reconstructed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS networks (name TEXT PRIMARY KEY, fingerprint TEXT NOT NULL,
    info TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS configs (name TEXT PRIMARY KEY, fields TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY AUTOINCREMENT, started REAL NOT NULL,
    finished REAL, command TEXT, options TEXT NOT NULL, planned INTEGER NOT NULL,
    engine TEXT);
CREATE TABLE IF NOT EXISTS jobs (key TEXT PRIMARY KEY, network TEXT NOT NULL,
    split TEXT NOT NULL, config TEXT NOT NULL, qp INTEGER NOT NULL, image TEXT NOT NULL,
    image_index INTEGER NOT NULL, run INTEGER NOT NULL, written REAL NOT NULL,
    row TEXT NOT NULL, embedding_pristine BLOB, embedding_reconstructed BLOB);
CREATE TABLE IF NOT EXISTS skipped (network TEXT NOT NULL, image TEXT NOT NULL,
    reason TEXT NOT NULL, run INTEGER NOT NULL, PRIMARY KEY (network, image));
CREATE TABLE IF NOT EXISTS failed (key TEXT PRIMARY KEY, reason TEXT NOT NULL,
    run INTEGER NOT NULL);
"""


def job_key(network: str, split: str, config: str, qp: int, image: str) -> str:
    return f"{network}|{split}|{config}|{qp}|{image}"


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    raise TypeError(type(o).__name__)


class ResultStore:
    """An evaluation results store (module doc).  ``ResultStore(path)`` creates it when it
    does not exist; ``create=False`` refuses a missing one."""

    def __init__(self, path, create: bool = True):
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise EvaluationError("no results store there", path=str(self.path))
        if self.path.exists() and not self.path.is_file():
            raise EvaluationError("the results store is not a regular file",
                                  path=str(self.path))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S,
                                       isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            with self._tx():
                for stmt in filter(str.strip, _SCHEMA.split(";")):
                    self._db.execute(stmt)
                self._db.execute("INSERT OR IGNORE INTO meta VALUES ('format', ?)", (FORMAT,))
            fmt = self._db.execute("SELECT value FROM meta WHERE key='format'").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise EvaluationError(f"not a results store: {exc}", path=str(self.path)) from None
        if fmt != FORMAT:
            raise EvaluationError(f"results store of format {fmt!r}, this refcodec reads "
                                  f"{FORMAT!r}", path=str(self.path))

    # -- transactions ---------------------------------------------------------------
    class _Tx:
        def __init__(self, db):
            self.db = db

        def __enter__(self):
            self.db.execute("BEGIN IMMEDIATE")

        def __exit__(self, exc_type, *_):
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")

    def _tx(self):
        return self._Tx(self._db)

    def close(self):
        self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()

    # -- identities ------------------------------------------------------------------
    def check_network(self, name: str, fingerprint: str, info: dict):
        """Record a network, or refuse one whose name is stored with other weights."""
        with self._tx():
            row = self._db.execute("SELECT fingerprint FROM networks WHERE name=?",
                                   (name,)).fetchone()
            if row is None:
                self._db.execute("INSERT INTO networks VALUES (?, ?, ?)",
                                 (name, fingerprint, json.dumps(info, default=str)))
            elif row[0] != fingerprint:
                raise EvaluationError(
                    f"network {name!r} is stored with weights {row[0][:16]}, this run has "
                    f"{fingerprint[:16]}: use another --store or another network name",
                    path=str(self.path))

    def check_config(self, name: str, fields: dict):
        text = json.dumps(fields, sort_keys=True)
        with self._tx():
            row = self._db.execute("SELECT fields FROM configs WHERE name=?",
                                   (name,)).fetchone()
            if row is None:
                self._db.execute("INSERT INTO configs VALUES (?, ?)", (name, text))
            elif row[0] != text:
                raise EvaluationError(
                    f"configuration {name!r} is stored as {row[0]}, this run has {text}: "
                    f"give it another name", path=str(self.path))

    # -- runs ------------------------------------------------------------------------
    def begin_run(self, options: dict, planned: int, command: str = "",
                  engine: str = "") -> int:
        with self._tx():
            cur = self._db.execute(
                "INSERT INTO runs (started, command, options, planned, engine) "
                "VALUES (?, ?, ?, ?, ?)",
                (time.time(), command, json.dumps(options, default=str), planned, engine))
        return int(cur.lastrowid)

    def end_run(self, run: int):
        self._db.execute("UPDATE runs SET finished=? WHERE id=?", (time.time(), run))

    def runs(self) -> list[dict]:
        cur = self._db.execute("SELECT id, started, finished, command, options, planned, "
                               "engine FROM runs ORDER BY id")
        return [{"id": i, "started": s, "finished": f, "command": c,
                 "options": json.loads(o), "planned": p, "engine": e}
                for i, s, f, c, o, p, e in cur]

    def networks(self) -> dict:
        return {n: {"fingerprint": f, **json.loads(i)} for n, f, i in
                self._db.execute("SELECT name, fingerprint, info FROM networks")}

    def configs(self) -> dict:
        return {n: json.loads(f) for n, f in
                self._db.execute("SELECT name, fields FROM configs ORDER BY rowid")}

    # -- results ---------------------------------------------------------------------
    def done_keys(self) -> set[str]:
        return {k for (k,) in self._db.execute("SELECT key FROM jobs")}

    def add(self, key: str, row: dict, run: int) -> bool:
        """Insert one job's result (its own transaction); False when the key was there."""
        blobs = [None if row.get(k) is None else
                 np.ascontiguousarray(row[k], dtype=np.float32).tobytes() for k in _EMBEDDINGS]
        scalars = {k: v for k, v in row.items() if k not in _EMBEDDINGS}
        cur = self._db.execute(
            "INSERT OR IGNORE INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (key, row["network"], row["split"], row["config"], int(row["qp"]), row["image"],
             int(row["image_index"]), run, time.time(),
             json.dumps(scalars, default=_json_default), *blobs))
        return cur.rowcount == 1

    def add_skipped(self, network: str, image: str, reason: str, run: int):
        self._db.execute("INSERT OR IGNORE INTO skipped VALUES (?, ?, ?, ?)",
                         (network, image, reason, run))

    def add_failed(self, key: str, reason: str, run: int):
        self._db.execute("INSERT OR IGNORE INTO failed VALUES (?, ?, ?)", (key, reason, run))

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])

    def rows(self, embeddings: bool = True) -> list[dict]:
        """Every stored job, in the order (network, split, config, qp, image index)."""
        cols = "row, embedding_pristine, embedding_reconstructed" if embeddings else "row"
        cur = self._db.execute(f"SELECT {cols} FROM jobs ORDER BY network, split, config, qp, "
                               "image_index, image")
        out = []
        for rec in cur:
            row = json.loads(rec[0])
            if embeddings:
                for k, blob in zip(_EMBEDDINGS, rec[1:]):
                    if blob is not None:
                        row[k] = np.frombuffer(blob, dtype=np.float32).astype(np.float64)
            out.append(row)
        return out

    def skipped(self) -> list[dict]:
        return [{"network": n, "image": i, "reason": r} for n, i, r in self._db.execute(
            "SELECT network, image, reason FROM skipped ORDER BY network, image")]

    def failed(self) -> list[dict]:
        return [{"job": k, "reason": r} for k, r in self._db.execute(
            "SELECT key, reason FROM failed ORDER BY key")]

    def integrity(self) -> str:
        return self._db.execute("PRAGMA integrity_check").fetchone()[0]
