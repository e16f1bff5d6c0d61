//! A small blocking connection pool: at most `size` connections, made on demand, a broken one
//! dropped and replaced on the next use. The store is called from worker threads, so waiting is
//! on a condition variable, bounded by a timeout.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use postgres::{Client, Config, NoTls};
use wajah::{Error, Result};

pub struct Pool {
    config: Config,
    size: usize,
    wait: Duration,
    state: Mutex<State>,
    freed: Condvar,
}

struct State {
    idle: Vec<Client>,
    open: usize,
}

/// A connection lent by the pool; returned when dropped (unless it broke).
pub struct Pooled<'a> {
    pool: &'a Pool,
    client: Option<Client>,
}

impl std::ops::Deref for Pooled<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client.as_ref().expect("present until drop")
    }
}

impl std::ops::DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect("present until drop")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        let mut state = self.pool.lock();
        match self.client.take() {
            Some(c) if !c.is_closed() => state.idle.push(c),
            _ => state.open -= 1,
        }
        self.pool.freed.notify_one();
    }
}

/// A connection failure: the database is down or unreachable.
pub fn unavailable(e: impl std::fmt::Display) -> Error {
    Error::StoreUnavailable(e.to_string())
}

impl Pool {
    pub fn new(config: Config, size: usize, wait: Duration) -> Self {
        Self {
            config,
            size: size.max(1),
            wait,
            state: Mutex::new(State { idle: Vec::new(), open: 0 }),
            freed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A connection: an idle one, a new one while under `size`, or the next one returned.
    ///
    /// # Errors
    /// [`Error::StoreUnavailable`] when none can be made or none is returned in time.
    pub fn get(&self) -> Result<Pooled<'_>> {
        let deadline = Instant::now() + self.wait;
        let mut state = self.lock();
        loop {
            while let Some(client) = state.idle.pop() {
                if client.is_closed() {
                    state.open -= 1;
                    continue;
                }
                return Ok(Pooled { pool: self, client: Some(client) });
            }
            if state.open < self.size {
                state.open += 1;
                drop(state);
                return match self.connect() {
                    Ok(client) => Ok(Pooled { pool: self, client: Some(client) }),
                    Err(e) => {
                        self.lock().open -= 1;
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::StoreUnavailable("no database connection free in time".into()));
            }
            state = self.freed.wait_timeout(state, left).unwrap_or_else(std::sync::PoisonError::into_inner).0;
        }
    }

    /// The idle connections, taken out of the pool (to close them elsewhere).
    pub fn take_idle(&self) -> Vec<Client> {
        let mut state = self.lock();
        state.open -= state.idle.len();
        std::mem::take(&mut state.idle)
    }

    /// A connection of its own (for listening), outside the pool.
    ///
    /// # Errors
    /// [`Error::StoreUnavailable`].
    pub fn connect(&self) -> Result<Client> {
        self.config.connect(NoTls).map_err(unavailable)
    }
}
