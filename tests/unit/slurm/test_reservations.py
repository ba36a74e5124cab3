from datetime import datetime

from spawners.slurm.reservations import parse_reservations

# Real `scontrol -o show reservation` output from Slurm 22.05 (the local cluster).
REAL = (
    "ReservationName=probe StartTime=2026-11-24T06:35:33 EndTime=2026-11-24T06:45:33 "
    "Duration=00:10:00 Nodes=localhost NodeCnt=1 CoreCnt=2 Features=(null) PartitionName=cpu "
    "Flags=IGNORE_JOBS,SPEC_NODES   NodeName=localhost CoreIDs=0-1 TRES=cpu=2 "
    "Users=demo05,demo06 Groups=(null) Accounts=(null) Licenses=(null) State=ACTIVE "
    "BurstBuffer=(null) Watts=n/a MaxStartDelay=(null)\n"
    "ReservationName=probe2 StartTime=2026-11-24T07:35:33 EndTime=2026-11-24T07:45:33 "
    "Duration=00:10:00 Nodes=localhost NodeCnt=1 CoreCnt=64 Features=(null) "
    "PartitionName=(null) Flags=IGNORE_JOBS,SPEC_NODES TRES=cpu=64 Users=(null) Groups=(null) "
    "Accounts=training Licenses=(null) State=INACTIVE BurstBuffer=(null) Watts=n/a "
    "MaxStartDelay=(null)\n"
)


def test_real_output_parses():
    first, second = parse_reservations(REAL)
    assert (first.name, first.partition, first.users, first.active) == (
        "probe",
        "cpu",
        ("demo05", "demo06"),
        True,
    )
    assert first.start == datetime(2026, 11, 24, 6, 35, 33)
    assert (second.partition, second.accounts, second.active) == (None, ("training",), False)
    assert parse_reservations("No reservations in the system\n") == []


def test_users_accounts_and_exclusions():
    users, accounts = parse_reservations(REAL)
    assert users.usable_by("demo05", []) and not users.usable_by("demo07", ["training"])
    assert accounts.usable_by("demo07", ["training"]) and not accounts.usable_by("demo07", [])
    (excluding,) = parse_reservations("ReservationName=x Users=-demo09 State=ACTIVE")
    assert excluding.usable_by("demo01", []) and not excluding.usable_by("demo09", [])
    (both,) = parse_reservations("ReservationName=x Users=demo01 Accounts=proj State=ACTIVE")
    assert both.usable_by("demo01", ["proj"]) and not both.usable_by("demo01", ["other"])
    (groups,) = parse_reservations("ReservationName=x Groups=course State=ACTIVE")
    assert groups.usable_by("a", [], ["course"]) and not groups.usable_by("a", [], ["staff"])
    (nobody,) = parse_reservations("ReservationName=x Users=(null) Accounts=(null) State=ACTIVE")
    assert not nobody.usable_by("demo01", ["proj"])
