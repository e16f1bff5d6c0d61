//! The duplicate check at enrolment on real photos: a second NIK with the same face.

use std::sync::Arc;

use wajah::{
    CaptureMode, DuplicateCheck, DuplicatePolicy, Engine, EngineConfig, Error, Gallery, IndexConfig,
    SqliteStore, TemplateKey,
};

use crate::{read, root};

fn gallery(policy: DuplicatePolicy) -> (tempfile::TempDir, Gallery) {
    let dir = tempfile::tempdir().expect("temp dir");
    let duplicates = DuplicateCheck { policy, ..DuplicateCheck::default() };
    let engine = Engine::new(EngineConfig { duplicates, ..EngineConfig::in_dir(&root()) }).expect("engine");
    let key = TemplateKey::from_bytes(&[3u8; 32]).expect("key");
    let store = SqliteStore::open(&dir.path().join("t.db"), vec![key]).expect("store");
    let gallery = Gallery::open(Arc::new(engine), Box::new(store), IndexConfig::default()).expect("gallery");
    (dir, gallery)
}

#[test]
fn a_second_nik_with_the_same_face_is_flagged_or_refused() {
    let (a, b, other) = ("3201011505900001", "3201011505900002", "3201011505900003");
    let (_dir, flag) = gallery(DuplicatePolicy::Flag);
    let first = flag.enroll(a, &read("identities/fr_obama/obama.jpg"), CaptureMode::Check).expect("enrolled");
    assert!(first.possible_duplicates.is_empty());
    let second = flag.enroll(b, &read("identities/fr_obama/obama2.jpg"), CaptureMode::Check).expect("stored");
    let found: Vec<&str> = second.possible_duplicates.iter().map(|c| c.subject.as_str()).collect();
    assert_eq!(found, vec![a]);
    // Another person, and the same NIK enrolled again, are not duplicates.
    let third =
        flag.enroll(other, &read("identities/fr_biden/biden.jpg"), CaptureMode::Check).expect("stored");
    assert!(third.possible_duplicates.is_empty());
    let again = flag.enroll(a, &read("identities/fr_obama/obama.jpg"), CaptureMode::Check).expect("stored");
    assert_eq!(again.possible_duplicates.iter().map(|c| c.subject.as_str()).collect::<Vec<_>>(), vec![b]);

    let (_dir, refuse) = gallery(DuplicatePolicy::Refuse);
    refuse.enroll(a, &read("identities/fr_obama/obama.jpg"), CaptureMode::Check).expect("enrolled");
    match refuse.enroll(b, &read("identities/fr_obama/obama2.jpg"), CaptureMode::Check) {
        Err(Error::PossibleDuplicate { candidates }) => assert_eq!(candidates[0].subject, a),
        other => panic!("expected possible_duplicate, got {:?}", other.map(|e| e.outcome)),
    }
    assert!(matches!(refuse.template(b), Err(Error::NotEnrolled)), "nothing stored");
}
