-- Every index on records and deliveries is written by each ingest round and
-- each delivery result. Retention now finds old rows by id (ids are ULIDs,
-- ordered by creation time), so these two are no longer needed.
DROP INDEX records_received;
DROP INDEX deliveries_completed;
