"""Property tests (hypothesis): any JSON either maps or fails its line or item naming the field; nothing raises.

Three seams: the profile parser (any JSON value, any text or bytes on a line, a valid profile with fields
replaced by anything), the mapping (any profile the parser accepts, both targets, dummy emails on and off:
every body is JSON the sandbox, as strict as Harvest, accepts), and the worker (any JSON object as the
stored snapshot: an outcome, never an exception). A failure prints the seed and the shrunk example.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.harvest.models import CreateTag, CustomFieldOption
from shared.harvest.sandbox import seed as s
from shared.harvest.sandbox.routes_applications import JOB_APPLICATION, PROSPECT_APPLICATION
from shared.harvest.sandbox.routes_candidates import CREATE_CANDIDATE
from shared.harvest.sandbox.routes_profile import CREATE_EDUCATION, CREATE_EMPLOYMENT, CREATE_NOTE
from shared.harvest.sandbox.routes_tags import CREATE_TAG
from shared.harvest.sandbox.validate import F, check_members
from shared.profiles.mapping import MappedCandidate, OptionIndex, Target, dummy_email, map_profile
from shared.profiles.model import (
    MAX_ID_CHARS,
    MAX_LIST_ITEMS,
    MAX_STR_CHARS,
    MAX_SUMMARY_CHARS,
    MAX_URL_CHARS,
    EducationIn,
    EmploymentIn,
    LineError,
    Profile,
    ReadResult,
    read_profiles,
    read_profiles_file,
)
from shared.store import batches
from shared.store.models import Batch, ItemStatus, TargetKind
from tests.unit.export_fixtures import Env, make_env
from workers.outcome import Finished

DOMAIN = "seekout.example.com"
FIELDS = tuple(Profile.model_fields)
LIST_FIELDS = ("emails", "phones", "skills", "social_media", "urls", "tags", "employments", "educations")
NESTED = {"employments": tuple(EmploymentIn.model_fields), "educations": tuple(EducationIn.model_fields)}

# print_blob: a failure also prints the @reproduce_failure blob that replays it exactly.
FAST = settings(max_examples=100, deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(
    max_examples=50,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

# --- strategies: wild JSON --------------------------------------------------------------------------

# Characters that trip parsers: NUL and C0 controls (U+001C-U+001F are whitespace to Python's str.strip
# but not to Unicode), NEL, no-break and zero-width spaces, RTL text and direction marks, a BOM, combining
# marks, emoji (two UTF-16 units), the last code point.
WEIRD_CHARS = (
    " \t\n\r\x00\x01\x0b\x0c\x1c\x1d\x1e\x1f\x7f\x85\xa0\u1680\u2000\u200a\u200b\u200e\u200f\u2028\u2029"
    "\u202e\u3000\ufeff\u0301\u0627\u0644\u05d0\u05d1\u4e2d\U0001f600\U0001f680\U0010ffff@.-_/:aZ09"
)
WEIRD_STRINGS = (
    "",
    " ",
    "\x00",
    "\x1c",
    "\u200b",
    "مريم الحسيني",
    "\u202eevil\u202c",
    "🚀 Sam",
    "e\u0301",
    "null",
    "a@b.co",
    "A@B.CO",
    "a@localhost",
    "2019-03-01",
    "0001-01-01",
    "9999-12-31",
    "2019-02-29",
    "2020-02-29",
    "2019-13-01",
    "2019-03-01T00:00:00",
    "1e400",
    "https://x.example/" + "p" * 2100,
    "x" * MAX_STR_CHARS,
    "x" * (MAX_STR_CHARS + 1),
)
weird_text = st.one_of(
    st.text(max_size=20),
    st.text(alphabet=st.sampled_from(WEIRD_CHARS), max_size=12),
    st.sampled_from(WEIRD_STRINGS),
)
BIG_INTS = (2**31, -(2**31) - 1, 2**63, -(2**63) - 1, 2**64, 10**MAX_ID_CHARS - 1, 10**MAX_ID_CHARS, -(10**300))
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(BIG_INTS),
    st.floats(allow_nan=False, allow_infinity=False),
    weird_text,
)
json_keys = st.one_of(st.sampled_from(FIELDS + NESTED["employments"] + NESTED["educations"]), weird_text)
json_values = st.recursive(
    json_scalars,
    lambda kids: st.one_of(st.lists(kids, max_size=4), st.dictionaries(json_keys, kids, max_size=5)),
    max_leaves=12,
)

# --- strategies: valid profiles with wild but valid values ------------------------------------------


def texts(max_chars: int, *, loose: bool = False) -> st.SearchStrategy[str]:
    """Non-blank text of at most ``max_chars`` once stripped, padded or not, sometimes exactly at the limit.

    ``loose``: also a few characters of the weird set alone, blank or not by one definition or another.
    """
    core = st.one_of(
        st.text(min_size=1, max_size=30),
        st.text(alphabet=st.sampled_from(WEIRD_CHARS), min_size=1, max_size=30),
        st.sampled_from(("مريم", "李 小龙", "Ødegård-Müller", "O'Neil 🚀", "x" * max_chars)),
    )
    pad = st.sampled_from(("", " ", "\t", "  \u3000"))
    valid = st.builds(lambda a, t, b: a + t + b, pad, core, pad).filter(
        lambda t: bool(t.strip()) and len(t.strip()) <= max_chars
    )
    return st.one_of(valid, st.text(alphabet=st.sampled_from(WEIRD_CHARS), min_size=1, max_size=3)) if loose else valid


_local = st.text(
    alphabet=st.characters(blacklist_characters="@", blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
    min_size=1,
    max_size=20,
)
_label = st.text(
    alphabet=st.characters(blacklist_characters="@.", blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
    min_size=1,
    max_size=12,
)
emails = st.builds(lambda lo, labels: lo + "@" + ".".join(labels), _local, st.lists(_label, min_size=2, max_size=4))
iso_dates = st.dates().map(lambda d: d.isoformat())
opt_dates = st.one_of(st.none(), st.just(""), iso_dates)


BLANKS = st.sampled_from(("", "  ", "\t\u3000"))


def items(of: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any] | None]:
    """A list field: often empty, sometimes null, up to the 50-item limit; blank items (dropped) among them."""
    of = st.one_of(of, BLANKS)
    full = st.builds(
        lambda few, one: (few * MAX_LIST_ITEMS + [one] * MAX_LIST_ITEMS)[:MAX_LIST_ITEMS], st.lists(of, max_size=3), of
    )
    return st.one_of(st.none(), st.lists(of, max_size=4), full)


def profile_dicts_of(*, loose: bool) -> st.SearchStrategy[dict[str, Any]]:
    """Profile lines with wild values: all within the contract, or (``loose``) near its edges."""

    def text(max_chars: int) -> st.SearchStrategy[str]:
        return texts(max_chars, loose=loose)

    opt_text = st.one_of(st.none(), st.just(""), st.just("   "), text(MAX_STR_CHARS))
    employment = st.fixed_dictionaries(
        {}, optional={"company_name": opt_text, "title": opt_text, "start_date": opt_dates, "end_date": opt_dates}
    )
    education = st.fixed_dictionaries(
        {},
        optional={
            "school": opt_text,
            "degree": opt_text,
            "discipline": opt_text,
            "start_date": opt_dates,
            "end_date": opt_dates,
        },
    )
    ids = text(MAX_ID_CHARS) if loose else text(MAX_ID_CHARS).filter(lambda t: "\x00" not in t)
    return st.fixed_dictionaries(
        {
            "id": st.one_of(ids, st.integers(min_value=-(10**50), max_value=10**60)),
            "first_name": text(MAX_STR_CHARS),
            "last_name": text(MAX_STR_CHARS),
        },
        optional={
            "emails": items(emails),
            "phones": items(text(MAX_STR_CHARS)),
            "company": opt_text,
            "title": opt_text,
            "location": opt_text,
            "skills": items(text(MAX_STR_CHARS)),
            "social_media": items(text(MAX_URL_CHARS)),
            "urls": items(text(MAX_URL_CHARS)),
            "employments": items(employment),
            "educations": items(education),
            "tags": items(text(MAX_STR_CHARS)),
            "summary": st.one_of(st.none(), text(MAX_SUMMARY_CHARS), st.just("s" * MAX_SUMMARY_CHARS)),
            "platform_score": json_values,
        },
    )


profile_dicts = profile_dicts_of(loose=False)
loose_profile_dicts = profile_dicts_of(loose=True)


def parse_one(obj: object) -> ReadResult:
    return read_profiles([json.dumps(obj, ensure_ascii=False)])


def accepted(obj: dict[str, Any]) -> Profile:
    """The profile a valid line reads as (the generator's values are all within the contract)."""
    result = parse_one(obj)
    assert result.errors == [], [str(e) for e in result.errors]
    return result.profiles[0]


# --- the oracle for a line's outcome ----------------------------------------------------------------


def readable_id(obj: object) -> str | None:
    """The id the model reads from ``obj``, if its ``id`` alone is valid."""
    if not isinstance(obj, dict):
        return None
    try:
        return Profile.model_validate({"id": obj.get("id"), "first_name": "A", "last_name": "B"}).id
    except ValidationError:
        return None


def root(field: str) -> str:
    return field.split("[", 1)[0].split(".", 1)[0]


def strings_in(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from strings_in(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings_in(v)


def assert_names_its_field(err: LineError, lineno: int, obj: object) -> None:
    """A bad line's error: its line, the model's id for it, a profile field, and none of its content."""
    assert err.line == lineno
    text = str(err)
    assert text.startswith(f"line {lineno}")
    assert err.message
    json.dumps(err.as_dict(), ensure_ascii=False).encode("utf-8")  # printable and storable
    if not isinstance(obj, dict):
        assert (err.profile_id, err.field, err.message) == (None, None, "not a JSON object")
        return
    assert err.profile_id == readable_id(obj)
    assert err.field is not None and root(err.field) in FIELDS, text
    assert f": {err.field}: " in text
    for value in strings_in(obj):
        if len(value) >= 8 and value != err.profile_id:
            assert value not in err.message, text


def assert_maps_or_fails(obj: object) -> Profile | None:
    result = parse_one(obj)
    if result.profiles:
        assert result.errors == []
        (profile,) = result.profiles
        assert "\x00" not in profile.id  # the store keeps it in a text column (PostgreSQL refuses NUL)
        assert Profile.from_snapshot(json.loads(json.dumps(profile.snapshot()))) == profile
        json.dumps(profile.snapshot(), ensure_ascii=False).encode("utf-8")
        return profile
    assert result.errors
    for err in result.errors:
        assert_names_its_field(err, 1, obj)
    return None


# --- 1. the parser ----------------------------------------------------------------------------------


@FAST
@given(json_values)
def test_any_json_value_maps_or_fails_its_line_naming_the_field(value: object) -> None:
    assert_maps_or_fails(value)


@FAST
@given(st.dictionaries(json_keys, json_values, max_size=8), st.dictionaries(st.sampled_from(FIELDS), json_values))
def test_any_json_object_maps_or_fails_naming_the_field(extra: dict[str, Any], fields: dict[str, Any]) -> None:
    assert_maps_or_fails({**extra, **fields})


@st.composite
def mutated_profiles(draw: st.DrawFn) -> tuple[dict[str, Any], set[str]]:
    """A valid profile with fields replaced, removed, or broken in some of their items.

    Also returns what was touched: a field name, or ``name[i]`` for an item (index in the input list).
    """
    obj: dict[str, Any] = dict(draw(profile_dicts))
    touched: set[str] = set()
    for name in draw(st.sets(st.sampled_from(FIELDS), min_size=1, max_size=4)):
        how = draw(st.sampled_from(("replace", "remove", "items") if name in LIST_FIELDS else ("replace", "remove")))
        if how == "remove":
            obj.pop(name, None)
            touched.add(name)
        elif how == "replace":
            obj[name] = draw(json_values)
            touched.add(name)
        else:
            current = obj.get(name)
            members = list(current) if isinstance(current, list) else []
            added = draw(st.integers(0 if members else 1, 2))
            chosen = draw(st.sets(st.integers(0, len(members) - 1), max_size=3)) if members else set()
            chosen = chosen | set(range(len(members), len(members) + added)) or {0}
            members += [None] * added
            for at in chosen:
                if name in NESTED and draw(st.booleans()):
                    member = dict(members[at]) if isinstance(members[at], dict) else {}
                    member[draw(st.sampled_from(NESTED[name]))] = draw(json_values)
                    members[at] = member
                else:
                    members[at] = draw(st.one_of(BLANKS, json_values))
            # blank items ahead are dropped: an error must still name its item by its index in the input
            lead = draw(st.integers(0, 2))
            members = [""] * lead + members
            touched |= {f"{name}[{at + lead}]" for at in chosen}
            if len(members) > MAX_LIST_ITEMS:
                touched.add(name)
            obj[name] = members
    return obj, touched


def blamed(field: str, touched: set[str]) -> bool:
    """Whether an error at ``field`` points at something the mutation touched."""
    return any(field == t or field.startswith((t + "[", t + ".")) for t in touched)


@FAST
@given(mutated_profiles())
def test_broken_fields_fail_the_line_naming_only_those_fields(case: tuple[dict[str, Any], set[str]]) -> None:
    obj, touched = case
    result = parse_one(obj)
    for err in result.errors:
        assert err.field is not None and blamed(err.field, touched), (str(err), touched)
    assert_maps_or_fails(obj)


@FAST
@given(profile_dicts)
def test_valid_profiles_are_accepted_and_survive_the_snapshot(obj: dict[str, Any]) -> None:
    profile = assert_maps_or_fails(obj)
    assert profile is not None


def test_blank_list_items_are_dropped_but_errors_keep_the_input_index() -> None:
    # Regression (found by the mutation property): a blank item before a bad one shifted the index.
    result = read_profiles([json.dumps({"id": "p", "first_name": "A", "last_name": "B", "emails": ["", " ", "x"]})])
    assert [(e.field, e.message) for e in result.errors] == [("emails[2]", "not a valid email address")]


NASTY_LINES = (
    "[" * 100_000,
    '{"id": "p", "first_name": "A", "last_name": "B", "x": ' + "[" * 50_000 + "]" * 50_000 + "}",
    "1" * 5000,
    '{"id": ' + "9" * 5000 + ', "first_name": "A", "last_name": "B"}',
    '{"id": ' + "9" * (MAX_ID_CHARS + 1) + ', "first_name": "A", "last_name": "B"}',
    '{"id": "p", "first_name": 1e400, "last_name": "B"}',
    "NaN",
    "-Infinity",
    '{"id": "\\ud800", "first_name": "A", "last_name": "B"}',
    '{"id": "p", "first_name": "\\udc00", "last_name": "B"}',
    '{"id": "p\\u0000", "first_name": "A", "last_name": "B"}',
    '{"id": "p", "first_name": "\x1c", "last_name": "B"}',
    '{"id": "p", "first_name": "A", "last_name": "B", "emails": ["", " ", "x"]}',
    "\x00",
)
SMALL_NASTY_LINES = (*(t for t in NASTY_LINES if len(t) < 10_000), "[" * 3000, "{" * 3000)


def lines_strategy() -> st.SearchStrategy[list[str]]:
    line = st.one_of(
        st.text(max_size=40),
        json_values.map(json.dumps),
        profile_dicts.map(lambda d: json.dumps(d, ensure_ascii=False)),
        mutated_profiles().map(lambda c: json.dumps(c[0])),
        st.sampled_from(SMALL_NASTY_LINES),
    )
    return st.lists(line, max_size=6)


def assert_every_line_accounted(result: ReadResult, blank: list[bool]) -> None:
    error_lines = {e.line for e in result.errors}
    assert all(1 <= n <= len(blank) and not blank[n - 1] for n in error_lines)
    assert len(result.profiles) + len(error_lines) == blank.count(False)
    for err in result.errors:
        assert err.field is None or root(err.field) in FIELDS, str(err)
        json.dumps(err.as_dict(), ensure_ascii=False).encode("utf-8")


@FAST
@given(lines_strategy())
def test_any_text_lines_yield_profiles_or_line_errors(lines: list[str]) -> None:
    result = read_profiles(lines)
    blank = [not (t.removeprefix("\ufeff") if n == 0 else t).strip() for n, t in enumerate(lines)]
    assert_every_line_accounted(result, blank)


@pytest.mark.parametrize("text", NASTY_LINES)
def test_nasty_line_fails_alone(text: str) -> None:
    good = json.dumps({"id": "good", "first_name": "A", "last_name": "B"})
    result = read_profiles([good, text, good.replace("good", "good-2")])
    assert [p.id for p in result.profiles] == ["good", "good-2"]
    assert result.errors and {e.line for e in result.errors} == {2}


@SLOW
@given(st.lists(st.one_of(st.binary(max_size=60), lines_strategy().map(lambda ls: "\n".join(ls).encode())), max_size=5))
def test_any_bytes_file_yields_profiles_or_line_errors(
    tmp_path_factory: pytest.TempPathFactory, chunks: list[bytes]
) -> None:
    path = Path(tmp_path_factory.mktemp("bytes")) / "p.jsonl"
    data = b"\n".join(chunks)
    path.write_bytes(data)
    result = read_profiles_file(path)
    blank: list[bool] = []
    with path.open("rb") as fh:
        for n, raw in enumerate(fh):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                blank.append(False)
                continue
            blank.append(not (text.removeprefix("\ufeff") if n == 0 else text).strip())
    assert_every_line_accounted(result, blank)


# --- 2. the mapping ---------------------------------------------------------------------------------

targets = st.one_of(
    st.builds(
        Target,
        kind=st.just("job"),
        job_id=st.integers(1, 2**53),
        source_id=st.none() | st.integers(1, 2**53),
        user_id=st.none() | st.integers(1, 2**53),
    ),
    st.builds(
        lambda job, pool, stage, source, user: Target(
            kind="prospect", job_id=job, pool_id=pool, stage_id=stage if pool else None, source_id=source, user_id=user
        ),
        st.none() | st.integers(1, 2**53),
        st.none() | st.integers(1, 2**53),
        st.none() | st.integers(1, 2**53),
        st.none() | st.integers(1, 2**53),
        st.none() | st.integers(1, 2**53),
    ),
)


def option_index(profile: Profile, pick: list[bool]) -> OptionIndex:
    """Greenhouse options for some of the profile's education names (so both paths are taken)."""
    names: dict[str, list[str]] = {"school_name": [], "degree": [], "discipline": []}
    for n, edu in enumerate(profile.educations):
        for attr, key in (("school", "school_name"), ("degree", "degree"), ("discipline", "discipline")):
            value = getattr(edu, attr)
            if value and pick[n % len(pick)]:
                names[key].append(value)
    options = {key: [CustomFieldOption(id=i + 1, name=v) for i, v in enumerate(vals)] for key, vals in names.items()}
    return OptionIndex.build(**options)


def assert_accepted(body: Mapping[str, object], schema: Mapping[str, F], what: str) -> None:
    """``body`` is UTF-8 JSON and passes the sandbox's Harvest schema (every problem names its field)."""
    json.dumps(body, ensure_ascii=False, allow_nan=False).encode("utf-8")
    errors: list[tuple[str | None, str]] = []
    check_members(body, schema, "", errors)
    assert errors == [], (what, errors)


def assert_requests_accepted(m: MappedCandidate) -> None:
    create = m.create.to_body()
    assert_accepted(create, CREATE_CANDIDATE, "create")
    app = m.application.to_body()
    assert_accepted(app, PROSPECT_APPLICATION if "prospect" in app else JOB_APPLICATION, "application")
    assert create["application"] == app
    for edu in m.educations:
        assert_accepted(edu.request(1).to_body(), CREATE_EDUCATION, "education")
    for emp in m.employments:
        assert_accepted(emp.request(1).to_body(), CREATE_EMPLOYMENT, "employment")
    for tag in m.tags:
        assert_accepted(CreateTag(name=tag).to_body(), CREATE_TAG, "tag")
    if m.note is not None:
        note = {"candidate_id": 1, "user_id": 1, "body": m.note, "visibility": "private", "note_type": "NOTE"}
        assert_accepted(note, CREATE_NOTE, "note")


@FAST
@given(
    loose_profile_dicts,
    targets,
    st.booleans(),
    st.sampled_from((None, "skills")),
    st.lists(st.booleans(), min_size=1, max_size=3),
)
def test_any_accepted_profile_maps_to_requests_harvest_accepts(
    obj: dict[str, Any], target: Target, dummy: bool, skills_field: str | None, pick: list[bool]
) -> None:
    result = parse_one(obj)
    assume(result.profiles)
    (profile,) = result.profiles
    m = map_profile(
        profile,
        target,
        option_index(profile, pick),
        dummy_emails=dummy,
        dummy_email_domain=DOMAIN,
        skills_custom_field=skills_field,
    )
    assert_requests_accepted(m)
    # Nothing is dropped silently: every education or employment not sent has its warning.
    for kind, sent, given_ in (
        ("education", m.educations, profile.educations),
        ("employment", m.employments, profile.employments),
    ):
        left_out = [w for w in m.warnings if w.startswith(f"{kind} ") and w.endswith(f"{kind} left out")]
        assert len(sent) + len(left_out) == len(given_)
    # The addresses looked up are the ones sent; a dummy stands in only for none, and is itself valid.
    assert [e.value for e in m.create.email_addresses] == m.emails
    if profile.emails:
        assert {e.casefold() for e in m.emails} == {e.casefold() for e in profile.emails}
    elif dummy:
        assert m.emails == [dummy_email(profile.id, DOMAIN)]
        assert accepted({"id": "x", "first_name": "A", "last_name": "B", "emails": m.emails}).emails == m.emails
    else:
        assert m.emails == []


# --- 3. the worker ----------------------------------------------------------------------------------

snapshots = st.one_of(
    loose_profile_dicts,
    profile_dicts.map(lambda d: Profile.model_validate(d).snapshot()),
    mutated_profiles().map(lambda case: case[0]),
    st.dictionaries(json_keys, json_values, max_size=6),
)


def record(env: Env, profile_id: str, snapshot: dict[str, Any], *, prospect: bool, dummy: bool) -> int:
    """One queued item holding ``snapshot`` as its stored profile (the store keeps whatever it is given)."""
    batch = Batch(
        id="",
        connection_id=env.conn.id,
        target_kind=TargetKind.PROSPECT if prospect else TargetKind.JOB,
        job_id=None if prospect else s.OPEN_JOB_ID,
        pool_id=s.POOL_ID if prospect else None,
        stage_id=s.STAGE_2_ID if prospect else None,
        user_email=env.conn.user_email,
        user_id=env.conn.user_id,
        dummy_emails=dummy,
    )
    (item_id,) = batches.create_batch(env.engine, batch, [batches.NewItem(profile_id, snapshot)]).to_enqueue
    return item_id


def snapshot_errors(snapshot: object) -> list[str]:
    """The fields a stored snapshot is invalid in (empty when it reads back as a profile)."""
    try:
        Profile.from_snapshot(snapshot)  # type: ignore[arg-type]
    except ValidationError as exc:
        return [root(".".join(str(p) for p in e["loc"])) for e in exc.errors()] or ["profile"]
    return []


@pytest.fixture
def worker_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    # Built here, not with the function-scoped ``sqlite_url``: one env serves every example of the test.
    env = make_env(f"sqlite:///{tmp_path_factory.mktemp('store')}/ghexport-test.db")
    yield env
    env.res.close()


def test_any_stored_snapshot_ends_exported_or_failed_naming_the_field(worker_env: Env) -> None:
    env = worker_env
    seq = iter(range(10**9))

    @SLOW
    @given(snapshots, st.booleans(), st.booleans())
    def run(snapshot: dict[str, Any], prospect: bool, dummy: bool) -> None:
        item_id = record(env, f"prop-{next(seq)}", snapshot, prospect=prospect, dummy=dummy)

        outcome = env.export(item_id)

        item = env.item(item_id)
        bad = snapshot_errors(snapshot)
        if bad:
            assert outcome == Finished(ItemStatus.FAILED), (outcome, item.error)
            assert item.error_cause == "invalid_profile"
            assert item.error is not None and any(name in item.error for name in bad), (item.error, bad)
        else:
            assert outcome in (Finished(ItemStatus.EXPORTED), Finished(ItemStatus.SKIPPED)), (outcome, item.error)
            assert item.status is not ItemStatus.SKIPPED or item.error_cause == "duplicate_in_greenhouse"

    run()


def test_invalid_snapshot_error_names_the_field_but_none_of_its_content(worker_env: Env) -> None:
    # "field required" quotes the whole object; a bad email quotes the address
    snapshot = {"id": "p-1", "first_name": "Ada Lovelace", "emails": ["ada.secret@localhost"]}
    item_id = record(worker_env, "pii-1", snapshot, prospect=False, dummy=False)

    assert worker_env.export(item_id) == Finished(ItemStatus.FAILED)

    error = worker_env.item(item_id).error or ""
    assert "last_name" in error and "emails" in error
    assert "Ada Lovelace" not in error and "ada.secret" not in error
