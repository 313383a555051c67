//! `GET /metrics`: sync health in the Prometheus text format (the `prometheus-client`
//! crate). Counted since the server started.
//!
//! - `tenure_events_appended_total{source, type}`: events this server appended.
//! - `tenure_event_lag_seconds{source}`: recorded minus effective time of each appended
//!   event (how late the world's changes reach the log), a histogram.
//! - `tenure_webhook_deliveries_total{outcome}`: deliveries by outcome (`applied`,
//!   `unchanged`, `duplicate`, `rejected_header`, `rejected_timestamp`,
//!   `rejected_signature`, `rejected_malformed`, `failed`).
//! - `tenure_http_request_duration_seconds{method, route, status}`: each request's
//!   latency, by the route it matched (not the path: ids stay out of the labels).
//! - `tenure_log_head`: the log's head position.
//! - `tenure_consumer_lag_seconds{source}`: now minus the time of the newest event the
//!   events-API consumer (`--sync-from`) applied; `tenure_consumer_items_total{source,
//!   outcome}`: its items by outcome (`stored`, `unchanged`, `duplicate`, `failed`,
//!   `retried`, a kept failure applied on a later try).
//! - `tenure_index_rewrites_total{outcome}`: the compactor's rewrites of the access index
//!   file (`written`, `failed`); `tenure_index_tail_events`: the events the audit API's
//!   index holds in memory past its file.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub source: String,
    pub r#type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConsumerLabels {
    pub source: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

fn lag_histogram() -> Histogram {
    // 1 ms to about 12 days.
    Histogram::new(exponential_buckets(0.001, 4.0, 15))
}

fn latency_histogram() -> Histogram {
    // 50 µs to about 3 s.
    Histogram::new(exponential_buckets(0.00005, 2.0, 17))
}

pub struct Metrics {
    registry: Registry,
    pub appended: Family<EventLabels, Counter>,
    pub event_lag: Family<SourceLabels, Histogram, fn() -> Histogram>,
    pub deliveries: Family<OutcomeLabels, Counter>,
    pub requests: Family<RequestLabels, Histogram, fn() -> Histogram>,
    pub head: Gauge<i64, std::sync::atomic::AtomicI64>,
    pub consumer_lag: Family<SourceLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub consumer_items: Family<ConsumerLabels, Counter>,
    pub index_rewrites: Family<OutcomeLabels, Counter>,
    pub index_tail: Gauge<i64, std::sync::atomic::AtomicI64>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tenure");
        let appended = Family::<EventLabels, Counter>::default();
        registry.register("events_appended", "Events this server appended", appended.clone());
        let event_lag = Family::<SourceLabels, Histogram, fn() -> Histogram>::new_with_constructor(lag_histogram);
        registry.register(
            "event_lag_seconds",
            "Recorded minus effective time of each appended event, by source",
            event_lag.clone(),
        );
        let deliveries = Family::<OutcomeLabels, Counter>::default();
        registry.register("webhook_deliveries", "Directory-sync webhook deliveries, by outcome", deliveries.clone());
        let requests = Family::<RequestLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Latency of each HTTP request, by method, matched route and status",
            requests.clone(),
        );
        let head = Gauge::<i64, std::sync::atomic::AtomicI64>::default();
        registry.register("log_head", "The log's head position", head.clone());
        let consumer_lag = Family::<SourceLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "consumer_lag_seconds",
            "Now minus the time of the newest event the events-API consumer applied",
            consumer_lag.clone(),
        );
        let consumer_items = Family::<ConsumerLabels, Counter>::default();
        registry.register("consumer_items", "Items of the events-API consumer, by outcome", consumer_items.clone());
        let index_rewrites = Family::<OutcomeLabels, Counter>::default();
        registry.register("index_rewrites", "Rewrites of the access index file, by outcome", index_rewrites.clone());
        let index_tail = Gauge::<i64, std::sync::atomic::AtomicI64>::default();
        registry.register(
            "index_tail_events",
            "Events the audit API's index holds in memory past its file",
            index_tail.clone(),
        );
        Metrics {
            registry,
            appended,
            event_lag,
            deliveries,
            requests,
            head,
            consumer_lag,
            consumer_items,
            index_rewrites,
            index_tail,
        }
    }
}

impl Metrics {
    /// A delivery's outcome.
    pub fn delivery(&self, outcome: &'static str) {
        self.deliveries.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// An item of the events-API consumer of `source`, and (when it was applied) the time
    /// of its event.
    pub fn consumed(&self, source: &str, outcome: &'static str, event_time: Option<tenure_engine::Timestamp>) {
        self.consumer_items.get_or_create(&ConsumerLabels { source: source.to_string(), outcome }).inc();
        if let Some(t) = event_time {
            let lag = (tenure_engine::Timestamp::now().as_micros() - t.as_micros()) as f64 / 1e6;
            self.consumer_lag.get_or_create(&SourceLabels { source: source.to_string() }).set(lag);
        }
    }

    /// The registry in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String does not fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
