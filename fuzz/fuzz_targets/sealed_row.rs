//! Opening a sealed template row (AES-256-GCM, as the store does for each row it reads) with a fixed
//! test key, on arbitrary row parts.
//!
//! Input: a mode byte, then four fields each prefixed by a length byte (lookup, model, key id,
//! nonce) and the rest. Mode bit 0 clear: the rest is the ciphertext, and the key id is the
//! input's when bit 1 is set, else the test key's. Mode bit 0 set: the rest is a plaintext, sealed
//! with the test key first, so the payload parser behind the authentication tag is reached.
//!
//! Checks: no panic; arbitrary ciphertext is refused as a crypto error; an authentic row whose
//! payload is malformed is refused, never half-read; one flipped ciphertext bit is refused.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use wajah::fuzzing::RowOpener;
use wajah::{Error, TemplateKey};

fn opener() -> &'static RowOpener {
    static OPENER: OnceLock<RowOpener> = OnceLock::new();
    OPENER.get_or_init(|| {
        let key = TemplateKey::from_bytes(&[0x5a; 32]).expect("test key");
        RowOpener::new(key).expect("opener")
    })
}

/// The next field: a length byte, then that many bytes (fewer at the end of the input).
fn field<'a>(rest: &mut &'a [u8]) -> &'a [u8] {
    let Some((&len, tail)) = rest.split_first() else { return &[] };
    let (field, tail) = tail.split_at(usize::from(len).min(tail.len()));
    *rest = tail;
    field
}

fuzz_target!(|data: &[u8]| {
    let opener = opener();
    let Some((&mode, mut rest)) = data.split_first() else { return };
    let lookup = field(&mut rest);
    let model = String::from_utf8_lossy(field(&mut rest)).into_owned();
    let key_id = String::from_utf8_lossy(field(&mut rest)).into_owned();
    let nonce = field(&mut rest);
    if mode & 1 == 0 {
        let key_id = if mode & 2 != 0 { key_id.as_str() } else { opener.key_id() };
        let result = opener.open(lookup, &model, key_id, nonce, rest);
        assert!(matches!(result, Err(Error::Crypto(_))), "forged row: {result:?}");
        return;
    }
    let (nonce, mut sealed) = opener.seal_plaintext(lookup, &model, rest).expect("seal");
    match opener.open(lookup, &model, opener.key_id(), &nonce, &sealed) {
        Ok(enrollment) => {
            assert_eq!(enrollment.template.model, model);
            assert!(!enrollment.template.embedding.as_slice().is_empty());
        }
        Err(err) => {
            assert!(matches!(err, Error::Crypto(_) | Error::InvalidArgument(_)), "malformed payload: {err:?}")
        }
    }
    sealed[0] ^= 1;
    let tampered = opener.open(lookup, &model, opener.key_id(), &nonce, &sealed);
    assert!(matches!(tampered, Err(Error::Crypto(_))), "tampered row opened: {tampered:?}");
});
