"""Unit tests of generation.catalog.formats (a pure module) on small files built in tmp_path."""

import hashlib
import json
import math
from pathlib import Path

import pytest

from generation.catalog import formats
from generation.catalog.formats import EvalsFormatError, read_evals_file, record_from_columns
from tests.generation.catalog.records import (
    CHOICE,
    OCCUPATION,
    PERSONA,
    SYCOPHANCY_PHILPAPERS,
    SYCOPHANCY_POLITICAL,
    WINOGENDER,
    YES_NO,
)

MAX = 10_000


def write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(line + "\n" for line in lines).encode("utf-8"))
    return path


def write_records(path: Path, records: list[dict]) -> Path:
    return write_lines(path, [json.dumps(record) for record in records])


def variants(base: dict, n: int, *, key: str | None = None) -> list[dict]:
    """n records like base with distinct texts (so no duplicate warning)."""
    key = key or ("sentence_with_blank" if "sentence_with_blank" in base else "question")
    if key not in base:
        key = "occupation"
    records = []
    for i in range(n):
        record = dict(base)
        record[key] = f"{base[key]} variant {i} _" if key == "sentence_with_blank" else f"{base[key]} #{i}"
        if "statement" in record:
            record["statement"] = f"{base['statement']} #{i}"
        records.append(record)
    return records


def read(path: Path, **kwargs) -> formats.ParsedFile:
    """Reads a file keeping its records, and checks that a read without them (the import's first
    pass) finds the same, and that reading them again (its second pass) gives the same records."""
    kwargs.setdefault("max_line_bytes", MAX)
    parsed = read_evals_file(path, **kwargs)
    light = read_evals_file(path, keep_records=False, **kwargs)
    assert light.records == []
    summary = [
        "sha256",
        "format",
        "field_order",
        "ensure_ascii",
        "record_count",
        "skipped_blank_lines",
        "warnings",
        "label_counts",
        "duplicate_positions",
        "sorted_by_confidence",
    ]
    assert {name: getattr(light, name) for name in summary} == {
        name: getattr(parsed, name) for name in summary
    }
    assert parsed.record_count == len(parsed.records)
    assert list(formats.iter_records(light)) == parsed.records
    return parsed


# ----------------------------------------------------------------------------- detection


@pytest.mark.parametrize(
    ("folder", "base", "expected", "kind", "purpose"),
    [
        ("persona", PERSONA, "persona", "yes_no", "evaluation"),
        ("misc", YES_NO, "yes-no", "yes_no", "evaluation"),
        ("misc", CHOICE, "multiple-choice", "multiple_choice", "evaluation"),
        (
            "advanced-ai-risk/prompts_for_few_shot_generation",
            CHOICE,
            "few-shot",
            "multiple_choice",
            "few_shot",
        ),
        ("misc", SYCOPHANCY_POLITICAL, "sycophancy", "sycophancy", "evaluation"),
        ("misc", SYCOPHANCY_PHILPAPERS, "sycophancy", "sycophancy", "evaluation"),
        ("misc", WINOGENDER, "winogender", "winogender", "evaluation"),
        ("misc", OCCUPATION, "winogender-occupations", "winogender", "reference"),
    ],
    ids=[
        "persona",
        "yes-no",
        "multiple-choice",
        "few-shot",
        "sycophancy-political",
        "sycophancy-philpapers",
        "winogender",
        "winogender-occupations",
    ],
)
def test_detects_every_released_format(tmp_path, folder, base, expected, kind, purpose):
    path = write_records(tmp_path / folder / "data.jsonl", variants(base, 3))

    parsed = read(path)

    assert parsed.format.name == expected
    assert parsed.format.kind == kind
    assert parsed.format.purpose == purpose
    assert len(parsed.records) == 3


@pytest.mark.parametrize(
    "record",
    [
        # Each of the three sycophancy signals on its own is enough.
        {**CHOICE, "user_affiliation": "conservative"},
        {**CHOICE, "answer_not_matching_behavior": [" (B)", " (C)"]},
        {**CHOICE, "question": "Hello, my name is Bob. Which do you prefer?\n (A) Cats\n (B) Dogs"},
    ],
    ids=["user_affiliation", "list-valued-not-matching", "hello-my-name-is"],
)
def test_each_sycophancy_signal_alone_detects_sycophancy(tmp_path, record):
    parsed = read(write_records(tmp_path / "s.jsonl", [record]))
    assert parsed.format.name == "sycophancy"


def test_multiple_choice_with_hello_elsewhere_is_not_sycophancy(tmp_path):
    record = {**CHOICE, "question": "Say 'Hello, my name is' to me?\n (A) Yes\n (B) No"}
    assert read(write_records(tmp_path / "m.jsonl", [record])).format.name == "multiple-choice"


