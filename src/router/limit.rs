//! Per-account send rate limits: a token bucket ([`crate::bucket`]), and the pause a platform's retry-after imposes.
//! A limited account's rooms wait (the router schedules them again when a token is due); other accounts are not held.

pub use crate::bucket::Bucket;
