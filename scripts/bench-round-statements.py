#!/usr/bin/env python3
"""Replays the writer's round on this schema, with and without the attempt row.

Each round inserts N records with one delivery each, and completes the
previous round's deliveries (an attempt row plus the delivery's update, or
the update alone). Prints the time per record of the statements and of the
commit. Python's own cost per statement is in the figures, on both sides.

    python3 scripts/bench-round-statements.py
"""
import os
import sqlite3
import tempfile
import time

MIGRATIONS = os.path.join(os.path.dirname(__file__), "..", "crates", "store", "migrations")
BODY = ('{"kind":"value","deviceId":"dev_01jabcdefghjkmnpqrstvwxyz0","property":"power",'
        '"timestamp":1700000000000,"payload":12.5,"unit":"kW","id":"c-%d-0","receivedAt":1700000000000,"tags":{}}')


def setup(path):
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
    for m in sorted(os.listdir(MIGRATIONS)):
        db.executescript(open(os.path.join(MIGRATIONS, m)).read())
    db.execute("INSERT INTO orgs (id, name, custom_integrations, created_at) VALUES ('org_1', 'o', 0, 0)")
    db.execute("INSERT INTO integrations (id, org_id, name, type_key, direction, enabled, properties, secrets, "
               "metadata, resource_paths, created_at, updated_at) "
               "VALUES ('int_1', 'org_1', 'h', 'WEBHOOK', 'EGRESS', 1, '{}', '{}', '{}', '[]', 0, 0)")
    return db


def bench(with_attempts, rounds, per):
    with tempfile.TemporaryDirectory() as dir:
        db = setup(os.path.join(dir, "round.db"))
        n, previous, stmts, commits = 0, [], 0.0, 0.0
        for _ in range(rounds):
            started = time.perf_counter()
            db.execute("BEGIN IMMEDIATE")
            current = []
            for _ in range(per):
                n += 1
                rid, did = f"rec_{n:026d}", f"dlv_{n:026d}"
                db.execute("INSERT INTO records (id, org_id, client_id, device_id, kind, property, ts, received_at, "
                           "body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (org_id, client_id) DO NOTHING",
                           (rid, "org_1", f"c-{n}-0", "dev_1", "value", "power", 1700000000000, 1700000000000,
                            BODY % n))
                db.execute("INSERT INTO deliveries (id, org_id, integration_id, record_id, status, attempts, "
                           "retry_from, next_attempt_at, lease_until, created_at, updated_at) "
                           "VALUES (?, ?, ?, ?, 'pending', 0, 0, ?, ?, ?, ?)",
                           (did, "org_1", "int_1", rid, n, n + 30000, n, n))
                current.append(did)
            for did in previous:
                if with_attempts:
                    db.execute("INSERT INTO delivery_attempts (delivery_id, number, started_at, duration_ms, "
                               "outcome, status_code, remote_id, error, response_excerpt, target) "
                               "VALUES (?, 1, ?, 1, 'delivered', 200, ?, NULL, '', 'http://127.0.0.1:1/in') "
                               "ON CONFLICT (delivery_id, number) DO NOTHING", (did, n, did))
                db.execute("UPDATE deliveries SET status = 'succeeded', attempts = 1, next_attempt_at = ?2, "
                           "lease_until = 0, updated_at = ?2, completed_at = ?2, target = 'http://127.0.0.1:1/in', "
                           "last_error = NULL WHERE id = ?1", (did, n))
            previous = current
            statements_done = time.perf_counter()
            db.execute("COMMIT")
            stmts += statements_done - started
            commits += time.perf_counter() - statements_done
        db.close()
    records = rounds * per
    return stmts / records * 1e6, commits / records * 1e6


def main():
    for per in (20, 1000):
        for with_attempts in (True, False):
            s, c = bench(with_attempts, 60000 // per, per)
            label = "with the attempt row" if with_attempts else "update alone"
            print(f"{per:5} records a round, {label:21} statements {s:5.1f} µs/record, "
                  f"commit {c:5.1f}, total {s + c:5.1f}")


if __name__ == "__main__":
    main()
