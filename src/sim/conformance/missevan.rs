//! The missevan simulator against `tests/fixtures/wire/missevan/`.
