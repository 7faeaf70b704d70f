"""Batch ingestion, the shared part (docs/batches.md): a batch's document (`state`), its
uploaded files as blocks in JetStream (`files`), the queue of completed batches (`jobs`),
rows read from JSON lines, CSV or Parquet and turned into bus messages (`rows`), and the
`inlet batch load` command (`cli`). The API is `gateway.endpoints.batches`; the loader,
`worker.batches`, runs in the lake workers.
"""
