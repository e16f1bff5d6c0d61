//! `Nik::parse` on arbitrary text.
//!
//! Checks: no panic (the accessors slice the string by byte offsets); a NIK that parses is 16 ASCII
//! digits, its accessors agree with its digits, its masked form hides the middle eight, and it parses
//! again (from its digits and from JSON) to the same NIK.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wajah::{Nik, Sex};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(nik) = Nik::parse(text) else { return };
    let digits = nik.as_str();
    assert_eq!(digits.len(), 16);
    assert!(digits.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(nik.province(), &digits[..2]);
    let masked = nik.masked();
    assert_eq!(masked, format!("{}********{}", &digits[..4], &digits[12..]));
    assert_eq!(nik.to_string(), masked);
    let day: u32 = digits[6..8].parse().expect("digits");
    assert_eq!(nik.sex() == Sex::Female, day > 40);
    assert_eq!(Nik::parse(digits).expect("re-parse"), nik);
    let json = serde_json::to_string(&nik).expect("serialise");
    assert_eq!(serde_json::from_str::<Nik>(&json).expect("from JSON"), nik);
});
