//! The manifest drives the models: a manifest with further `[[recognizer]]` entries, written to a
//! temporary directory, loads the one `EngineConfig::recognizer` names, on the real model files.

use std::path::{Path, PathBuf};

use wajah::{DEFAULT_MANIFEST, Engine, EngineConfig, Error, Manifest, Result};

use crate::{engine, read, root};

/// A `[[recognizer]]` table for the provisioned SFace file under another id, fed in `colour_order`.
fn sface_entry(id: &str, colour_order: &str) -> String {
    let manifest = Manifest::builtin().expect("the shipped manifest is valid");
    let sface = manifest.recognizer(None).expect("it has a default recogniser");
    let points: Vec<String> = sface.alignment_template.iter().map(|[x, y]| format!("[{x}, {y}]")).collect();
    format!(
        "\n[[recognizer]]\nid = \"{id}\"\nkind = \"arcface112\"\nfile = \"{}\"\nsha256 = \"{}\"\n\
         input_size = [112, 112]\ncolour_order = \"{colour_order}\"\nmean = [0.0, 0.0, 0.0]\n\
         std = [1.0, 1.0, 1.0]\noutput_dim = 128\nalignment_template = [{}]\nthreshold = 0.363\n",
        sface.file,
        sface.sha256,
        points.join(", ")
    )
}

/// Writes `text` as `manifest.toml` in `dir`.
fn write_manifest(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("manifest.toml");
    std::fs::write(&path, text).expect("writing the manifest");
    path
}

fn load(manifest: &Path, recognizer: Option<&str>) -> Result<Engine> {
    Engine::new(EngineConfig {
        manifest: Some(manifest.to_path_buf()),
        recognizer: recognizer.map(str::to_string),
        ..EngineConfig::in_dir(&root())
    })
}

#[test]
fn a_second_recogniser_is_chosen_by_id_and_runs() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let text =
        format!("{DEFAULT_MANIFEST}{}{}", sface_entry("sface-copy", "rgb"), sface_entry("sface-bgr", "bgr"));
    let manifest = write_manifest(dir.path(), &text);

    let copy = load(&manifest, Some("sface-copy")).expect("the second entry loads");
    assert!(copy.model_id().starts_with("sface-copy:"), "{}", copy.model_id());
    let obama = read("identities/fr_obama/obama.jpg");
    let ours = copy.template(&obama).expect("a template");
    assert_eq!(ours.model, copy.model_id());
    let itself = copy.compare(&ours, &ours).expect("comparable to itself");
    assert!(itself.matched && itself.score.0 > 0.9999, "{itself:?}");
    let same = copy.template(&read("identities/fr_obama/obama2.jpg")).expect("a template");
    let other = copy.template(&read("identities/df_angelina/img10.jpg")).expect("a template");
    assert!(copy.compare(&ours, &same).expect("same model").matched);
    assert!(!copy.compare(&ours, &other).expect("same model").matched);

    // Same weights, same input: the default engine's embedding; but its template carries another
    // model id and is refused.
    let default = engine().template(&obama).expect("a template");
    let cosine = ours.embedding.similarity(&default.embedding).expect("same dimension").0;
    assert!(cosine > 0.9999, "cosine to the default recogniser's embedding {cosine}");
    assert!(matches!(copy.compare(&ours, &default), Err(Error::ModelMismatch { .. })));

    // The entry's colour order is what the recogniser is fed: swapped channels, another embedding.
    let bgr = load(&manifest, Some("sface-bgr")).expect("the third entry loads");
    let swapped = bgr.template(&obama).expect("a template");
    let swapped_cosine = swapped.embedding.similarity(&default.embedding).expect("same dimension").0;
    eprintln!(
        "cosine to the default recogniser's embedding: same entry {cosine:.6}, BGR-fed {swapped_cosine:.6}"
    );
    assert!(swapped_cosine < 0.99, "cosine of the BGR-fed embedding to the RGB-fed one {swapped_cosine}");

    let default_engine = load(&manifest, None).expect("the default entry loads");
    assert_eq!(default_engine.model_id(), engine().model_id());
}

#[test]
fn an_unknown_recogniser_is_a_config_error() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let manifest =
        write_manifest(dir.path(), &format!("{DEFAULT_MANIFEST}{}", sface_entry("sface-copy", "rgb")));
    match load(&manifest, Some("arcface-r100")) {
        Err(Error::Config(message)) => assert_eq!(
            message,
            "unknown recogniser `arcface-r100`; the manifest lists: sface-2021dec-int8bq, sface-copy"
        ),
        Err(other) => panic!("expected a configuration error, got {other}"),
        Ok(_) => panic!("an unknown recogniser loaded"),
    }
}

/// Strides the manifest accepts but the model has no outputs for are a model error at load.
#[test]
fn strides_the_detector_lacks_are_a_model_error() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let text = DEFAULT_MANIFEST.replacen("stride_multiple = 32", "stride_multiple = 64", 1).replacen(
        "strides = [8, 16, 32]",
        "strides = [8, 16, 32, 64]",
        1,
    );
    assert_ne!(text, DEFAULT_MANIFEST);
    match load(&write_manifest(dir.path(), &text), None) {
        Err(Error::Model { reason, .. }) => assert!(reason.contains("no output named cls_64"), "{reason}"),
        Err(other) => panic!("expected a model error, got {other}"),
        Ok(_) => panic!("a detector without stride 64 outputs loaded"),
    }
}
