"""Shared pytest set-up: quiet TensorFlow logs before anything imports it."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
