//! The configuration parsers on arbitrary text: the model manifest (`Manifest::parse`), a
//! calibration file (`Calibration::parse`), the server's TOML file (`Config::parse`, then its
//! validation) and the engine's part of it (`EngineConfig`, with `FacePolicy`, `DecodeLimits`,
//! `QualityThresholds` and `DetectPolicy` inside, and `IndexConfig`).
//!
//! Checks: no panic, in parsing or validation; what parses is written back as TOML and read again
//! to the same text (a calibration file and the engine settings).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wajah::{Calibration, EngineConfig, IndexConfig, Manifest};
use wajah_server::Config;

/// `value` as TOML, and that text read and written again, when `value` can be written.
fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned>(value: &T) {
    let Ok(text) = toml::to_string(value) else { return };
    let again: T =
        toml::from_str(&text).unwrap_or_else(|e| panic!("written TOML does not read back: {e}\n{text}"));
    assert_eq!(toml::to_string(&again).expect("written once"), text);
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(manifest) = Manifest::parse(text) {
        let _ = manifest.recognizer(None);
    }
    if let Ok(calibration) = Calibration::parse(text) {
        assert!((-1.0..=1.0).contains(&calibration.threshold));
        round_trip(&calibration);
    }
    if let Ok(engine) = toml::from_str::<EngineConfig>(text) {
        let _ = engine.validate();
        round_trip(&engine);
    }
    if let Ok(index) = toml::from_str::<IndexConfig>(text) {
        let _ = index.validate();
    }
    if let Ok(config) = Config::parse(text)
        && config.validate().is_ok()
    {
        config.engine().validate().expect("the engine part of a valid config is valid");
        // The longest wait a 429 announces, 1 / rate, must be a `Duration` (it is built from it).
        assert!(std::time::Duration::try_from_secs_f64(1.0 / config.rate_per_key).is_ok());
    }
});
