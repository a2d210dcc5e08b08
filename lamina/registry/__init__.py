"""Registry and stores: functions, their configuration, and code blobs by content hash."""
