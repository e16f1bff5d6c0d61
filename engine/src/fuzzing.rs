//! Entry points for the fuzz targets in `fuzz/` only: not part of the API, hidden from the docs.
//!
//! They reach code that the public API runs only with models or a database behind it: the decoder
//! as [`FaceQuery`](crate::FaceQuery) calls it (header probe, DCT-scaled decode), and the opening of
//! a sealed template row as [`SqliteStore`](crate::SqliteStore) does for each row it reads.

use crate::error::Result;
use crate::store::Enrollment;
use crate::store::TemplateKey;
use crate::store::seal::{Keyring, SealedRow};

pub use crate::decode::{decode_scaled, probe};

/// Opens row parts the way the store does, with one key.
pub struct RowOpener(Keyring);

impl RowOpener {
    /// An opener holding `key`.
    ///
    /// # Errors
    /// Never in practice (a keyring of one key).
    pub fn new(key: TemplateKey) -> Result<Self> {
        Keyring::new(vec![key]).map(Self)
    }

    /// The id of the key, as a row sealed by it records.
    pub fn key_id(&self) -> &str {
        self.0.current()
    }

    /// Opens a row made of these parts.
    ///
    /// # Errors
    /// As the store: unknown key, bad nonce, failed authentication, malformed payload.
    pub fn open(
        &self,
        lookup: &[u8],
        model: &str,
        key_id: &str,
        nonce: &[u8],
        sealed: &[u8],
    ) -> Result<Enrollment> {
        let row = SealedRow {
            lookup: lookup.to_vec(),
            model: model.to_string(),
            key_id: key_id.to_string(),
            nonce: nonce.to_vec(),
            sealed: sealed.to_vec(),
            created_ms: 0,
            updated_ms: 0,
        };
        self.0.open(&row)
    }

    /// Seals any `plaintext` (well-formed or not) as a row's `(nonce, sealed)` under the current key,
    /// so that a fuzzer reaches the payload parser behind the authentication tag.
    ///
    /// # Errors
    /// [`Error::Crypto`](crate::Error::Crypto) if encryption fails.
    pub fn seal_plaintext(&self, lookup: &[u8], model: &str, plaintext: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
        self.0.seal_plaintext(lookup, model, plaintext)
    }
}
