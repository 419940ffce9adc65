//! The fishroom simulator against `tests/fixtures/wire/fishroom/`.
