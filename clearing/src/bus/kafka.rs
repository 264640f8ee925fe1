//! The Kafka settlement bus over rdkafka (librdkafka built from source): nothing here is specific
//! to one broker, the same settings work against Apache Kafka, Redpanda or tansu.
//!
//! Producer: idempotent (`enable.idempotence`, which implies `acks=all` and at most 5 in-flight
//! requests with ordering kept across retries), keyed by institution. `publish` enqueues a whole
//! batch and waits for every acknowledgement, so the relay only advances its cursor past events
//! the brokers hold.
//!
//! Consumer: one member of a consumer group, auto-commit off. The ledger stores the next offset
//! of each partition with its postings; the consumer seeks there whenever a partition's first
//! delivery after an assignment does not match (see `consumer`). Committing to the broker is only
//! a hint that shortens that seek.
//!
//! Link protection (GB/T 22239-2019 level 3, communication transmission): with [`KafkaTls`]
//! every client (producer, consumer, admin) speaks TLS (`security.protocol=ssl`), verifies the
//! brokers' certificates against the configured CA and their host names
//! (`ssl.endpoint.identification.algorithm=https`), and presents the node's client certificate
//! for mutual TLS. librdkafka does the TLS (OpenSSL, the `ssl` feature of rdkafka).

use super::{BusError, BusSubscriber, Delivery, Outbound, SettlementBus};
use futures_core::future::BoxFuture;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::stream_consumer::StreamConsumer;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Replicas of each partition of a topic the bus creates, where the cluster has that many
/// brokers: a broker can fail (or be restarted) without losing an acknowledged event
/// (`acks=all` waits for every in-sync replica).
pub const REPLICATION_DEFAULT: i32 = 3;

/// Most messages the producer keeps queued (librdkafka `queue.buffering.max.messages`).
pub const PRODUCER_QUEUE_MESSAGES_MAX: usize = 100_000;

/// The consumer's `fetch.wait.max.ms`: the longest a broker may hold a fetch with nothing (or
/// less than `fetch.min.bytes`) to return, so also the added delay of a fetch that a broker
/// holds although data waits (see [`KafkaBus::subscribe`]).
pub const FETCH_WAIT_MAX_MS: u32 = 10;

/// Kafka connection settings.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `host:port,...`, e.g. `127.0.0.1:9092`.
    pub bootstrap_servers: String,
    /// How long a publish may wait for acknowledgements (and librdkafka's
    /// `message.timeout.ms`). Must stay below the relay's lease.
    pub publish_timeout_ms: u64,
    /// Producer linger (batching latency), ms.
    pub linger_ms: u64,
    /// Mutual TLS to the brokers; `None` is plaintext (a broker on this machine).
    pub tls: Option<KafkaTls>,
    /// Replicas per partition of the topics the bus creates; `None`: as many brokers as the
    /// cluster has, up to [`REPLICATION_DEFAULT`].
    pub replication: Option<i32>,
}

/// PEM files of a mutual-TLS link to the brokers.
#[derive(Debug, Clone)]
pub struct KafkaTls {
    /// The CA that signed the brokers' certificates (`ssl.ca.location`).
    pub ca_pem: std::path::PathBuf,
    /// This client's certificate (`ssl.certificate.location`).
    pub cert_pem: std::path::PathBuf,
    /// Its private key (`ssl.key.location`).
    pub key_pem: std::path::PathBuf,
}

/// librdkafka's settings shared by every client of `config`: the brokers, IPv4, and TLS when
/// configured.
fn client_config(config: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.bootstrap_servers)
        .set("broker.address.family", "v4");
    if let Some(tls) = &config.tls {
        c.set("security.protocol", "ssl")
            .set("ssl.ca.location", tls.ca_pem.to_string_lossy())
            .set("ssl.certificate.location", tls.cert_pem.to_string_lossy())
            .set("ssl.key.location", tls.key_pem.to_string_lossy())
            .set("ssl.endpoint.identification.algorithm", "https");
    }
    c
}

impl KafkaConfig {
    /// Defaults for a broker list: 10 s publish timeout, 2 ms linger.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        KafkaConfig {
            bootstrap_servers: bootstrap_servers.into(),
            publish_timeout_ms: 10_000,
            linger_ms: 2,
            tls: None,
            replication: None,
        }
    }
}

/// The Kafka bus (publishing side; [`KafkaBus::subscribe`] makes consumers).
pub struct KafkaBus {
    config: KafkaConfig,
    producer: FutureProducer,
}

impl std::fmt::Debug for KafkaBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaBus")
            .field("bootstrap_servers", &self.config.bootstrap_servers)
            .finish()
    }
}

impl KafkaBus {
    /// An idempotent producer (acks=all) for the brokers in `config`.
    pub fn new(config: KafkaConfig) -> Result<Self, BusError> {
        let producer: FutureProducer = client_config(&config)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", config.linger_ms.to_string())
            .set("message.timeout.ms", config.publish_timeout_ms.to_string())
            .set(
                "queue.buffering.max.messages",
                PRODUCER_QUEUE_MESSAGES_MAX.to_string(),
            )
            .create()?;
        Ok(KafkaBus { config, producer })
    }

