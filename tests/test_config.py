"""Config checks: every mistake is one line naming the key (or file), exit 2, before any work."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from pretrain_records.cli.main import main
from pretrain_records.pipeline.config import (
    DEFAULTS,
    RULES,
    BuildConfig,
    ConfigError,
    check_value,
    load_yaml,
    resolve,
    to_yaml,
)
from pretrain_records.pipeline.tokenizer import tokenize

from tests.conftest import REPO

NAN, INF = float("nan"), float("inf")
SEED_MAX = 2**63 - 1
VOCAB_WHY = "(a vocabulary holds 261 fixed pieces: pad, unk, [CLS], [SEP], [MASK], 256 bytes)"
NOT_LANGUAGE = "sentencex has no rules or fallback for it; en applies its default rules"


def refusal(*layers: dict) -> str:
    """The message of the ConfigError that `resolve(*layers)` raises."""
    with pytest.raises(ConfigError) as caught:
        resolve(*layers)
    return str(caught.value)


def yaml_refusal(tmp_path: Path, text: str) -> str:
    """The message of the ConfigError that loading `text` as bad.yaml raises."""
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_yaml(path)
    return str(caught.value)


def alias_bomb(key: str = "language") -> str:
    """Billion laughs under `key`: nine levels of nine references each (9**9 leaves)."""
    levels = "abcdefghi"
    lines = [f"{key}:", "  - &a [x, x, x, x, x, x, x, x, x]"]
    for previous, current in zip(levels, levels[1:], strict=False):
        lines.append(f"  - &{current} [{', '.join([f'*{previous}'] * 9)}]")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Values, one key at a time (`resolve`)


def test_defaults_resolve_to_the_dataclass_defaults():
    assert resolve() == BuildConfig()
    assert resolve({}, {}) == BuildConfig()


@pytest.mark.parametrize(
    "layer, message",
    [
        # seed: 63 bits
        ({"seed": -1}, f"config key seed: must be >= 0 and <= {SEED_MAX}, got -1"),
        ({"seed": 2**63}, f"config key seed: must be >= 0 and <= {SEED_MAX}, got {2**63}"),
        (
            {"seed": 10**5000},
            f"config key seed: must be >= 0 and <= {SEED_MAX}, got <an integer of 16610 bits>",
        ),
        (
            {"seed": "12345"},
            "config key seed: must be an integer, got '12345' "
            "(a string: write 12345 without quotes)",
        ),
        # vocab_size: SentencePiece's fixed pieces, an int32 it works through
        (
            {"vocab_size": 261},
            f"config key vocab_size: must be >= 262 and <= 1000000 {VOCAB_WHY}, got 261",
        ),
        (
            {"vocab_size": 2**31},
            f"config key vocab_size: must be >= 262 and <= 1000000 {VOCAB_WHY}, got 2147483648",
        ),
        # max_seq_length and max_predictions_per_seq against the record layout
        ({"max_seq_length": 3}, "config key max_seq_length: must be >= 4 and <= 8192, got 3"),
        ({"max_seq_length": 8193}, "config key max_seq_length: must be >= 4 and <= 8192, got 8193"),
        (
            {"max_seq_length": 4, "max_predictions_per_seq": 4},
            "config key max_seq_length: "
            "sentence_task sop needs >= 5 ([CLS] A [SEP] B [SEP], a token in each segment), got 4",
        ),
        (
            {"max_seq_length": 4, "max_predictions_per_seq": 4, "sentence_task": "nsp"},
            "config key max_seq_length: sentence_task nsp needs >= 5 ([CLS] A [SEP] B [SEP], "
            "a token "
            "in each segment), got 4",
        ),
        (
            {"max_predictions_per_seq": 0},
            "config key max_predictions_per_seq: must be >= 1 and <= 8192, got 0",
        ),
        (
            {"max_predictions_per_seq": 129},
            "config key max_predictions_per_seq: must be <= max_seq_length (129 > 128)",
        ),
        ({"max_n": 0}, "config key max_n: must be >= 1 and <= 16, got 0"),
        ({"max_n": 17}, "config key max_n: must be >= 1 and <= 16, got 17"),
        ({"dupe_factor": 0}, "config key dupe_factor: must be >= 1 and <= 1000, got 0"),
        (
            {"dupe_factor": 10**9},
            "config key dupe_factor: must be >= 1 and <= 1000, got 1000000000",
        ),
        ({"dupe_factor": 3.0}, "config key dupe_factor: must be an integer, got 3.0 (a number)"),
        # num_shards: auto or five digits of shard names
        (
            {"num_shards": 0},
            "config key num_shards: must be auto or an integer in [1, 99999], got 0",
        ),
        (
            {"num_shards": 100000},
            "config key num_shards: must be auto or an integer in [1, 99999], got 100000",
        ),
        (
            {"num_shards": "many"},
            "config key num_shards: must be auto or an integer in [1, 99999], "
            "got 'many' (a string)",
        ),
        (
            {"num_shards": "²"},
            "config key num_shards: must be auto or an integer in [1, 99999], got '²' (a string)",
        ),
        (
            {"num_shards": True},
            "config key num_shards: must be auto or an integer in [1, 99999], got true (a boolean)",
        ),
        # floats: NaN and infinities fail every comparison, so they are refused by name
        (
            {"mask_ratio": NAN},
            "config key mask_ratio: must be a finite number in (0.0, 1.0], got nan",
        ),
        (
            {"mask_ratio": INF},
            "config key mask_ratio: must be a finite number in (0.0, 1.0], got inf",
        ),
        (
            {"short_seq_prob": -INF},
            "config key short_seq_prob: must be a finite number in [0.0, 1.0], got -inf",
        ),
        ({"mask_ratio": 0}, "config key mask_ratio: must be in (0.0, 1.0], got 0"),
        ({"mask_ratio": 1.5}, "config key mask_ratio: must be in (0.0, 1.0], got 1.5"),
        (
            {"mask_ratio": 1e-50},
            "config key mask_ratio: must be in (0.0, 1.0], "
            "got 1e-50 (0 as the masking op's float32)",
        ),
        (
            {"mask_ratio": "0.15"},
            "config key mask_ratio: must be a number in (0.0, 1.0], "
            "got '0.15' (a string: write 0.15 without quotes)",
        ),
        (
            {"mask_ratio": "nan"},
            "config key mask_ratio: must be a number in (0.0, 1.0], got 'nan' (a string)",
        ),
        (
            {"short_seq_prob": True},
            "config key short_seq_prob: must be a number in [0.0, 1.0], got true (a boolean)",
        ),
        # booleans, strings, choices
        ({"whole_word": 1}, "config key whole_word: must be true or false, got 1 (an integer)"),
        (
            {"whole_word": "yes"},
            "config key whole_word: must be true or false, got 'yes' (a string)",
        ),
        ({"max_n": True}, "config key max_n: must be an integer, got true (a boolean)"),
        (
            {"sentence_task": "sopp"},
            "config key sentence_task: must be one of nsp, sop, none, "
            "got 'sopp' (did you mean sop?)",
        ),
        (
            {"compression": None},
            "config key compression: must be one of none, gzip, zlib, got null",
        ),
        ({"spm_model": ""}, "config key spm_model: must be a non-empty string, got '' (a string)"),
        (
            {"spm_model": "a\x00b"},
            "config key spm_model: must not contain NUL characters, got 'a\\x00b'",
        ),
        (
            {"jsonl_field": {"a": 1}},
            "config key jsonl_field: must be a non-empty string, got "
            "{'a': 1} (a mapping of 1 item: a config is flat key: value lines)",
        ),
        # language: what sentencex splits with rules of its own or a fallback
        ({"language": "kr"}, "config key language: unknown language 'kr' (did you mean ko?)"),
        ({"language": "EN"}, "config key language: unknown language 'EN' (did you mean en?)"),
        ({"language": "xx"}, f"config key language: unknown language 'xx' ({NOT_LANGUAGE})"),
        (
            {"language": ["en"]},
            "config key language: must be a language code such as en, ko or "
            "ja, got ['en'] (a list of 1 item)",
        ),
        # keys
        ({"max_m": 3}, "unknown config key 'max_m' (did you mean max_n?)"),
        ({1: 3}, "config keys are names such as max_n, got 1 (an integer)"),
    ],
)
def test_bad_values_are_refused_naming_the_key(layer, message):
    assert refusal(layer) == message


@pytest.mark.parametrize(
    "layer, resolved",
    [
        ({"seed": 0}, {"seed": 0}),
        ({"seed": SEED_MAX}, {"seed": SEED_MAX}),
        ({"seed": 2**32}, {"seed": 2**32}),
        ({"vocab_size": 262}, {"vocab_size": 262}),
        ({"vocab_size": 1_000_000}, {"vocab_size": 1_000_000}),
        ({"num_shards": "64"}, {"num_shards": 64}),
        ({"num_shards": "0064"}, {"num_shards": 64}),
        ({"num_shards": 99999}, {"num_shards": 99999}),
        ({"mask_ratio": 1}, {"mask_ratio": 1.0}),
        ({"short_seq_prob": 0}, {"short_seq_prob": 0.0}),
        (
            {"max_seq_length": 4, "max_predictions_per_seq": 4, "sentence_task": "none"},
            {"max_seq_length": 4},
        ),
        (
            {"max_seq_length": 5, "max_predictions_per_seq": 5, "sentence_task": "nsp"},
            {"max_seq_length": 5},
        ),
        (
            {"max_seq_length": 8192, "max_predictions_per_seq": 8192},
            {"max_predictions_per_seq": 8192},
        ),
        ({"language": "zh-tw"}, {"language": "zh-tw"}),
    ],
)
def test_values_at_the_limits_are_accepted(layer, resolved):
    config = resolve(layer).to_dict()
    assert {key: config[key] for key in resolved} == resolved
    for key in ("mask_ratio", "short_seq_prob"):
        assert type(config[key]) is float


@pytest.mark.parametrize("key", [k for k, v in DEFAULTS.items() if isinstance(v, float)])
@pytest.mark.parametrize("value", [NAN, INF, -INF])
def test_every_float_key_refuses_nan_and_infinities(key, value):
    assert refusal({key: value}).startswith(f"config key {key}: must be a finite number in ")


@pytest.mark.parametrize(
    "key", [k for k, v in DEFAULTS.items() if isinstance(v, int) and not isinstance(v, bool)]
)
@pytest.mark.parametrize("value", [10**30, -1, True, "3", 2.5, [3], None])
def test_every_integer_key_refuses_absurd_sizes_and_other_types(key, value):
    assert refusal({key: value}).startswith(f"config key {key}: must be ")


def test_later_layers_win_and_each_layer_is_checked():
    assert resolve({"max_n": 2}, {"max_n": 4}).max_n == 4
    assert refusal({"max_n": 0}, {"max_n": 4}) == "config key max_n: must be >= 1 and <= 16, got 0"


@pytest.mark.parametrize(
    "value, shown",
    [
        ("x" * 10_000_000, f"'{'x' * 76}... (10000000 characters)"),
        (
            list(range(10**6)),
            "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21... "
            "(a list of 1000000 items)",
        ),
        (
            {str(i): i for i in range(10**5)},
            "{'0': 0, '1': 1, '2': 2, '3': 3, '4': 4, '5': 5, '6': 6, '7': 7, '8': 8, '9':... "
            "(a mapping of 100000 items: a config is flat key: value lines)",
        ),
    ],
)
def test_messages_quote_at_most_80_characters_of_a_value_and_take_no_time(value, shown):
    start = time.perf_counter()
    message = refusal({"language": value})
    assert time.perf_counter() - start < 0.5
    assert shown in message
    assert len(shown.split(" (")[0]) <= 80


def test_a_long_unknown_key_is_cut_too():
    message = refusal({"k" * 10**6: 1})
    assert (
        message
        == "unknown config key '"
        + "k" * 76
        + "... (1000000 characters) (known keys: "
        + (", ".join(RULES) + ")")
    )


def test_check_value_names_the_key():
    check_value("max_n", 3)
    with pytest.raises(ConfigError, match="^config key max_n: must be >= 1 and <= 16, got 99$"):
        check_value("max_n", 99)


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


# ---------------------------------------------------------------------------------------------
# YAML files (`load_yaml`)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "bad.yaml: the config is empty (expected key: value lines such as max_n: 3)"),
        (
            "# only a comment\n",
            "bad.yaml: the config is empty (expected key: value lines such as max_n: 3)",
        ),
        ("{}\n", "bad.yaml: the config is empty (expected key: value lines such as max_n: 3)"),
        (
            "- max_n: 3\n- seed: 1\n",
            "bad.yaml: a config must be a mapping of keys to values, got a list of 2 items",
        ),
        ("max_n\n", "bad.yaml: a config must be a mapping of keys to values, got a string"),
        (
            "max_n: 3\nseed: 1\nmax_n: 4\n",
            "bad.yaml:3: duplicate config key 'max_n' (first at line 1)",
        ),
        (
            "!!python/object:os.system {}\n",
            "bad.yaml:1: tag !!python/object:os.system is not "
            "allowed (configs are read with a safe loader)",
        ),
        (
            "seed: 1\nlanguage: !!python/object/apply:os.system [echo hi]\n",
            "bad.yaml:2: config "
            "key language: tag !!python/object/apply:os.system is not allowed (configs are read "
            "with a safe loader)",
        ),
        (
            "language: !lang en\n",
            "bad.yaml:1: config key language: tag !lang is not allowed "
            "(configs are read with a safe loader)",
        ),
        (
            "max_n: 3\nmask_ratio: .nan\n",
            "bad.yaml:2: config key mask_ratio: must be a finite number in (0.0, 1.0], got nan",
        ),
        (
            "short_seq_prob: -.inf\n",
            "bad.yaml:1: config key short_seq_prob: must be a finite "
            "number in [0.0, 1.0], got -inf",
        ),
        (
            "mask_ratio: .Inf\n",
            "bad.yaml:1: config key mask_ratio: must be a finite number in (0.0, 1.0], got inf",
        ),
        ("1: 2\n", "bad.yaml:1: config keys are names such as max_n, got 1 (an integer)"),
        ("~: 2\n", "bad.yaml:1: config keys are names such as max_n, got null"),
        (
            "? [a, b]\n: 2\n",
            "bad.yaml:1: config keys are names such as max_n, got ['a', 'b'] (a list of 2 items)",
        ),
        ("<<: {max_n: 3}\n", "bad.yaml:1: merge keys (<<) are not allowed: a config is flat"),
        (
            "language:\n  code: en\n",
            "bad.yaml:1: config key language: must be a language code "
            "such as en, ko or ja, got {'code': 'en'} (a mapping of 1 item: a config is flat key: "
            "value lines)",
        ),
        ("max_n: yes\n", "bad.yaml:1: config key max_n: must be an integer, got true (a boolean)"),
        (
            "vocab_size: '32000'\n",
            "bad.yaml:1: config key vocab_size: must be an integer, got "
            "'32000' (a string: write 32000 without quotes)",
        ),
        (
            "seed: " + "9" * 5000 + "\n",
            "bad.yaml:1: config key seed: invalid YAML (a number of too many digits)",
        ),
        (
            "seed: 2020-13-01\n",
            "bad.yaml:1: config key seed: invalid YAML (month must be in 1..12)",
        ),
        (
            "max_n: [\n",
            "bad.yaml:2: invalid YAML (expected the node content, but found '<stream end>')",
        ),
        (
            "max_n: 3\n---\nseed: 1\n",
            "bad.yaml:2: invalid YAML (expected a single document in "
            "the stream, but found another document)",
        ),
        (
            "max_n: 3\x00\n",
            "bad.yaml: invalid YAML (unacceptable character #x0000: special "
            "characters are not allowed)",
        ),
        ("max_m: 3\n", "bad.yaml:1: unknown config key 'max_m' (did you mean max_n?)"),
        (
            "language: kr\n",
            "bad.yaml:1: config key language: unknown language 'kr' (did you mean ko?)",
        ),
        (
            alias_bomb(),
            "bad.yaml:1: config key language: must be a language code such as en, ko "
            "or ja, got [['x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'], [[...], [...], [...], "
            "[...], ... (a list of 9 items)",
        ),
    ],
)
def test_bad_files_are_refused_naming_file_line_and_key(tmp_path, text, message):
    start = time.perf_counter()
    assert yaml_refusal(tmp_path, text) == f"{tmp_path}/{message}"
    assert time.perf_counter() - start < 0.5


def test_deep_nesting_is_refused_as_invalid_yaml(tmp_path):
    message = yaml_refusal(tmp_path, "max_n: " + "[" * 5000 + "]" * 5000 + "\n")
    assert message == f"{tmp_path}/bad.yaml: invalid YAML (nested too deeply)"


def test_files_that_are_not_small_utf8_text_are_refused(tmp_path):
    (tmp_path / "big.yaml").write_text("# " + "x" * (1 << 20) + "\n")
    (tmp_path / "latin1.yaml").write_bytes("language: é\n".encode("latin-1"))
    expected = {
        "big.yaml": "too large for a config (over 1048576 bytes)",
        "latin1.yaml": "not UTF-8 text (byte 10)",
    }
    for name, problem in expected.items():
        with pytest.raises(ConfigError) as caught:
            load_yaml(tmp_path / name)
        assert str(caught.value) == f"{tmp_path}/{name}: {problem}"
    with pytest.raises(ConfigError, match="^cannot read config .*/absent.yaml: No such file"):
        load_yaml(tmp_path / "absent.yaml")


def test_a_good_file_loads_as_written(tmp_path):
    path = tmp_path / "good.yaml"
    path.write_text("language: ko\nnum_shards: 8\nseed: 9223372036854775807\nmask_ratio: 1\n")
    assert load_yaml(path) == {
        "language": "ko",
        "num_shards": 8,
        "seed": SEED_MAX,
        "mask_ratio": 1,
    }


def test_shipped_configs_are_valid():
    for name in ("tiny", "bert_base", "albert_base"):
        resolve(load_yaml(REPO / "configs" / f"{name}.yaml"))


def test_the_published_config_reads_back_as_the_same_config(tmp_path):
    config = resolve({"spm_model": "gs://b/m.model", "num_shards": "12", "seed": SEED_MAX})
    path = tmp_path / "config.yaml"
    path.write_text(to_yaml(config))
    assert resolve(load_yaml(path)) == config


# ---------------------------------------------------------------------------------------------
# The seed reaches SentencePiece whole


def test_sentencepiece_seed_keeps_32_bit_seeds_and_mixes_larger_ones():
    assert [tokenize.sentencepiece_seed(s) for s in (0, 12345, 2**32 - 2)] == [0, 12345, 2**32 - 2]
    mixed = [tokenize.sentencepiece_seed(s) for s in (2**32 - 1, 2**32, 2**40, SEED_MAX)]
    assert all(0 <= s < 2**32 - 1 for s in mixed)  # 2**32 - 1 means "random" to SentencePiece
    assert len(set(mixed)) == 4
    assert mixed == [tokenize.sentencepiece_seed(s) for s in (2**32 - 1, 2**32, 2**40, SEED_MAX)]


def test_sentencepiece_trains_with_any_seed_of_the_range():
    sentences = [f"sentence number {i} has words like w{i % 17} and v{i % 29}." for i in range(300)]
    for seed in (2**32, SEED_MAX):
        first = tokenize.train(iter(sentences), 300, seed)
        assert tokenize.train(iter(sentences), 300, seed) == first


# ---------------------------------------------------------------------------------------------
# Through the command line: exit 2, one line, nothing written, TensorFlow not imported


def build_refusal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: object) -> str:
    """The error of `build INPUT -o OUT *args`, asserting exit 2, a single `error:` line on
    stderr, nothing on stdout, no OUT, and no TensorFlow import (it would raise here)."""
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    source = tmp_path / "input.txt"
    source.write_text("One sentence.\nAnother one.\n")
    out = tmp_path / "out"
    command = ["build", str(source), "-o", str(out), *map(str, args)]
    result = CliRunner().invoke(main, command)
    report = (
        f"args: {command}\nexit: {result.exit_code}\nstdout:\n{result.stdout}\n"
        f"stderr:\n{result.stderr}\nexception: {result.exception!r}"
    )
    assert result.exit_code == 2, report
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("make-pretrain-records: error: "), report
    assert result.stdout == "", report
    assert not out.exists(), report
    return lines[0].removeprefix("make-pretrain-records: error: ")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--max-n", "0"], "config key max_n: must be >= 1 and <= 16, got 0"),
        (
            ["--max-predictions-per-seq", "200"],
            "config key max_predictions_per_seq: must be <= max_seq_length (200 > 128)",
        ),
        (
            ["--num-shards", "many"],
            "config key num_shards: must be auto or an integer in [1, 99999], "
            "got 'many' (a string)",
        ),
        (
            ["--mask-ratio", "nan"],
            "config key mask_ratio: must be a finite number in (0.0, 1.0], got nan",
        ),
        (
            ["--short-seq-prob", "inf"],
            "config key short_seq_prob: must be a finite number in [0.0, 1.0], got inf",
        ),
        (["--seed", str(2**63)], f"config key seed: must be >= 0 and <= {SEED_MAX}, got {2**63}"),
        (["--seed", "-1"], f"config key seed: must be >= 0 and <= {SEED_MAX}, got -1"),
        (
            ["--vocab-size", str(2**31)],
            f"config key vocab_size: must be >= 262 and <= 1000000 {VOCAB_WHY}, got 2147483648",
        ),
        (["--language", "kr"], "config key language: unknown language 'kr' (did you mean ko?)"),
        (
            ["--max-seq-length", "4", "--max-predictions-per-seq", "2"],
            "config key max_seq_length: "
            "sentence_task sop needs >= 5 ([CLS] A [SEP] B [SEP], a token in each segment), got 4",
        ),
        (
            ["--language", "x" * 100_000],
            "config key language: unknown language '"
            + "x" * 76
            + f"... (100000 characters) ({NOT_LANGUAGE})",
        ),
    ],
)
def test_bad_options_exit_2_naming_the_key(tmp_path, monkeypatch, args, message):
    assert build_refusal(tmp_path, monkeypatch, *args) == message


@pytest.mark.parametrize(
    "text, options, message",
    [
        ("max_m: 3\n", [], "bad.yaml:1: unknown config key 'max_m' (did you mean max_n?)"),
        (
            "max_n: three\n",
            [],
            "bad.yaml:1: config key max_n: must be an integer, got 'three' (a string)",
        ),
        (
            "mask_ratio: 1.5\n",
            [],
            "bad.yaml:1: config key mask_ratio: must be in (0.0, 1.0], got 1.5",
        ),
        (
            "sentence_task: mlm\n",
            [],
            "bad.yaml:1: config key sentence_task: must be one of nsp, sop, none, got 'mlm'",
        ),
        (
            "whole_word: 1\n",
            [],
            "bad.yaml:1: config key whole_word: must be true or false, got 1 (an integer)",
        ),
        (
            "max_n: [\n",
            [],
            "bad.yaml:2: invalid YAML (expected the node content, but found '<stream end>')",
        ),
        (
            "!!python/object:os.system {}\n",
            [],
            "bad.yaml:1: tag !!python/object:os.system is not "
            "allowed (configs are read with a safe loader)",
        ),
        (
            "mask_ratio: .nan\n",
            [],
            "bad.yaml:1: config key mask_ratio: must be a finite number in (0.0, 1.0], got nan",
        ),
        (
            "- max_n: 3\n",
            [],
            "bad.yaml: a config must be a mapping of keys to values, got a list of 1 item",
        ),
        ("", [], "bad.yaml: the config is empty (expected key: value lines such as max_n: 3)"),
        ("max_n: 3\nmax_n: 4\n", [], "bad.yaml:2: duplicate config key 'max_n' (first at line 1)"),
        (
            alias_bomb(),
            [],
            "bad.yaml:1: config key language: must be a language code such as "
            "en, ko or ja, got [['x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'], [[...], [...], "
            "[...], [...], ... (a list of 9 items)",
        ),
        # the CLI layer is checked after the file, and wins over it
        (
            "max_seq_length: 64\n",
            ["--max-predictions-per-seq", "65"],
            "config key max_predictions_per_seq: must be <= max_seq_length (65 > 64)",
        ),
    ],
)
def test_bad_config_files_exit_2_naming_file_and_key(tmp_path, monkeypatch, text, options, message):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    refused = build_refusal(tmp_path, monkeypatch, "--config", config, *options)
    assert refused == (message if message.startswith("config key") else f"{tmp_path}/{message}")
