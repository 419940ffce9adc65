//! Media that arrives as media (issue #31): what a platform marks as media is fetched, bounded and guarded, kept
//! in a signed store and sent on in the richest form each destination takes. Beside `adapters/` and `router/`: it
//! implements the router's media port (`router::media`), as `store` implements its persistence port, and imports
//! no adapter.
//!
//! - guard.rs: what may be fetched (no private address unless trusted, on every redirect, no second lookup);
//! - fetch.rs: one item streamed to disk within its bounds, its type sniffed;
//! - store.rs: items kept by their SHA-256, signed links, the bounds (`keep`, `max_bytes`);
//! - service.rs: the port: each URL fetched once, known for a while, the router told when it is;
//! - serve.rs: `/media/` on `http_listen`.

pub mod fetch;
pub mod guard;
pub mod serve;
pub mod service;
pub mod store;
