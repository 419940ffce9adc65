//! The heihei simulator against `tests/fixtures/wire/heihei/`.