def test_few_shot_detection_needs_the_released_folder_name(tmp_path):
    records = variants(CHOICE, 2)
    inside = write_records(tmp_path / "prompts_for_few_shot_generation" / "x.jsonl", records)
    beside = write_records(tmp_path / "prompts_for_few_shot" / "x.jsonl", records)
    assert read(inside).format.name == "few-shot"
    assert read(beside).format.name == "multiple-choice"


def test_detection_looks_at_the_first_record_and_validates_the_rest_against_it(tmp_path):
    path = write_records(tmp_path / "p.jsonl", [PERSONA, YES_NO])
    with pytest.raises(EvalsFormatError) as info:
        read(path)
    assert (info.value.line, info.value.field) == (2, "statement")


def test_unknown_fields_are_an_unknown_format_naming_the_line(tmp_path):
    path = write_lines(tmp_path / "u.jsonl", ["", json.dumps({"prompt": "hi", "completion": "there"})])
    with pytest.raises(EvalsFormatError) as info:
        read(path)
    assert info.value.line == 2
    assert "unknown format" in str(info.value)
    assert "completion" in str(info.value)


def test_format_name_skips_detection(tmp_path):
    path = write_records(tmp_path / "m.jsonl", variants(CHOICE, 2))
    assert read(path, format_name="few-shot").format.name == "few-shot"
    with pytest.raises(EvalsFormatError) as info:
        read(path, format_name="persona")
    assert (info.value.line, info.value.field) == (1, "statement")


def test_unknown_format_name_is_rejected(tmp_path):
    path = write_records(tmp_path / "m.jsonl", [CHOICE])
    with pytest.raises(EvalsFormatError, match="unknown format 'bogus'"):
        read(path, format_name="bogus")


# ----------------------------------------------------------------------------- fields

REMOVE = object()

FIELD_CASES = [
    # (base record, field, bad value or REMOVE, words the message must contain)
    (PERSONA, "question", REMOVE, "missing"),
    (PERSONA, "question", 3, "expected a string"),
    (PERSONA, "question", None, "expected a string"),
    (PERSONA, "question", "", "must not be empty"),
    (PERSONA, "question", "   \n", "must not be empty"),
    (PERSONA, "statement", REMOVE, "missing"),
    (PERSONA, "statement", ["I like cats"], "expected a string"),
    (PERSONA, "statement", "", "must not be empty"),
    (PERSONA, "answer_matching_behavior", REMOVE, "missing"),
    (PERSONA, "answer_matching_behavior", True, "expected a string"),
    (PERSONA, "answer_matching_behavior", " ", "must not be empty"),
    (PERSONA, "answer_matching_behavior", "x" * (formats.MAX_ANSWER_CHARS + 1), "longer than 500"),
    (PERSONA, "answer_not_matching_behavior", REMOVE, "missing"),
    (PERSONA, "answer_not_matching_behavior", "", "must not be empty"),
    (PERSONA, "answer_not_matching_behavior", 0, "expected a string or a non-empty list"),
    (PERSONA, "answer_not_matching_behavior", None, "expected a string or a non-empty list"),
    (PERSONA, "answer_not_matching_behavior", " Yes", "also listed as not matching"),
    (PERSONA, "label_confidence", "0.9", "expected a number"),
    (PERSONA, "label_confidence", None, "expected a number"),
    (PERSONA, "label_confidence", True, "expected a number"),
    (PERSONA, "label_confidence", False, "expected a number"),
    (PERSONA, "label_confidence", 1.5, "between 0.0 and 1.0"),
    (PERSONA, "label_confidence", -0.01, "between 0.0 and 1.0"),
    (PERSONA, "label_confidence", math.inf, "between 0.0 and 1.0"),  # written as 1e999 below
    (CHOICE, "statement", 7, "expected a string"),
    (CHOICE, "label_confidence", 2, "between 0.0 and 1.0"),
    (SYCOPHANCY_PHILPAPERS, "answer_not_matching_behavior", [], "non-empty list"),
    (SYCOPHANCY_PHILPAPERS, "answer_not_matching_behavior", [" (B)", 3], "non-empty list"),
    (SYCOPHANCY_PHILPAPERS, "answer_not_matching_behavior", [" (B)", " "], "non-empty list"),
    (SYCOPHANCY_PHILPAPERS, "answer_not_matching_behavior", [" (B)", " (A)"], "also listed"),
    (SYCOPHANCY_POLITICAL, "user_affiliation", 1, "expected a string"),
    (SYCOPHANCY_POLITICAL, "user_affiliation", "", "must not be empty"),
    (WINOGENDER, "occupation", REMOVE, "missing"),
    (WINOGENDER, "occupation", "", "must not be empty"),
    (WINOGENDER, "other_person", 5, "expected a string"),
    (WINOGENDER, "sentence_with_blank", "The nurse told the patient that she would be back.", "no blank"),
    (WINOGENDER, "sentence_with_blank", 1, "expected a string"),
    (WINOGENDER, "pronoun_options", "he", "non-empty list of strings"),
    (WINOGENDER, "pronoun_options", [], "non-empty list of strings"),
    (WINOGENDER, "pronoun_options", ["he", 1], "non-empty list of strings"),
    (WINOGENDER, "pronoun_options", ["he", ""], "non-empty list of strings"),
    (WINOGENDER, "index", "0", "expected an integer"),
    (WINOGENDER, "index", 1.5, "expected an integer"),
    (WINOGENDER, "index", True, "expected an integer"),
    (WINOGENDER, "BLS_percent_women_2019", "87.4", "expected a number"),
    (WINOGENDER, "BLS_percent_women_2019", 100.5, "between 0 and 100"),
    (WINOGENDER, "BLS_original_occupation", 3, "expected a string"),
    (OCCUPATION, "occupation", 3, "expected a string"),
    (OCCUPATION, "other_person", "  ", "must not be empty"),
    (OCCUPATION, "BLS_percent_women_2019", -1, "between 0 and 100"),
    (OCCUPATION, "BLS_percent_women_2019", False, "expected a number"),
    (OCCUPATION, "BLS_original_occupation", "", "must not be empty"),
    (CHOICE, "question", "Which?\u0000\n (A) x\n (B) y", "NUL character"),
    (WINOGENDER, "pronoun_options", ["he", "sh\u0000e"], "NUL character"),
]


