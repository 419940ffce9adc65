//! The daemon attacked: hostile platform servers, a full disk, greedy and silent clients. Each test names
//! the finding it guards against; none asserts on timing — the waits are bounded, the outcomes asserted.

mod flood;
mod http;
mod servers;
mod store;
