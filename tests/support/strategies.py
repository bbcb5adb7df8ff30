"""Hypothesis strategies for what experiment code may hand the API: any scalars, keys and nested
payloads (used by tests/unit/test_properties.py and tests/unit/test_encoding.py)."""

from __future__ import annotations

from hypothesis import strategies as st

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=50),
    st.binary(max_size=20),
)
keys = st.one_of(st.text(max_size=20), st.integers(), st.booleans(), st.none())
payloads = st.dictionaries(
    keys,
    st.recursive(
        scalars,
        lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
        max_leaves=20,
    ),
    max_size=8,
)
