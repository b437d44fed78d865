"""The `make-pretrain-records` command: a Click group whose commands import TensorFlow lazily."""

from __future__ import annotations

import os

import click

from pretrain_records.cli import version

# TensorFlow's start-up chatter (oneDNN notices, absl warnings) is noise for a CLI user.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version.VERSION, prog_name="make-pretrain-records")
def main() -> None:
    """Raw text corpora to sharded, TPU-ready BERT/ALBERT pretraining TFRecords."""
