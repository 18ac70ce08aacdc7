//! What the agent shows the outside: HTTP endpoints (and the push webhook endpoint), Prometheus metrics, the count of API
//! requests it sends, and Kubernetes Events.

pub mod api_counters;
pub mod events;
pub mod http;
pub mod metrics;
pub mod webhook;
