"""The local runner's process-wide settings keep what they replace: the same values, less work."""

from __future__ import annotations

import collections
import json

import numpy as np
import pytest
from apache_beam.runners.worker import statecache

from imgtfx.pipeline import local_settings


@pytest.fixture
def beams_own_weights(monkeypatch):
    own = statecache.get_deep_size
    monkeypatch.setattr(statecache, "get_deep_size", own)  # restored after the test
    return own


class _Holder:
    def __init__(self):
        self.module = json  # a module and a function: Beam's filter leaves them out
        self.function = json.dumps
        self.counts = collections.Counter("abracadabra")


def test_state_cache_weights_are_beams_own_without_the_modules_pass(beams_own_weights):
    values = [
        [("train/서울/경복궁/a.jpg", 3, b"\x00" * 29)] * 50,
        {"vocabulary": [str(i) for i in range(1049)], "names": {"7": "경복궁"}},
        np.zeros((64, 64, 3), np.float32),
        _Holder(),
    ]
    own = [beams_own_weights(v) for v in values]
    assert local_settings.cheap_state_cache_weights()
    assert statecache.get_deep_size is not beams_own_weights
    assert [statecache.get_deep_size(v) for v in values] == own
