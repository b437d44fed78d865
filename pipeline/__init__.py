"""The build, stage by stage, from the bottom up (each stage imports only its own modules and
the stages below it; tests/test_code_shape.py checks it, with no import circles and no module
over 400 lines):

- `ground`: what every stage shares: errors and exit codes, events, test hooks, the machine.
- `config`: what a build is asked to do: the config, its keys' rules, YAML files, row filters.
- `storage`: files wherever they are (local, gs://, tf.io.gfile), read and written.
- `reading`: inputs found, scanned and cut into pieces; pieces read into documents and
  sentences, whatever their format (lines, JSONL, text, parquet, Wikipedia, compressed).
- `tokenizer`: SentencePiece: the given model, or one trained on a seeded sample of the input.
- `records`: a unit's documents into masked, keyed records (the C++ op through tf.data), kept
  as sorted runs; the runs merged into shards; the manifest; TFRecord frames and integrity.
- `outdir`: the output directory: its lock, kept units, builds in folders of their own and
  their publication by one manifest write, collection of old builds.
- `running`: a build request run: its plan, the units built by an executor (this process,
  worker processes, Beam), the merge, the publication and the summary.
- `readback`: the build read back: the training loader, `inspect` and `verify`.
"""
