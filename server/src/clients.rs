//! API clients: keys with ids, a request rate per key (429 past it), and a fair share of the
//! admission slots per key, so that one flooding client cannot starve the others.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// A token bucket: `rate` tokens a second, at most `burst` saved up.
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// One accepted API key.
pub struct Client {
    id: String,
    sha256: [u8; 32],
    rate: f64,
    burst: f64,
    bucket: Mutex<Bucket>,
    slots: Arc<Semaphore>,
}

impl Client {
    /// The key's public id: the first 12 hex digits of its sha256 (the key itself is never kept).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Takes one request from the key's rate; `Err(wait)` when it has none left.
    fn take(&self) -> Result<(), Duration> {
        let Ok(mut b) = self.bucket.lock() else { return Ok(()) };
        let now = Instant::now();
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * self.rate).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.rate))
        }
    }
}

/// The configured keys.
pub struct Clients(Vec<Arc<Client>>);

/// Limits per key.
#[derive(Clone, Copy, Debug)]
pub struct ClientLimits {
    /// Requests a second.
    pub rate: f64,
    /// Requests that may come at once after a quiet spell.
    pub burst: f64,
    /// All admission slots; with several keys each may hold at most half of them.
    pub slots: usize,
}

impl Clients {
    /// Clients for the keys whose sha256 are `hashes`.
    pub fn new(hashes: Vec<[u8; 32]>, limits: ClientLimits) -> Self {
        let share = if hashes.len() > 1 { limits.slots.div_ceil(2) } else { limits.slots };
        Self(
            hashes
                .into_iter()
                .map(|sha256| {
                    Arc::new(Client {
                        id: hex::encode(&sha256[..6]),
                        sha256,
                        rate: limits.rate,
                        burst: limits.burst,
                        bucket: Mutex::new(Bucket { tokens: limits.burst, at: Instant::now() }),
                        slots: Arc::new(Semaphore::new(share.max(1))),
                    })
                })
                .collect(),
        )
    }

    /// The client whose key is `key`, compared in constant time against every configured key.
    pub fn find(&self, key: &str) -> Option<Arc<Client>> {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let mut found = None;
        for client in &self.0 {
            let differs = client.sha256.iter().zip(&digest).fold(0u8, |d, (a, b)| d | (a ^ b));
            if differs == 0 {
                found = Some(client.clone());
            }
        }
        found
    }
}

/// The authenticated client of a request, and its request id.
#[derive(Clone)]
pub struct Caller {
    pub client: Arc<Client>,
    pub request_id: String,
}

impl Caller {
    /// Takes one request from the client's rate.
    ///
    /// # Errors
    /// `RateLimited` with the time until the next request is allowed.
    pub fn take(&self) -> Result<(), ApiError> {
        self.client.take().map_err(ApiError::RateLimited)
    }

    /// The client's share of the admission slots (held with the global slot).
    ///
    /// # Errors
    /// `Overloaded` when the client already holds its share.
    pub fn share(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.client.slots.clone().try_acquire_owned().map_err(|_| ApiError::Overloaded)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts.extensions.get::<Caller>().cloned().ok_or(ApiError::Unauthorized)
    }
}