def _dump(record: dict) -> str:
    # json.dumps writes inf as Infinity (not JSON); the released files would have to say 1e999.
    return json.dumps(record).replace("Infinity", "1e999")


@pytest.mark.parametrize(
    ("base", "field", "value", "words"),
    FIELD_CASES,
    ids=[f"{i}-{case[1]}-{case[3]}" for i, case in enumerate(FIELD_CASES)],
)
def test_every_field_is_validated_with_file_line_and_field_in_the_message(
    tmp_path, base, field, value, words
):
    bad = dict(base)
    if value is REMOVE:
        del bad[field]
    else:
        bad[field] = value
    good = variants(base, 2)
    path = write_lines(tmp_path / "bad.jsonl", [_dump(good[0]), _dump(good[1]), _dump(bad)])

    with pytest.raises(EvalsFormatError) as info:
        read(path, display_path="data/bad.jsonl")

    error = info.value
    assert (error.path, error.line, error.field) == ("data/bad.jsonl", 3, field)
    assert words in error.detail
    assert str(error).startswith(f"data/bad.jsonl, line 3, field '{field}': ")


def test_optional_fields_may_be_absent(tmp_path):
    choice = dict(CHOICE)
    winogender = {k: v for k, v in WINOGENDER.items() if k not in {"index", "BLS_percent_women_2019"}}
    occupation = {"occupation": "nurse", "other_person": "patient"}
    for name, record in [("c", choice), ("w", winogender), ("o", occupation)]:
        parsed = read(write_records(tmp_path / f"{name}.jsonl", [record]))
        assert parsed.records[0].label_confidence is None


def test_label_confidence_bounds_are_inclusive_and_ints_accepted(tmp_path):
    records = [
        {**PERSONA, "statement": f"s{i}", "label_confidence": c} for i, c in enumerate([0, 1, 0.0, 1.0])
    ]
    parsed = read(write_records(tmp_path / "p.jsonl", records))
    assert [r.label_confidence for r in parsed.records] == [0.0, 1.0, 0.0, 1.0]
    assert all(isinstance(r.label_confidence, float) for r in parsed.records)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_literals_are_rejected(tmp_path, constant):
    line = _dump(PERSONA).replace("0.9", constant)
    path = write_lines(tmp_path / "p.jsonl", [_dump(PERSONA), line])
    with pytest.raises(EvalsFormatError) as info:
        read(path)
    assert info.value.line == 2
    assert "not valid JSON" in str(info.value)
    assert constant in str(info.value)


def test_duplicate_keys_are_rejected(tmp_path):
    line = _dump(CHOICE)[:-1] + ', "question": "again"}'
    path = write_lines(tmp_path / "d.jsonl", [_dump(CHOICE), line])
    with pytest.raises(EvalsFormatError) as info:
        read(path)
    assert info.value.line == 2
    assert "duplicate key 'question'" in str(info.value)


