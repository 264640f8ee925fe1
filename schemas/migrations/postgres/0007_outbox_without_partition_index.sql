-- The outbox loses its index on (partition_key, outbox_seq). No reader ever used it: the relay
-- reads the outbox in sequence order (`outbox_seq > cursor`), and the partition key goes along
-- as a column of each row. The Kafka key comes from that column, and Kafka does its own
-- partitioning. Yet every decision with an event paid for one more B-tree insert inside the
-- group commit (one more dirty page per partition per commit). A per-partition reader would
-- need the index back; it would then come with that reader.
DROP INDEX IF EXISTS outbox_by_partition;
