"""The client's message encoding (ci_guard/warm/client.py) is JSON exactly as the json module
writes and reads it: the server decodes with json.loads, and an environment may hold any string."""

from __future__ import annotations

import json
import random

import pytest

from ci_guard.warm.client import decode, encode


def _text(rng: random.Random) -> str:
    pools = [(0x20, 0x7F), (0x00, 0x20), (0x80, 0xD800), (0xDC80, 0xDD00), (0x10000, 0x110000)]
    return "".join(chr(rng.randrange(*rng.choice(pools))) if rng.random() > 0.1 else rng.choice('"\\/')
                   for _ in range(rng.randrange(0, 24)))


def test_encode_and_decode_agree_with_the_json_module():
    rng = random.Random(13)
    for _ in range(3000):
        value = {_text(rng): [_text(rng), rng.randrange(-2**70, 2**70), None, True, False, {_text(rng): _text(rng)}]
                 for _ in range(rng.randrange(0, 5))}
        text = encode(value)
        assert text == json.dumps(value, separators=(",", ":"))  # surrogate escapes included
        assert decode(text.encode()) == json.loads(text) == value


def test_an_environment_with_non_utf8_bytes_round_trips():
    env = {"NAME": "caf\udce9", "EMPTY": "", "QUOTE": 'a"b\\c\n'}  # os.environ's surrogate escapes
    assert decode(encode({"env": env}).encode()) == {"env": env}


@pytest.mark.parametrize("data", [b"", b"{", b"[1,]", b'{"a":1} x', b'{"a":NaN}', b'{"a":Infinity}', b"\xff"])
def test_what_is_not_one_json_value_is_a_value_error(data):
    with pytest.raises(ValueError):
        decode(data)


@pytest.mark.parametrize("value", [{"a": 1.5}, {"a": b"x"}, {1: "a"}, {"a": object()}])
def test_what_json_would_not_carry_exactly_is_refused(value):
    with pytest.raises(TypeError):
        encode(value)