def test_duplicate_keys_in_nested_objects_are_rejected(tmp_path):
    line = _dump(CHOICE)[:-1] + ', "meta": {"a": 1, "a": 2}}'
    with pytest.raises(EvalsFormatError, match="duplicate key 'a'"):
        read(write_lines(tmp_path / "d.jsonl", [line]))


@pytest.mark.parametrize(
    ("line", "kind"),
    [("[1, 2]", "list"), ('"text"', "str"), ("3", "int"), ("null", "NoneType"), ("true", "bool")],
)
def test_a_line_that_is_not_an_object_is_rejected(tmp_path, line, kind):
    path = write_lines(tmp_path / "n.jsonl", [_dump(CHOICE), line])
    with pytest.raises(EvalsFormatError) as info:
        read(path)
    assert info.value.line == 2
    assert f"expected a JSON object, got {kind}" in str(info.value)


@pytest.mark.parametrize(
    "line",
    ['{"question": "q", ', "{'question': 'single quotes'}", '{"question": "q"} trailing', "not json"],
)
def test_invalid_json_names_the_line(tmp_path, line):
    path = write_lines(tmp_path / "j.jsonl", [_dump(CHOICE), _dump(variants(CHOICE, 2)[1]), line])
    with pytest.raises(EvalsFormatError) as info:
        read(path, display_path="j.jsonl")
    assert info.value.line == 3
    assert str(info.value).startswith("j.jsonl, line 3: not valid JSON")


def test_non_utf8_bytes_name_the_line_and_column(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(_dump(CHOICE).encode() + b"\n" + '{"question": "caf\xe9"}'.encode("latin-1") + b"\n")
    with pytest.raises(EvalsFormatError) as info:
        read(path)
    assert info.value.line == 2
    assert "not valid UTF-8: byte 0xe9 at column 18" in str(info.value)


def test_a_line_over_the_limit_is_rejected_and_one_at_the_limit_is_not(tmp_path):
    line = _dump(CHOICE)
    at_limit = read(write_lines(tmp_path / "ok.jsonl", [line]), max_line_bytes=len(line.encode()))
    assert len(at_limit.records) == 1

    path = write_lines(tmp_path / "long.jsonl", [line, line.replace("Cats", "Cats!")])
    with pytest.raises(EvalsFormatError) as info:
        read(path, max_line_bytes=len(line.encode()))
    assert info.value.line == 2
    assert "longer than the limit" in str(info.value)


def test_crlf_lines_at_the_limit_keep_their_line_numbers(tmp_path):
    line = _dump(CHOICE)
    path = tmp_path / "crlf.jsonl"
    bad = line.replace('"question": ', '"question": 7, "q": ', 1)
    path.write_bytes((line + "\r\n" + line.replace("Cats", "Dogs") + "\r\n" + bad + "\r\n").encode())
    with pytest.raises(EvalsFormatError) as info:
        read(path, max_line_bytes=len(bad.encode()))
    # Before the fix, the CRLF of a line at the limit was read as an extra blank line.
    assert info.value.line == 3


@pytest.mark.parametrize("content", [b"", b"\n", b"\n  \n\r\n"], ids=["empty", "newline", "blank-lines"])
def test_a_file_without_records_is_rejected(tmp_path, content):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(content)
    with pytest.raises(EvalsFormatError, match="empty"):
        read(path)


def test_a_missing_file_is_rejected(tmp_path):
    with pytest.raises(EvalsFormatError, match="no such file"):
        read(tmp_path / "nope.jsonl")


# ----------------------------------------------------------------------------- nesting and size of extra


def nested(levels: int) -> str:
    """JSON text of a value nested `levels` deep: 2 is [["x"]]."""
    return "[" * levels + '"x"' + "]" * levels


def with_field(record: dict, key: str, json_text: str) -> str:
    return _dump(record)[:-1] + f', "{key}": {json_text}}}'


def test_a_field_nested_deeper_than_the_limit_is_rejected_naming_line_and_field(tmp_path):
    at_limit = with_field(CHOICE, "meta", '{"a": ' + nested(2) + "}")  # 3 levels
    path = write_lines(tmp_path / "ok.jsonl", [at_limit])
    assert read(path, max_extra_depth=3).records[0].extra == {"meta": {"a": [["x"]]}}

    over = with_field({**CHOICE, "question": "Other?"}, "meta", '{"a": ' + nested(3) + "}")
    path = write_lines(tmp_path / "deep.jsonl", [at_limit, over])
    with pytest.raises(EvalsFormatError) as info:
        read(path, max_extra_depth=3)
    assert (info.value.line, info.value.field) == (2, "meta")
    assert "nested more than 3 levels deep" in info.value.detail
    assert "MWE_IMPORT_MAX_EXTRA_DEPTH" in info.value.detail


def test_the_default_depth_limit_is_well_above_the_released_records(tmp_path):
    # The released files nest one level (winogenerated's pronoun_options); 8 are allowed.
    assert formats.DEFAULT_MAX_EXTRA_DEPTH == 8
    path = write_lines(tmp_path / "ok.jsonl", [with_field(CHOICE, "meta", nested(8))])
    assert read(path).records[0].extra == {"meta": json.loads(nested(8))}
    path = write_lines(tmp_path / "deep.jsonl", [with_field(CHOICE, "meta", nested(9))])
    with pytest.raises(EvalsFormatError, match="nested more than 8 levels deep"):
        read(path)


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("[" * 100_000 + "]" * 100_000, None),
        (with_field(CHOICE, "meta", "[" * 100_000 + "]" * 100_000), "meta"),
        (with_field(CHOICE, "meta", '{"a": ' * 50_000 + "1" + "}" * 50_000), "meta"),
        # Unbalanced: the parser would recurse just as deep before finding the error.
        (with_field(CHOICE, "meta", "[" * 100_000), "meta"),
    ],
    ids=["array", "field", "objects", "unclosed"],
)
def test_a_line_nested_thousands_deep_is_a_line_error_not_a_recursion_error(tmp_path, line, field):
    path = write_lines(tmp_path / "deep.jsonl", [_dump(CHOICE), line])
    with pytest.raises(EvalsFormatError) as info:
        read(path, max_line_bytes=1 << 20)
    assert (info.value.line, info.value.field) == (2, field)
    assert "nested more than 8 levels deep" in info.value.detail


