"""Stage 6, the output directory: its lock, its private `.mpr` folder of kept units, the saved
tokenizer and the ledger (outdir), and the builds it holds: each in a folder of its own,
published by one atomic write of manifest.json, old ones collected after the retention, and
only the tool's files ever deleted (publication). Imports the stages below."""
