"""Properties of C-FIND matching: the SQL form and the Python form of every condition agree
with each other and with an independent reference."""

import datetime as dt
import fnmatch
import functools
import sqlite3

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from triopacs.storage.errors import QueryError
from triopacs.storage.matching import Domain, Wildcard, condition_for, glob_pattern
from triopacs.storage.normalize import fold_name, normalize_date, normalize_datetime, normalize_time

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Characters that are special somewhere: to DICOM (* ?), to GLOB ([ ]), to LIKE (% _),
# to regexes (. ^ $ \), plus non-ASCII with tricky case folding.
ALPHABET = "ab*?[]%_.^$\\ -ÄäßΣσǅ山"
texts = st.text(alphabet="ab[]%_.^$\\ -ÄäßΣσǅ山\n", max_size=12)
patterns = st.text(alphabet=ALPHABET, max_size=10)


@functools.lru_cache(maxsize=1)
def memory_db():
    return sqlite3.connect(":memory:")


def sql_matches(condition, stored):
    """Evaluate the condition's SQL against one value, as the index would."""
    fragment = condition.sql("v")
    if fragment is None:
        return True
    where, params = fragment
    db = memory_db()
    return bool(db.execute(f"SELECT count(*) FROM (SELECT ? AS v) WHERE {where}", (stored, *params)).fetchone()[0])


def reference_wildcard(pattern, text):
    """DICOM wild cards by plain dynamic programming: * any run, ? any one character."""

    @functools.lru_cache(maxsize=None)
    def match(i, j):
        if i == len(pattern):
            return j == len(text)
        if pattern[i] == "*":
            return match(i + 1, j) or (j < len(text) and match(i, j + 1))
        if j < len(text) and (pattern[i] == "?" or pattern[i] == text[j]):
            return match(i + 1, j + 1)
        return False

    return match(0, 0)


@SETTINGS
@given(pattern=patterns, text=texts)
def test_wildcard_sql_python_and_reference_agree(pattern, text):
    assume("*" in pattern or "?" in pattern)
    condition = Wildcard(pattern, Domain.TEXT)
    expected = reference_wildcard(pattern, text)
    assert condition.test([text]) == expected
    assert sql_matches(condition, text) == expected
    # fnmatch agrees once its own specials are escaped: it knows classes, DICOM does not.
    assert fnmatch.fnmatchcase(text, pattern.replace("[", "[[]")) == expected


@SETTINGS
@given(pattern=patterns, text=texts)
def test_folded_person_names_match_case_insensitively(pattern, text):
    assume(pattern.strip() not in ("", "*", '""'))
    assume("\\" not in pattern and "=" not in pattern)
    condition = condition_for("PN", pattern, name="PatientName", fold_person_names=True)
    stored_column = fold_name(text)  # what the index keeps in patient_name_folded
    expected = condition.test([text])
    assert sql_matches(condition, stored_column) == expected
    folded_pattern = fold_name(pattern.strip())
    if "*" in folded_pattern or "?" in folded_pattern:
        assert expected == reference_wildcard(folded_pattern, stored_column or "")
    else:
        assert expected == (stored_column == folded_pattern)


def test_glob_escaping_of_the_characters_sqlite_treats_specially():
    assert glob_pattern("a[b]*") == "a[[]b]*"
    assert glob_pattern("50%_off**x") == "50%_off*x"


dates = st.dates().map(lambda d: f"{d.year:04d}{d.month:02d}{d.day:02d}")
times = st.times().map(lambda t: t.strftime("%H%M%S") + (f".{t.microsecond:06d}" if t.microsecond else ""))
partial_times = st.one_of(times, times.map(lambda t: t[:2]), times.map(lambda t: t[:4]))


