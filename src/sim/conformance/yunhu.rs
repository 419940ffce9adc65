//! The yunhu simulator against `tests/fixtures/wire/yunhu/`.
