"""The tool's version, readable without importing TensorFlow (the CLI and the manifest use it)."""

from importlib import metadata

try:
    VERSION = metadata.version("make-pretrain-records")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    VERSION = "0+unknown"