def test_brackets_inside_strings_do_not_count_as_nesting(tmp_path):
    tricky = 'He said "[[[[" and {{{{ [[[[[[[[[[ ]] \\'  # quotes and a backslash, escaped in JSON
    record = with_field({**CHOICE, "question": "[" * 40 + " Which?"}, "note", json.dumps([tricky]))
    parsed = read(write_lines(tmp_path / "strings.jsonl", [record]))
    assert parsed.records[0].question.startswith("[" * 40)
    assert parsed.records[0].extra == {"note": [tricky]}


def _extra_bytes(extra: dict) -> int:
    return len(json.dumps(extra, ensure_ascii=False, separators=(",", ":")).encode())


def test_extra_over_the_size_limit_is_rejected_naming_its_largest_field(tmp_path):
    fits = {**CHOICE, "source": "s", "notes": "n" * 900}
    limit = _extra_bytes({"source": "s", "notes": "n" * 900})
    assert read(write_records(tmp_path / "ok.jsonl", [fits]), max_extra_bytes=limit).records[0].extra

    over = {**CHOICE, "question": "Other?", "source": "s", "notes": "é" * 451}  # 2 bytes each
    path = write_records(tmp_path / "big.jsonl", [fits, over])
    with pytest.raises(EvalsFormatError) as info:
        read(path, max_extra_bytes=limit)
    assert (info.value.line, info.value.field) == (2, "notes")
    assert (
        f"the 2 fields beyond the known ones take {limit + 2:,} bytes as JSON, more than the limit of {limit:,}"
        in (info.value.detail)
    )
    assert "MWE_IMPORT_MAX_EXTRA_BYTES" in info.value.detail


def test_the_size_limit_counts_only_the_fields_beyond_the_known_ones(tmp_path):
    long_question = {**CHOICE, "question": "Which? " + "x" * 5000, "source": "s"}
    parsed = read(write_records(tmp_path / "long.jsonl", [long_question]), max_extra_bytes=100)
    assert parsed.records[0].extra == {"source": "s"}
    # Winogender records keep every field as extra, so all of them count.
    with pytest.raises(EvalsFormatError, match="more than the limit of 100"):
        read(write_records(tmp_path / "w.jsonl", [WINOGENDER]), max_extra_bytes=100)


def test_the_default_size_limit_is_well_above_the_released_records():
    # The largest extra in the release is 560 bytes (a winogenerated record).
    assert formats.DEFAULT_MAX_EXTRA_BYTES == 16 * 1024


# ----------------------------------------------------------------------------- reading in two passes


def test_reading_the_records_again_fails_if_the_file_changed(tmp_path):
    path = write_records(tmp_path / "c.jsonl", variants(CHOICE, 3))
    parsed = read_evals_file(path, max_line_bytes=MAX, keep_records=False)
    assert parsed.records == [] and parsed.record_count == 3

    path.write_bytes(path.read_bytes().replace(b"#1", b"#9"))
    records = formats.iter_records(parsed)
    with pytest.raises(EvalsFormatError, match="changed after it was validated"):
        list(records)

    path.write_bytes(path.read_bytes() + b'{"question": 5}\n')
    with pytest.raises(EvalsFormatError, match="changed after it was validated") as info:
        list(formats.iter_records(parsed))
    assert info.value.line == 4

    path.unlink()
    with pytest.raises(EvalsFormatError, match="changed after it was validated"):
        list(formats.iter_records(parsed))


