"""Stage 8, reading a build back: the training side's tf.data loader that keeps the build it
resolved (loader), decoded examples for `inspect` (inspection), its statistics and mixing
(stats), and `verify` (verification). Imports the stages below; nothing imports it but the
CLI."""
