"""Run ids: ULIDs, 26 Crockford base32 characters, strictly increasing within a process."""

from __future__ import annotations

import random
import time

from taskcast.ids import _ALPHABET, UlidGenerator, _encode, _encode_random


def test_ids_in_a_burst_strictly_increase_and_never_repeat() -> None:
    generate = UlidGenerator().new
    ids = [generate() for _ in range(50_000)]  # many share a millisecond
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(len(run_id) == 26 and set(run_id) <= set(_ALPHABET) for run_id in ids)


def test_an_id_starts_with_its_creation_time_in_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    run_id = UlidGenerator().new()
    after = time.time_ns() // 1_000_000
    stamp = 0
    for char in run_id[:10]:
        stamp = stamp * 32 + _ALPHABET.index(char)
    assert before <= stamp <= after


def test_the_random_part_is_encoded_like_any_other_number() -> None:
    rng = random.Random(7)
    values = [0, 1, 1023, 1024, 2**79, 2**80 - 1, *(rng.getrandbits(80) for _ in range(10_000))]
    for value in values:
        assert _encode_random(value) == _encode(value, 16), value
