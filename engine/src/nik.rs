//! NIK (Nomor Induk Kependudukan): Indonesia's 16-digit national identity number.
//!
//! Layout: `PP KK CC DDMMYY SSSS` — province, regency/city, district, date of birth (women add 40
//! to the day), and a serial number. Validation checks the form, the province code and the date; it
//! cannot tell whether the number was ever issued.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Province codes in use (Kemendagri), including the Papua provinces formed in 2022.
const PROVINCES: [u8; 38] = [
    11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 31, 32, 33, 34, 35, 36, 51, 52, 53, 61, 62, 63, 64, 65, 71, 72,
    73, 74, 75, 76, 81, 82, 91, 92, 93, 94, 95, 96,
];

/// Sex encoded in a NIK's day of birth.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    /// Day of birth 01-31.
    Male,
    /// Day of birth 41-71 (day + 40).
    Female,
}

/// A validated NIK.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Nik(String);

impl Nik {
    /// Validates a NIK.
    ///
    /// # Errors
    /// [`Error::InvalidNik`] naming the fault: length, non-digits, province, month, day or serial.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |reason: String| Err(Error::InvalidNik { reason });
        let text = text.trim();
        if text.len() != 16 {
            return bad(format!("must have 16 digits, has {} characters", text.chars().count()));
        }
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return bad("must contain digits only".into());
        }
        let num = |range: std::ops::Range<usize>| -> u32 {
            text[range].bytes().fold(0, |acc, b| acc * 10 + u32::from(b - b'0'))
        };
        let province = num(0..2);
        if !PROVINCES.contains(&(province as u8)) {
            return bad(format!("province code {province:02} does not exist"));
        }
        if num(2..4) == 0 {
            return bad("regency/city code 00 does not exist".into());
        }
        if num(4..6) == 0 {
            return bad("district code 00 does not exist".into());
        }
        let (day, month, year) = (num(6..8), num(8..10), num(10..12));
        let day = if day > 40 { day - 40 } else { day };
        if !(1..=12).contains(&month) {
            return bad(format!("month of birth {month:02} is not 01-12"));
        }
        // The century is not encoded: a 29 February is valid if either century's year is a leap year
        // (for 2-digit years both readings agree except for 00, where 2000 is a leap year).
        let leap = year % 4 == 0;
        let days = match month {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        if day == 0 || day > days {
            return bad(format!("day of birth {:02} is not a day of month {month:02}", num(6..8)));
        }
        if num(12..16) == 0 {
            return bad("serial number 0000 is not issued".into());
        }
        Ok(Nik(text.to_string()))
    }

    /// The 16 digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Province code (first two digits).
    pub fn province(&self) -> &str {
        &self.0[0..2]
    }

    /// Sex encoded in the day of birth.
    pub fn sex(&self) -> Sex {
        if self.0[6..8] > *"40" { Sex::Female } else { Sex::Male }
    }

    /// Safe for logs: region and serial hidden, e.g. `32**********0001` -> `3201********0001`.
    pub fn masked(&self) -> String {
        format!("{}{}{}", &self.0[..4], "*".repeat(8), &self.0[12..])
    }
}

impl fmt::Debug for Nik {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Nik({})", self.masked())
    }
}

/// Prints the masked form: a NIK is personal data and must not reach logs by accident.
impl fmt::Display for Nik {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl TryFrom<String> for Nik {
    type Error = Error;
    fn try_from(text: String) -> Result<Self> {
        Nik::parse(&text)
    }
}

impl From<Nik> for String {
    fn from(nik: Nik) -> Self {
        nik.0
    }
}

impl std::str::FromStr for Nik {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self> {
        Nik::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(text: &str) -> String {
        match Nik::parse(text) {
            Err(Error::InvalidNik { reason }) => reason,
            other => panic!("{text}: expected InvalidNik, got {other:?}"),
        }
    }

    #[test]
    fn valid_niks() {
        let man = Nik::parse("3201011505900001").expect("valid");
        assert_eq!((man.province(), man.sex()), ("32", Sex::Male));
        let woman = Nik::parse("3173015505900002").expect("valid: day 55 = 15 + 40");
        assert_eq!(woman.sex(), Sex::Female);
        assert!(Nik::parse("9601012902000003").is_ok(), "29 Feb 2000");
    }

    #[test]
    fn each_fault_is_named() {
        assert!(reason("320101150590000").contains("16 digits"));
        assert!(reason("32010115059000a1").contains("digits only"));
        assert!(reason("9901011505900001").contains("province"));
        assert!(reason("3200011505900001").contains("regency"));
        assert!(reason("3201001505900001").contains("district"));
        assert!(reason("3201011513900001").contains("month"));
        assert!(reason("3201013202900001").contains("day"));
        assert!(reason("3201017202900001").contains("day"), "72 - 40 = 32");
        assert!(reason("3201012902010001").contains("day"), "29 Feb 2001");
        assert!(reason("3201011505900000").contains("serial"));
    }

    #[test]
    fn display_and_debug_mask_the_number() {
        let nik = Nik::parse("3201011505900001").expect("valid");
        assert_eq!(nik.to_string(), "3201********0001");
        assert!(!format!("{nik:?}").contains("150590"));
        assert_eq!(nik.as_str(), "3201011505900001");
    }
}
