"""Stage 4, the tokenizer: SentencePiece models loaded with their special tokens checked and
encoding in batches (tokenize), a seeded sample of the whole input's sentences (tokenizer_sample),
training on it (training, tokenizer_source), and the choice of the build's tokenizer: given,
saved by an earlier run for the same settings, or trained now (tokenizer_source). Imports
ground, config, storage and reading."""
