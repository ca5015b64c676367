"""The database-wide oracle passes a clean History Log and catches each kind of violation."""

from __future__ import annotations

from .checker import Fault, Misconfig, Record, Request, check
from .oracle import DatabaseLog, HistoryRow, Take, check_database


def clean() -> DatabaseLog:
    """cfgctl init's two rows (epoch 0), then epoch 1 by confserv and epoch 3 by backup."""
    history = [HistoryRow(1, 0, "add", "Tenant", "Environment"), HistoryRow(2, 0, "add", "Person")]
    history += [HistoryRow(s, 1, name=f"k{s}") for s in (3, 4, 5)]
    history += [HistoryRow(s, 3, name=f"k{s}") for s in (6, 7)]
    takes = [Take(1, "confserv"), Take(2, "backup"), Take(3, "backup", forced=True)]
    return DatabaseLog(history, takes, lease_epoch=3, lease_holder="backup", last_serial=7)


def ack(serial: int, epoch: int, server: str | None = "confserv", key: str = "") -> Request:
    return Request("w", "write", 0, 0, "ok", serial, epoch, server, key or f"k{serial}")


def test_a_clean_database_passes() -> None:
    acked = [ack(3, 1), ack(4, 1), ack(7, 3, "backup"), ack(5, 1, None)]
    assert check_database(clean(), acked, [(0.0, 1, "confserv"), (5.0, 3, "backup")]) == []


def test_serials_with_a_gap_a_duplicate_or_a_wrong_counter() -> None:
    db = clean()
    db.history = [r for r in db.history if r.serial != 4] + [HistoryRow(6, 3, name="again")]
    db.last_serial = 9
    text = "\n".join(check_database(db))
    assert "serials issued twice in the History Log: 6" in text
    assert "the History Log has a gap: serials 4 are missing" in text
    assert "the serial counter is 9 but the History Log ends at 7" in text
    db = clean()
    db.history = db.history[2:]  # starts at 3: the first two are gone
    assert "serials 1-2 are missing" in "\n".join(check_database(db))


def test_epochs_that_go_back_or_interleave() -> None:
    db = clean()
    db.history[3] = HistoryRow(4, 3, name="k4")  # epoch 3 at serial 4, then epoch 1 at 5
    text = "\n".join(check_database(db))
    assert "serial 5 is at epoch 1 after serial 4 at epoch 3" in text
    assert "epoch 1's writes are not one run (serials 3, 5): epoch 3 wrote in between" in text
    db = clean()
    db.lease_epoch = 2
    assert "the lease is at epoch 2, behind the History Log's epoch 3" in "\n".join(
        check_database(db)
    )


def test_two_writers_in_one_epoch_or_a_writer_outside_the_pair() -> None:
    db = clean()
    db.takes.append(Take(3, "confserv"))
    db.takes.append(Take(4, "third"))
    db.takes.append(Take(5, "confserv (duplicate)"))
    db.lease_holder = "third"
    text = "\n".join(check_database(db))
    assert "epoch 3 was taken 2 times: by backup and confserv" in text
    assert "third, which is not a member of the pair, took the lease at epoch 4" in text
    assert "confserv (duplicate), which is not a member of the pair, took the lease at epoch 5" in (
        text
    )
    assert "the lease is at epoch 3, behind epoch 5 taken in a log" in text
    assert "the lease is held by third, not a member of the pair" in text
    db = clean()
    db.takes = [t for t in db.takes if t.epoch != 3]
    text = "\n".join(check_database(db))
    assert "serials 6-7 were written at epoch 3, which no server's log shows taken" in text


def test_acknowledged_writes_must_be_there_as_told() -> None:
    acked = [
        ack(8, 3, "backup"),  # beyond the History Log
        ack(4, 2),  # told epoch 2, the History Log has 1
        ack(5, 1, key="other"),  # serial 5 is another object
        ack(6, 3, "confserv"),  # backup took epoch 3
    ]
    text = "\n".join(check_database(clean(), acked, [(1.0, 3, "confserv")]))
    assert "acknowledged write k8 (serial 8, epoch 3) is not in the History Log" in text
    assert "write k4 (serial 4, epoch 2): the History Log has serial 4 at epoch 1" in text
    assert "write other (serial 5, epoch 1): the History Log's serial 5 is DN k5" in text
    assert "(serial 6, epoch 3) was acknowledged by confserv, but backup took epoch 3" in text
    assert "confserv was seen primary at epoch 3, which backup took" in text


def test_the_checker_runs_the_oracle_on_a_record_that_holds_the_database() -> None:
    record = Record(detection_bound=2.0, database=clean())
    record.requests = [ack(9, 3, "backup")]
    record.committed = {"k9"}
    assert check(record) == ["acknowledged write k9 (serial 9, epoch 3) is not in the History Log"]
    record.final_read_error = "backup refused the final read: it serves nothing"
    assert check(record)[0] == record.final_read_error


def test_misconfigured_processes_must_exit_2_and_leave_the_epoch_alone() -> None:
    record = Record(detection_bound=2.0, settle=6.0)
    record.misconfigs = [
        Misconfig("third-master", "third", 1.0, 31.0, None),
        Misconfig("third-master", "stray", 1.0, 2.0, 0, "confserv: started"),
        Misconfig("duplicate-start", "confserv (duplicate)", 1.0, 2.0, 2, ""),
        Misconfig("duplicate-start", "backup (duplicate)", 3.0, 4.0, 2, "confserv: x", 1, 2),
    ]
    record.faults = [Fault("duplicate-start", "duplicate-start primary", 3.0, 1.0)]
    text = "\n".join(check(record))
    assert "third-master third was still running 30 s after it started" in text
    assert "third-master stray exited with code 0, not 2: 'confserv: started'" in text
    assert "duplicate-start confserv (duplicate) exited 2 without its one line" in text
    assert "the primary's epoch went from 1 to 2 while duplicate-start backup" in text
    record.faults.append(Fault("kill", "kill primary", 3.5, 0.0))
    assert "epoch went from" not in "\n".join(check(record))  # the kill may have moved it