@SETTINGS
@given(stored=dates, low=st.one_of(st.just(""), dates), high=st.one_of(st.just(""), dates), single=st.booleans())
def test_date_matching_in_sql_agrees_with_python(stored, low, high, single):
    key = low if single else f"{low}-{high}"
    assume(key)
    condition = condition_for("DA", key, name="StudyDate")
    expected = (stored == low) if single else ((not low or stored >= low) and (not high or stored <= high))
    assert condition.test([stored]) == expected
    assert sql_matches(condition, normalize_date(stored)) == expected


@SETTINGS
@given(stored=times, low=st.one_of(st.just(""), partial_times), high=st.one_of(st.just(""), partial_times))
def test_time_range_matching_in_sql_agrees_with_python(stored, low, high):
    key = f"{low}-{high}"
    assume(key != "-")
    condition = condition_for("TM", key, name="StudyTime")
    full = normalize_time(stored)
    expected = (not low or full >= normalize_time(low)) and (not high or full <= normalize_time(high))
    assert condition.test([stored]) == expected
    assert sql_matches(condition, full) == expected


datetimes = st.datetimes(min_value=dt.datetime(1000, 1, 2), max_value=dt.datetime(9999, 12, 30)).map(
    lambda d: f"{d.year:04d}{d:%m%d%H%M%S}"
)
offsets = st.sampled_from(["", "+0000", "+0100", "-0500", "+1400", "-1200"])


@SETTINGS
@given(stored=datetimes, stored_offset=offsets, low=datetimes, high=datetimes, query_offset=offsets)
def test_datetime_ranges_compare_moments(stored, stored_offset, low, high, query_offset):
    value = stored + stored_offset
    key = f"{low}{query_offset}-{high}{query_offset}"
    try:
        condition = condition_for("DT", key, name="AcquisitionDateTime")
    except QueryError:
        assume(False)  # a bound shifted out of the calendar's range
    moment = normalize_datetime(value)
    assume(moment is not None)
    low_moment, high_moment = normalize_datetime(low + query_offset), normalize_datetime(high + query_offset)
    expected = low_moment <= moment <= high_moment
    assert condition.test([value]) == expected
    assert sql_matches(condition, moment) == expected


@pytest.mark.parametrize(
    "vr, key",
    [("DA", "2023-01-05"), ("DA", "2023130"), ("TM", "2500"), ("TM", "10:61"), ("DT", "2023-13"), ("IS", "abc"), ("UI", "1.2.*")],
)
def test_invalid_keys_are_query_errors(vr, key):
    with pytest.raises(QueryError):
        condition_for(vr, key, name="Key")


@pytest.mark.parametrize("vr", ["LO", "PN", "DA", "TM", "DT", "UI", "IS", "CS", "SQ", "OB"])
@pytest.mark.parametrize("key", ["", "*", "   "])
def test_universal_keys_never_constrain(vr, key):
    condition = condition_for(vr, key, name="Key")
    assert condition.sql("v") is None and condition.test([])


@pytest.mark.parametrize(
    "vr, key, stored, matches",
    [
        # A time is the moment it writes (PS3.4 C.2.2.2.1.3: "2230" matches "223000").
        ("TM", "2230", "223000", True),
        ("TM", "2230", "223045", False),
        ("TM", "120000", "120000.123", False),
        ("TM", "120000", "120000.000", True),
        ("TM", "10-11", "111111", False),
        ("TM", "10-11", "110000", True),
        ("TM", "10-11", "100000", True),
        ("TM", "-11", "110000.5", False),
        ("TM", "1015-", "1015", True),
        ("DT", "20230105101702", "20230105101702.000", True),
        ("DT", "2023", "20230105", False),
        ("DT", "2023-2024", "20230705", True),
        ("DT", "2023-2024", "20240705", False),
    ],
)
def test_times_and_datetimes_match_the_moments_they_write(vr, key, stored, matches):
    condition = condition_for(vr, key, name="key")
    normalize = normalize_time if vr == "TM" else normalize_datetime
    assert condition.test([stored]) is matches
    assert sql_matches(condition, normalize(stored)) is matches
