//! Benchmarks for wajah live in benches/benches.