    /// Creates `topic` with `partitions` partitions unless it exists, each partition on
    /// [`KafkaConfig::replication`] brokers (by default as many as the cluster has, up to
    /// [`REPLICATION_DEFAULT`]: 3 on a production cluster, 1 on a single test broker).
    pub async fn ensure_topic(&self, topic: &str, partitions: i32) -> Result<(), BusError> {
        let admin: AdminClient<DefaultClientContext> = client_config(&self.config).create()?;
        let replication = match self.config.replication {
            Some(r) => r,
            None => {
                let metadata = admin
                    .inner()
                    .fetch_metadata(None, Duration::from_secs(10))?;
                let brokers = i32::try_from(metadata.brokers().len()).unwrap_or(i32::MAX);
                brokers.clamp(1, REPLICATION_DEFAULT)
            }
        };
        let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        for result in admin.create_topics([&new], &opts).await? {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => return Err(BusError::Kafka(KafkaError::AdminOp(code))),
            }
        }
        Ok(())
    }

    /// A consumer-group member subscribed to `topics`.
    pub fn subscribe(
        &self,
        consumer_group: &str,
        topics: &[&str],
    ) -> Result<KafkaSubscriber, BusError> {
        let context = RebalanceCounter::default();
        let epoch = context.epoch.clone();
        let consumer: StreamConsumer<RebalanceCounter> = client_config(&self.config)
            .set("group.id", consumer_group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            // Also the rebalance timeout: a member that died holding partitions delays the
            // group's next assignment by at most this much.
            .set("max.poll.interval.ms", "20000")
            // How long a broker may hold a fetch before answering (librdkafka's default is
            // 500 ms). tansu held fetches that long even with data waiting, so the consumer
            // waited for deliveries between batches: 27,000 events/s with the default, 81,000
            // with 5 ms (issue 27, benches/README.md "Clearing"). An idle consumer now sends
            // a fetch per FETCH_WAIT_MAX_MS instead of one per 500 ms.
            .set("fetch.wait.max.ms", FETCH_WAIT_MAX_MS.to_string())
            .create_with_context(context)?;
        consumer.subscribe(topics)?;
        Ok(KafkaSubscriber {
            consumer,
            epoch,
            seen_epoch: 0,
        })
    }
}

impl SettlementBus for KafkaBus {
    fn publish<'a>(&'a self, batch: &'a [Outbound]) -> BoxFuture<'a, Result<(), BusError>> {
        Box::pin(async move {
            let timeout = Duration::from_millis(self.config.publish_timeout_ms);
            let mut pending = Vec::with_capacity(batch.len());
            for m in batch {
                let mut record = FutureRecord::to(&m.topic).key(&m.key).payload(&m.payload);
                // Enqueue without blocking; when librdkafka's queue is full, wait for it to
                // drain (bounded by PRODUCER_QUEUE_MESSAGES_MAX) and try again.
                let deadline = tokio::time::Instant::now() + timeout;
                loop {
                    match self.producer.send_result(record) {
                        Ok(f) => {
                            pending.push(f);
                            break;
                        }
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                            if tokio::time::Instant::now() >= deadline {
                                return Err(BusError::PublishTimeout(timeout));
                            }
                            record = r;
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                        Err((e, _)) => return Err(BusError::Kafka(e)),
                    }
                }
            }
            for f in pending {
                match tokio::time::timeout(timeout + Duration::from_secs(1), f).await {
                    Err(_) | Ok(Err(_)) => return Err(BusError::PublishTimeout(timeout)),
                    Ok(Ok(Err((e, _)))) => return Err(BusError::Kafka(e)),
                    Ok(Ok(Ok(_))) => {}
                }
            }
            Ok(())
        })
    }
}

/// Counts assignment changes so the consumer knows to re-read stored offsets.
#[derive(Debug, Default)]
struct RebalanceCounter {
    epoch: Arc<AtomicU64>,
}

impl ClientContext for RebalanceCounter {}

impl ConsumerContext for RebalanceCounter {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                tracing::info!(partitions = tpl.count(), "partitions assigned")
            }
            Rebalance::Revoke(tpl) => {
                tracing::info!(partitions = tpl.count(), "partitions revoked")
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance failed"),
        }
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }
}

/// One consumer-group member.
pub struct KafkaSubscriber {
    consumer: StreamConsumer<RebalanceCounter>,
    epoch: Arc<AtomicU64>,
    seen_epoch: u64,
}

impl std::fmt::Debug for KafkaSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSubscriber").finish_non_exhaustive()
    }
}

impl BusSubscriber for KafkaSubscriber {
    fn next_batch(
        &mut self,
        max: usize,
        wait: Duration,
    ) -> BoxFuture<'_, Result<Vec<Delivery>, BusError>> {
        Box::pin(async move {
            let mut out = Vec::new();
            let mut budget = wait;
            while out.len() < max {
                let msg = match tokio::time::timeout(budget, self.consumer.recv()).await {
                    Err(_) => break,
                    Ok(Err(e)) => return Err(BusError::Kafka(e)),
                    Ok(Ok(m)) => m,
                };
                out.push(Delivery {
                    topic: msg.topic().to_owned(),
                    partition: msg.partition(),
                    offset: msg.offset(),
                    payload: msg.payload().unwrap_or_default().to_vec(),
                });
                // After the first message take what is already fetched, without waiting long.
                budget = Duration::from_millis(1);
            }
            Ok(out)
        })
    }

    fn seek(&mut self, topic: &str, partition: i32, offset: i64) -> Result<bool, BusError> {
        self.consumer.seek(
            topic,
            partition,
            Offset::Offset(offset),
            Duration::from_secs(5),
        )?;
        Ok(true)
    }

    fn take_rebalanced(&mut self) -> bool {
        let now = self.epoch.load(Ordering::SeqCst);
        std::mem::replace(&mut self.seen_epoch, now) != now
    }

    fn applied(&mut self, offsets: &[(String, i32, i64)]) {
        let mut tpl = TopicPartitionList::new();
        for (topic, partition, next) in offsets {
            // A partition no longer assigned is refused by the broker: harmless, it is a hint.
            let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(*next));
        }
        if tpl.count() > 0 {
            let _ = self.consumer.commit(&tpl, CommitMode::Async);
        }
    }
}
