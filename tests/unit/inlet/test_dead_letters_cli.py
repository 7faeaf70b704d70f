"""`inlet dead-letters`: argument handling and the table an operator reads (the commands
themselves run against a real nats-server in tests/integration/test_dead_letters.py)."""

import pytest

from inlet import dead_letters
from inlet.config import load


def test_replay_needs_sequences_or_all(capsys: pytest.CaptureFixture[str]) -> None:
    assert dead_letters.main(["replay"], load({})) == 2
    assert "--all" in capsys.readouterr().err


def test_filters_and_sequences_parse() -> None:
    args = dead_letters.parser().parse_args(["replay", "3", "7", "--reason", "apply_failed", "--keep"])
    assert (args.seqs, args.reason, args.keep, args.all) == ([3, 7], "apply_failed", True, False)
    assert dead_letters.parser().parse_args(["ls", "--json", "--sandbox", "dev"]).sandbox == "dev"


def test_the_table_names_reason_subject_and_time() -> None:
    letter = dead_letters.DeadLetter(seq=4, time="2026-12-02T13:00:00.000Z", consumer="profile-0", reason="apply_failed",
                                     subject="inlet.prod.record.0", stream_seq=12, message_id="O/prod/d/r/u1",
                                     detail="ValidationError('Expected `object`')", bytes=80)
    header, row = dead_letters._table([(letter, b"")]).splitlines()
    assert header.split() == ["SEQ", "TIME", "CONSUMER", "REASON", "SUBJECT", "MESSAGE", "ID", "DETAIL"]
    assert row.split()[:6] == ["4", "2026-12-02T13:00:00.000Z", "profile-0", "apply_failed", "inlet.prod.record.0", "O/prod/d/r/u1"]
    assert dead_letters._table([]) == "No dead letters."
