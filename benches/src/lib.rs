//! The criterion benchmarks are in `benches/benches/` (`cargo bench -p wajah-benches --bench wajah`);
//! the peer harness's wajah side is `src/bin/peer.rs` (run by `benches/peer/run.sh`).
