"""Maintenance over the engine: expiration, garbage collection, statistics, migration, inspection."""
