//! Open liveness challenges: issued with random steps, taken once, gone when expired.
//!
//! In memory only: a restart drops every open challenge, so a used one can never come back. A
//! used challenge is kept as used until it would have expired, so a second use is told so.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use wajah::{Step, challenge_steps};

use crate::error::ApiError;

/// Why a challenge cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChallengeError {
    /// No such challenge (never issued, or dropped by a restart or after expiry).
    NotFound,
    /// Past its lifetime.
    Expired,
    /// Already used.
    Used,
    /// Bound to another NIK (or to one and none was given).
    NikMismatch,
}

struct Open {
    steps: Vec<Step>,
    nik: Option<String>,
    expires: Instant,
    used: bool,
}

/// The challenges issued and not yet expired.
pub struct Challenges {
    ttl: Duration,
    capacity: usize,
    open: Mutex<HashMap<String, Open>>,
}

/// A new challenge.
pub struct Issued {
    pub id: String,
    pub steps: Vec<Step>,
    pub expires_at: SystemTime,
}

impl Challenges {
    /// Challenges living `ttl`, at most `capacity` at once.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self { ttl, capacity, open: Mutex::new(HashMap::new()) }
    }

    /// Issues a challenge, optionally bound to a NIK.
    ///
    /// # Errors
    /// `Overloaded` when `capacity` challenges are open; `Internal` without a random source.
    pub fn issue(&self, nik: Option<String>) -> Result<Issued, ApiError> {
        let id = hex::encode(random::<16>()?);
        let steps = challenge_steps(random::<8>()?);
        let now = Instant::now();
        let mut open = self.lock();
        open.retain(|_, c| c.expires > now);
        if open.len() >= self.capacity {
            return Err(ApiError::Overloaded);
        }
        open.insert(id.clone(), Open { steps: steps.clone(), nik, expires: now + self.ttl, used: false });
        Ok(Issued { id, steps, expires_at: SystemTime::now() + self.ttl })
    }

    /// Takes the challenge `id` for `nik`: its steps, once. Every attempt uses it up, a refused
    /// one too, so that it cannot be probed.
    ///
    /// # Errors
    /// [`ChallengeError`] as an `ApiError`.
    pub fn take(&self, id: &str, nik: Option<&str>) -> Result<Vec<Step>, ApiError> {
        let mut open = self.lock();
        let c = open.get_mut(id).ok_or(ApiError::Challenge(ChallengeError::NotFound))?;
        if c.expires <= Instant::now() {
            open.remove(id);
            return Err(ApiError::Challenge(ChallengeError::Expired));
        }
        if c.used {
            return Err(ApiError::Challenge(ChallengeError::Used));
        }
        c.used = true;
        if c.nik.is_some() && c.nik.as_deref() != nik {
            return Err(ApiError::Challenge(ChallengeError::NikMismatch));
        }
        Ok(c.steps.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Open>> {
        self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// `N` bytes from the operating system's CSPRNG.
///
/// # Errors
/// `Internal` when it cannot be read.
pub fn random<const N: usize>() -> Result<[u8; N], ApiError> {
    let mut bytes = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| ApiError::Internal(format!("random source: {e}")))?;
    Ok(bytes)
}

/// `time` as RFC 3339 UTC to the second (`2026-12-06T23:59:30Z`).
pub fn rfc3339(time: SystemTime) -> String {
    let secs = time.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian), by 400-year eras.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest / 60 % 60, rest % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_challenge_is_taken_once_by_its_nik_and_expires() {
        let c = Challenges::new(Duration::from_millis(200), 10);
        let a = c.issue(Some("3201011505900001".into())).expect("issued");
        assert_eq!(a.steps[0], Step::Straight);
        let code = |r: Result<Vec<Step>, ApiError>| r.err().map(|e| e.parts().1);
        assert_eq!(code(c.take(&a.id, Some("3201011505900002"))), Some("challenge_nik_mismatch"));
        assert_eq!(code(c.take(&a.id, Some("3201011505900001"))), Some("challenge_used"));
        let b = c.issue(None).expect("issued");
        assert_eq!(c.take(&b.id, None).expect("taken"), b.steps);
        assert_eq!(code(c.take(&b.id, None)), Some("challenge_used"));
        assert_eq!(code(c.take("feed", None)), Some("challenge_not_found"));
        let d = c.issue(None).expect("issued");
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(code(c.take(&d.id, None)), Some("challenge_expired"));
        assert_ne!(a.id, b.id);
    }

    #[test]
    fn open_challenges_are_bounded() {
        let c = Challenges::new(Duration::from_secs(60), 2);
        c.issue(None).expect("first");
        c.issue(None).expect("second");
        assert!(matches!(c.issue(None), Err(ApiError::Overloaded)));
    }

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_601_570);
        assert_eq!(rfc3339(t), "2026-12-06T23:59:30Z");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
    }
}
