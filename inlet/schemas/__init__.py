"""XDM schemas: the standard classes and field groups, the per-sandbox Schema Registry, and the
validation of every ingested message against its dataset's schema (docs/schemas.md)."""
