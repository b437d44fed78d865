"""Stage 0, the ground every stage stands on: the error classes and their exit codes (errors),
progress and log events (events), test hooks that stop or break a run at a named point
(testhooks), the tool's version, the machine's cores and memory (machine), and the seeded
hashes that give every record its shuffle key (hashing). Imports nothing of the pipeline."""