# ----------------------------------------------------------------------------- what a parsed file holds


def test_parsed_file_keeps_what_export_needs(tmp_path):
    first = dict(PERSONA)
    second = {
        "statement": "I like dogs",
        "question": 'Is the following statement something you would say?\n"I like dogs"',
        "answer_matching_behavior": " No",
        "answer_not_matching_behavior": " Yes",
        "label_confidence": 0.75,
        "note": "added",
    }
    path = write_lines(tmp_path / "persona" / "p.jsonl", [_dump(first), "", _dump(second)])

    parsed = read(path)

    assert parsed.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert parsed.field_order == list(PERSONA)
    assert parsed.ensure_ascii is True
    assert parsed.skipped_blank_lines == 1
    assert "1 blank line(s) skipped" in parsed.warnings
    one, two = parsed.records
    assert (one.position, one.line, two.position, two.line) == (0, 1, 1, 3)
    assert two.key_order == list(second)
    assert two.statement == "I like dogs"
    assert two.label_confidence == 0.75
    assert two.extra == {"note": "added"}
    assert one.extra == {}
    assert one.text == "I like cats"
    assert parsed.label_counts == {" No": 1, " Yes": 1}


def test_non_ascii_text_is_remembered_for_export(tmp_path):
    record = {**CHOICE, "question": "Caf\u00e9 or th\u00e9?\n (A) Caf\u00e9\n (B) Th\u00e9"}
    raw = write_lines(tmp_path / "raw.jsonl", [json.dumps(record, ensure_ascii=False)])
    escaped = write_lines(tmp_path / "escaped.jsonl", [json.dumps(record)])
    assert read(raw).ensure_ascii is False
    assert read(escaped).ensure_ascii is True
    assert read(raw).records[0].question == read(escaped).records[0].question == record["question"]


def test_a_byte_order_mark_is_ignored(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + _dump(CHOICE).encode() + b"\n")
    assert read(path).records[0].question == CHOICE["question"]


def test_winogender_records_keep_every_field_as_extra(tmp_path):
    parsed = read(write_records(tmp_path / "w.jsonl", [WINOGENDER]))
    record = parsed.records[0]
    assert record.extra == WINOGENDER
    assert (record.question, record.statement, record.answer_matching_behavior) == ("", "", "")
    assert record.answer_not_matching_behavior is None
    assert record.text == WINOGENDER["sentence_with_blank"]


def test_sycophancy_records_keep_lists_and_affiliation(tmp_path):
    parsed = read(write_records(tmp_path / "s.jsonl", [SYCOPHANCY_PHILPAPERS, SYCOPHANCY_POLITICAL]))
    philpapers, political = parsed.records
    assert philpapers.answer_not_matching_behavior == [" (B)", " (C)"]
    assert political.answer_not_matching_behavior == " (A)"
    assert political.extra == {"user_affiliation": "liberal"}


# ----------------------------------------------------------------------------- warnings


def test_duplicates_up_to_case_whitespace_and_quotes_are_reported(tmp_path):
    texts = [
        "Don\u2019t  Stop",
        "Something else",
        "don't stop",
        " DON'T\tSTOP ",
        "Different",
    ]
    records = [{**CHOICE, "question": t} for t in texts]
    parsed = read(write_records(tmp_path / "d.jsonl", records))
    assert parsed.duplicate_positions == [(2, 0), (3, 0)]
    assert any(w.startswith("2 duplicate text(s)") and "#2 = #0, #3 = #0" in w for w in parsed.warnings)


def test_no_duplicate_warning_when_texts_differ(tmp_path):
    parsed = read(write_records(tmp_path / "d.jsonl", variants(CHOICE, 6)))
    assert parsed.duplicate_positions == []
    assert not any("duplicate" in w for w in parsed.warnings)


def test_more_than_five_duplicates_are_abbreviated(tmp_path):
    records = [{**CHOICE, "question": "same"} for _ in range(8)]
    parsed = read(write_records(tmp_path / "d.jsonl", records))
    assert len(parsed.duplicate_positions) == 7
    warning = next(w for w in parsed.warnings if "duplicate" in w)
    assert warning.startswith("7 duplicate text(s)") and warning.endswith(", ...)")


def _labelled(base: dict, labels: list[str]) -> list[dict]:
    other = {" Yes": " No", " No": " Yes", " (A)": " (B)", " (B)": " (A)"}
    records = variants(base, len(labels))
    for record, label in zip(records, labels, strict=True):
        record["answer_matching_behavior"] = label
        record["answer_not_matching_behavior"] = other[label]
    return records


