"""Stage 7, running a build: the request and its plan (build_plan: config check, scan, units,
tokenizer, kept units), units grouped and spilled (planning), the missing units built by an
executor in this process or in worker processes (executors, unit_build) or on Apache Beam
(beam), then merge, publication and summary (build). Imports the stages below."""
