//! wajah's criterion benchmarks: one binary, one module per topic.
//!
//! `make bench` runs them all (after `make setup`); `cargo bench -p wajah-benches --bench wajah -- NAME`
//! runs those whose id contains NAME.

use criterion::criterion_main;

mod pipeline;
mod search;

criterion_main!(pipeline::benches, search::benches);