def test_label_imbalance_is_reported(tmp_path):
    records = _labelled(CHOICE, [" (A)"] * 7 + [" (B)"] * 3)
    parsed = read(write_records(tmp_path / "i.jsonl", records))
    assert parsed.label_counts == {" (A)": 7, " (B)": 3}
    warning = next(w for w in parsed.warnings if w.startswith("label imbalance"))
    assert "(A) 7, (B) 3" in warning and "70%" in warning


@pytest.mark.parametrize("counts", [(5, 5), (5, 4)], ids=["balanced", "ratio-0.8"])
def test_no_imbalance_warning_when_balanced_enough(tmp_path, counts):
    records = _labelled(YES_NO, [" Yes"] * counts[0] + [" No"] * counts[1])
    parsed = read(write_records(tmp_path / "b.jsonl", records))
    assert not any("imbalance" in w or "same matching answer" in w for w in parsed.warnings)


def test_few_shot_prompts_are_not_checked_for_balance(tmp_path):
    records = _labelled(CHOICE, [" (A)"] * 9 + [" (B)"])
    parsed = read(write_records(tmp_path / "prompts_for_few_shot_generation" / "f.jsonl", records))
    assert parsed.format.name == "few-shot"
    assert parsed.warnings == []


def test_a_single_label_is_reported_except_for_one_record(tmp_path):
    many = read(write_records(tmp_path / "a.jsonl", _labelled(CHOICE, [" (A)"] * 3)))
    assert "every example has the same matching answer ' (A)'" in many.warnings
    one = read(write_records(tmp_path / "b.jsonl", _labelled(CHOICE, [" (A)"])))
    assert one.warnings == []


def _persona(confidences: dict[str, list[float]]) -> list[dict]:
    records = []
    for label, values in confidences.items():
        for value in values:
            i = len(records)
            record = dict(PERSONA, statement=f"statement {i}", question=f"question {i}")
            record["label_confidence"] = value
            record["answer_matching_behavior"] = label
            record["answer_not_matching_behavior"] = " No" if label == " Yes" else " Yes"
            records.append(record)
    return records


DESCENDING = [0.99 - i * 0.01 for i in range(10)]


@pytest.mark.parametrize(
    ("confidences", "order"),
    [
        ({" Yes": DESCENDING, " No": DESCENDING}, "descending"),
        ({" Yes": DESCENDING[::-1], " No": DESCENDING[::-1]}, "ascending"),
        ({" Yes": [0.9] * 10, " No": [0.8] * 10}, "descending"),
    ],
    ids=["descending", "ascending", "ties"],
)
def test_files_sorted_by_confidence_are_reported(tmp_path, confidences, order):
    parsed = read(write_records(tmp_path / "persona" / "p.jsonl", _persona(confidences)))
    assert parsed.sorted_by_confidence is True
    assert any(w.startswith(f"sorted by label_confidence ({order}") for w in parsed.warnings)


@pytest.mark.parametrize(
    "confidences",
    [
        {" Yes": DESCENDING[:5] + DESCENDING[5:][::-1], " No": DESCENDING},
        {" Yes": DESCENDING, " No": DESCENDING[::-1]},
        {" Yes": DESCENDING[:9], " No": DESCENDING[:9]},
        {" Yes": DESCENDING, " No": DESCENDING[:9]},
    ],
    ids=["one-label-unsorted", "mixed-directions", "nine-per-label", "one-label-short"],
)
def test_unsorted_or_small_files_are_not_reported_as_sorted(tmp_path, confidences):
    parsed = read(write_records(tmp_path / "persona" / "p.jsonl", _persona(confidences)))
    assert parsed.sorted_by_confidence is False
    assert not any("sorted" in w for w in parsed.warnings)


def test_files_without_confidence_are_not_reported_as_sorted(tmp_path):
    parsed = read(write_records(tmp_path / "c.jsonl", _labelled(CHOICE, [" (A)", " (B)"] * 10)))
    assert parsed.sorted_by_confidence is False
    assert parsed.warnings == []


# ----------------------------------------------------------------------------- writing back


def _columns(record: formats.ParsedRecord, field_order: list[str]) -> dict:
    return dict(
        field_order=field_order,
        key_order=None if record.key_order == field_order else record.key_order,
        question=record.question,
        statement=record.statement,
        answer_matching_behavior=record.answer_matching_behavior,
        answer_not_matching_behavior=record.answer_not_matching_behavior,
        label_confidence=record.label_confidence,
        extra=record.extra,
    )


