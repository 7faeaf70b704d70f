"""The Catalog at runtime: datasets, streaming connections, datastreams and sandboxes that the
API creates and edits while every process runs.

They live in one NATS key-value bucket (`inlet_catalog`, replicated like the other buckets),
which every gateway and worker follows (`inlet.catalog.live`); each change is installed into
the process's `Config` (its `datasets`, `connections` and `datastreams` lists are swapped for
new ones), so `config.dataset(sandbox, id)`, `config.connection(id)` and
`config.datastream(id)` stay the one way to find them, in the gateway and in the workers.
The config file is the bootstrap: `inlet.catalog.store.seed` documents how it is merged.
"""
