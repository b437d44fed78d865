"""Stage 5, the records: the feature schema (schema, features), a unit's work (unit_job) and
its tf.data pipeline through the C++ masking op (unit_pipeline, chunks), its records kept as
runs sorted by shuffle key (runs), every run merged into balanced shards in one pass (merge),
the manifest that names a build's files (manifest), TFRecord frames read without TensorFlow
(frames) and the one integrity check of a file against its record (integrity). Imports the
stages below."""
