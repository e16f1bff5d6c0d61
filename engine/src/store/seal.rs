//! Keys and sealing: [`TemplateKey`], subject lookup hashes, and the sealed form of an enrolment.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::Enrollment;
use crate::embedding::{Embedding, Template};
use crate::error::{Error, Result};

/// An AES-256 key for enrolments at rest. The subject lookup key is derived from it.
pub struct TemplateKey {
    key: Zeroizing<[u8; 32]>,
    /// HMAC-SHA256 keyed with the lookup key, ready to hash subjects.
    lookup: Hmac<Sha256>,
    id: String,
}

impl std::fmt::Debug for TemplateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TemplateKey({})", self.id)
    }
}

/// Domain separation of the keyed hashes derived from a key.
const LOOKUP_LABEL: &[u8] = b"wajah subject lookup v1";

fn keyed(key: &[u8]) -> Result<Hmac<Sha256>> {
    <Hmac<Sha256> as Mac>::new_from_slice(key)
        .map_err(|_| Error::Config("template key: unusable for HMAC".into()))
}

impl TemplateKey {
    /// A key from 32 raw bytes or 64 hex digits (surrounding white space ignored).
    ///
    /// # Errors
    /// [`Error::Config`] for any other length or content.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut key = Zeroizing::new([0u8; 32]);
        let text = std::str::from_utf8(bytes).ok().map(str::trim);
        match text {
            Some(hex_text) if hex_text.len() == 64 => {
                hex::decode_to_slice(hex_text, key.as_mut())
                    .map_err(|_| Error::Config("template key: 64 characters but not hex".into()))?;
            }
            _ if bytes.len() == 32 => key.copy_from_slice(bytes),
            _ => return Err(Error::Config("template key must be 32 bytes or 64 hex digits".into())),
        }
        let id = format!("k{}", &hex::encode(Sha256::digest(key.as_ref()))[..8]);
        let mut derive = keyed(key.as_ref())?;
        derive.update(LOOKUP_LABEL);
        let lookup_key: Zeroizing<[u8; 32]> = Zeroizing::new(derive.finalize().into_bytes().into());
        let lookup = keyed(lookup_key.as_ref())?;
        Ok(Self { key, lookup, id })
    }

    /// Reads a key file.
    ///
    /// # Errors
    /// [`Error::Config`] when the file cannot be read or holds no valid key.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = Zeroizing::new(
            std::fs::read(path)
                .map_err(|e| Error::Config(format!("template key {}: {e}", path.display())))?,
        );
        Self::from_bytes(&bytes)
    }

    /// Creates a new random key file (hex, mode 0600); fails if the file exists.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be created.
    pub fn create(path: &Path) -> Result<Self> {
        use std::io::Write;
        let key = Aes256Gcm::generate_key(OsRng);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path)?;
        let text = Zeroizing::new(hex::encode(key.as_slice()));
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        Self::from_bytes(key.as_slice())
    }

    /// Short public id of the key (a hash prefix), stored with every row it seals.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The keyed hash that finds `subject`'s row among those this key sealed.
    pub(crate) fn lookup(&self, subject: &str) -> Vec<u8> {
        let mut mac = self.lookup.clone();
        mac.update(subject.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(self.key.as_ref()))
    }
}

/// An enrolment as stored: everything but the lookup hash, model and key id is ciphertext.
#[derive(Clone, Debug)]
pub struct SealedRow {
    /// HMAC-SHA256 of the subject under the sealing key.
    pub lookup: Vec<u8>,
    /// Recogniser id (bound to the ciphertext).
    pub model: String,
    /// Id of the sealing key.
    pub key_id: String,
    /// AES-GCM nonce.
    pub nonce: Vec<u8>,
    /// Subject, photo hash, quality and template, encrypted.
    pub sealed: Vec<u8>,
    /// First enrolment, unix milliseconds.
    pub created_ms: i64,
    /// Last change, unix milliseconds.
    pub updated_ms: i64,
}

fn aad(lookup: &[u8], model: &str, key_id: &str) -> Vec<u8> {
    [b"wajah-enrollment-v2\0".as_slice(), lookup, b"\0", model.as_bytes(), b"\0", key_id.as_bytes()].concat()
}

/// Length-prefixed fields: subject, photo hash, quality JSON, then the embedding's floats.
fn payload(e: &Enrollment) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::new());
    let quality = e.quality.to_string();
    for field in [e.subject.as_bytes(), e.photo_sha256.as_bytes(), quality.as_bytes()] {
        out.extend_from_slice(&(field.len() as u32).to_le_bytes());
        out.extend_from_slice(field);
    }
    out.extend_from_slice(&e.template.embedding.to_le_bytes());
    out
}

fn take<'a>(bytes: &mut &'a [u8]) -> Result<&'a [u8]> {
    let bad = || Error::Crypto("sealed row is malformed".into());
    let (len, rest) = bytes.split_first_chunk::<4>().ok_or_else(bad)?;
    let len = u32::from_le_bytes(*len) as usize;
    let (field, rest) = rest.split_at_checked(len).ok_or_else(bad)?;
    *bytes = rest;
    Ok(field)
}

fn text(bytes: &[u8]) -> Result<String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| Error::Crypto("sealed row is malformed".into()))
}

/// The keys a store uses: the first seals new rows, all of them open and find old ones. Every
/// store backend seals through this, so rows are sealed the same way everywhere.
pub struct Keyring(Vec<TemplateKey>);