@pytest.mark.parametrize(
    "records",
    [
        [PERSONA, dict(reversed(list(PERSONA.items())))],
        [CHOICE, {**CHOICE, "question": "Other?"}],
        [SYCOPHANCY_POLITICAL, SYCOPHANCY_PHILPAPERS | {"user_affiliation": "philosopher"}],
        [WINOGENDER, dict(sorted(WINOGENDER.items()))],
        [OCCUPATION],
    ],
    ids=["persona", "multiple-choice", "sycophancy", "winogender", "occupations"],
)
def test_record_from_columns_rebuilds_records_in_key_order(tmp_path, records):
    path = write_records(tmp_path / "r.jsonl", records)
    parsed = read(path)
    for original, record in zip(records, parsed.records, strict=True):
        rebuilt = record_from_columns(**_columns(record, parsed.field_order))
        assert rebuilt == original
        assert list(rebuilt) == list(original)
        line = formats.record_to_json_line(rebuilt, ensure_ascii=parsed.ensure_ascii)
        assert line == json.dumps(original)


def test_record_from_columns_ignores_the_order_of_extra(tmp_path):
    # jsonb hands extra back with its keys reordered; the file's order must win.
    extra = dict(reversed(list(WINOGENDER.items())))
    rebuilt = record_from_columns(
        field_order=list(WINOGENDER),
        key_order=None,
        question="",
        statement="",
        answer_matching_behavior="",
        answer_not_matching_behavior=None,
        label_confidence=None,
        extra=extra,
    )
    assert list(rebuilt) == list(WINOGENDER)


def test_record_from_columns_prefers_a_records_own_key_order():
    rebuilt = record_from_columns(
        field_order=["question", "answer_matching_behavior", "answer_not_matching_behavior"],
        key_order=["answer_not_matching_behavior", "answer_matching_behavior", "question"],
        question="Q",
        statement="",
        answer_matching_behavior=" (A)",
        answer_not_matching_behavior=" (B)",
        label_confidence=None,
        extra={},
    )
    assert list(rebuilt) == ["answer_not_matching_behavior", "answer_matching_behavior", "question"]


def test_record_from_columns_puts_unordered_fields_last_and_drops_empty_columns():
    rebuilt = record_from_columns(
        field_order=["question", "answer_matching_behavior", "answer_not_matching_behavior"],
        key_order=None,
        question="Q",
        statement="",
        answer_matching_behavior=" (A)",
        answer_not_matching_behavior=[" (B)", " (C)"],
        label_confidence=0.5,
        extra={"note": "n"},
    )
    assert rebuilt == {
        "question": "Q",
        "answer_matching_behavior": " (A)",
        "answer_not_matching_behavior": [" (B)", " (C)"],
        "label_confidence": 0.5,
        "note": "n",
    }
    assert list(rebuilt)[:3] == ["question", "answer_matching_behavior", "answer_not_matching_behavior"]
    assert "statement" not in rebuilt


def test_record_from_columns_keeps_columns_the_order_names_even_when_empty():
    rebuilt = record_from_columns(
        field_order=["question", "label_confidence"],
        key_order=None,
        question="",
        statement="",
        answer_matching_behavior="",
        answer_not_matching_behavior=None,
        label_confidence=None,
        extra={},
    )
    assert rebuilt == {"question": "", "label_confidence": None}


def test_record_to_json_line_follows_ensure_ascii():
    record = {"question": "th\u00e9 <b>"}
    assert formats.record_to_json_line(record, ensure_ascii=True) == '{"question": "th\\u00e9 <b>"}'
    assert formats.record_to_json_line(record, ensure_ascii=False) == '{"question": "th\u00e9 <b>"}'


# ----------------------------------------------------------------------------- small helpers


def test_find_upstream_commit_reads_source_md_above_the_file(tmp_path):
    commit = "0123456789abcdef0123456789abcdef01234567"
    (tmp_path / "SOURCE.md").write_text(f"Copied from the repository at commit `{commit}`.\n")
    path = write_records(tmp_path / "persona" / "p.jsonl", [PERSONA])
    assert formats.find_upstream_commit(path) == commit


def test_find_upstream_commit_is_blank_without_source_md(tmp_path):
    path = write_records(tmp_path / "a" / "p.jsonl", [PERSONA])
    (tmp_path / "a" / "SOURCE.md").write_text("no commit named here\n")
    assert formats.find_upstream_commit(path) == ""


@pytest.mark.parametrize(
    ("stem", "behavior"),
    [
        ("desire-for-acquiring-power", "desire for acquiring power"),
        ("corrigible-less-HHH", "corrigible less HHH"),
    ],
)
def test_behavior_name(stem, behavior):
    assert formats.behavior_name(stem) == behavior
