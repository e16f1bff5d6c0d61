//! `wajah` command integration tests (needs `make setup`).

mod reverify;
