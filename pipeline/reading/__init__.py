"""Stage 3, reading the corpus: input paths expanded and walked (inputs), each file recognised
(compression, text_kind), scanned and cut into pieces of bounded size (scanning, pieces,
line_ends), and a piece read into documents of sentences (lines, documents, sentences) in
whatever format it comes: lines, JSONL, text, parquet (parquet_input), Wikipedia dumps
(wikipedia, wikipedia_multistream, wikipedia_input, wikitext). Imports ground, config and
storage."""