impl Keyring {
    /// The keys, current first.
    ///
    /// # Errors
    /// [`Error::Config`] for none.
    pub fn new(keys: Vec<TemplateKey>) -> Result<Self> {
        if keys.is_empty() {
            return Err(Error::Config("the template store needs an encryption key".into()));
        }
        Ok(Self(keys))
    }

    /// The current key's id.
    pub fn current(&self) -> &str {
        self.0.first().map_or("", |k| k.id())
    }

    /// `subject`'s lookup hash under every key (rows sealed by an older key are found too).
    pub fn lookups(&self, subject: &str) -> Vec<Vec<u8>> {
        self.0.iter().map(|k| k.lookup(subject)).collect()
    }

    /// Seals `e` with the current key.
    ///
    /// # Errors
    /// [`Error::Crypto`] when encryption fails.
    pub fn seal(&self, e: &Enrollment, created_ms: i64, updated_ms: i64) -> Result<SealedRow> {
        let key = self.0.first().ok_or_else(|| Error::Config("no template key".into()))?;
        let lookup = key.lookup(&e.subject);
        let nonce = Aes256Gcm::generate_nonce(OsRng);
        let aad = aad(&lookup, &e.template.model, key.id());
        let sealed = key
            .cipher()
            .encrypt(&nonce, Payload { msg: &payload(e), aad: &aad })
            .map_err(|_| Error::Crypto("encryption failed".into()))?;
        Ok(SealedRow {
            lookup,
            model: e.template.model.clone(),
            key_id: key.id().to_string(),
            nonce: nonce.to_vec(),
            sealed,
            created_ms,
            updated_ms,
        })
    }

    /// Seals arbitrary `plaintext` as the current key would seal a row's payload (fuzzing only:
    /// [`crate::fuzzing`]). Returns the nonce and the ciphertext.
    pub(crate) fn seal_plaintext(
        &self,
        lookup: &[u8],
        model: &str,
        plaintext: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        let key = self.0.first().ok_or_else(|| Error::Config("no template key".into()))?;
        let nonce = Aes256Gcm::generate_nonce(OsRng);
        let sealed = key
            .cipher()
            .encrypt(&nonce, Payload { msg: plaintext, aad: &aad(lookup, model, key.id()) })
            .map_err(|_| Error::Crypto("encryption failed".into()))?;
        Ok((nonce.to_vec(), sealed))
    }

    /// Opens a row sealed by any of the keys.
    ///
    /// # Errors
    /// [`Error::Crypto`] for an unknown key, a tampered or moved row.
    pub fn open(&self, row: &SealedRow) -> Result<Enrollment> {
        let plain = self.decrypt(row)?;
        let mut rest = plain.as_slice();
        let subject = text(take(&mut rest)?)?;
        let photo_sha256 = text(take(&mut rest)?)?;
        let quality = serde_json::from_slice(take(&mut rest)?).unwrap_or(serde_json::Value::Null);
        Ok(Enrollment {
            subject,
            template: Template { model: row.model.clone(), embedding: Embedding::from_le_bytes(rest)? },
            quality,
            photo_sha256,
            created_ms: row.created_ms,
            updated_ms: row.updated_ms,
        })
    }

    /// The subject and template of a row sealed by any of the keys, without reading the rest of
    /// the record (what an index is built from).
    ///
    /// # Errors
    /// As [`Keyring::open`].
    pub fn open_template(&self, row: &SealedRow) -> Result<(String, Embedding)> {
        let plain = self.decrypt(row)?;
        let mut rest = plain.as_slice();
        let subject = text(take(&mut rest)?)?;
        take(&mut rest)?;
        take(&mut rest)?;
        Ok((subject, Embedding::from_le_bytes(rest)?))
    }

    fn decrypt(&self, row: &SealedRow) -> Result<Zeroizing<Vec<u8>>> {
        let key = self.0.iter().find(|k| k.id == row.key_id).ok_or_else(|| {
            Error::Crypto(format!("row sealed with key {} which is not configured", row.key_id))
        })?;
        if row.nonce.len() != 12 {
            return Err(Error::Crypto("stored nonce has the wrong length".into()));
        }
        let aad = aad(&row.lookup, &row.model, &row.key_id);
        Ok(Zeroizing::new(
            key.cipher()
                .decrypt(Nonce::from_slice(&row.nonce), Payload { msg: &row.sealed, aad: &aad })
                .map_err(|_| Error::Crypto("enrolment does not decrypt: wrong key or tampered row".into()))?,
        ))
    }

    /// Opens a row of the first schema (subject in clear, only the template sealed), for migration.
    pub(crate) fn open_v1(
        &self,
        key_id: &str,
        subject: &str,
        model: &str,
        nonce: &[u8],
        sealed: &[u8],
    ) -> Result<Embedding> {
        let key =
            self.0.iter().find(|k| k.id == key_id).ok_or_else(|| {
                Error::Crypto(format!("row sealed with key {key_id} which is not configured"))
            })?;
        if nonce.len() != 12 {
            return Err(Error::Crypto("stored nonce has the wrong length".into()));
        }
        let aad = [b"wajah-template-v1\0".as_slice(), subject.as_bytes(), b"\0", model.as_bytes()].concat();
        let plain = Zeroizing::new(
            key.cipher()
                .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: &aad })
                .map_err(|_| Error::Crypto("template does not decrypt: wrong key or tampered row".into()))?,
        );
        Embedding::from_le_bytes(&plain)
    }
}
