//! Media that arrives as media (issue #31): what a platform marks as media is fetched, bounded and guarded, kept
//! in a signed store and sent on in the richest form each destination takes. Beside `adapters/` and `router/`: it
//! imports neither. So far: the fetcher's guard (guard.rs), the bounded fetch itself (fetch.rs), and the
//! content-addressed store with its signed URLs and its bounds (store.rs).

pub mod fetch;
pub mod guard;
pub mod store;
