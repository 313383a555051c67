//! Time: instants as microseconds since the Unix epoch, UTC.
//!
//! Effective times, record times and expiries are all [`Timestamp`]s. In JSON they are
//! RFC 3339 strings; on disk (MessagePack, which is not human-readable) they are an `i64`
//! of microseconds, so that the index compares integers. Sub-microsecond digits of an
//! RFC 3339 input are truncated.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// An instant in microseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The latest representable instant; used as "open ended".
    pub const MAX: Timestamp = Timestamp(i64::MAX);
    /// The earliest representable instant.
    pub const MIN: Timestamp = Timestamp(i64::MIN);

    pub const fn from_micros(micros: i64) -> Self {
        Timestamp(micros)
    }

    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// The engine clock.
    pub fn now() -> Self {
        Timestamp(Utc::now().timestamp_micros())
    }

    /// Parses an RFC 3339 time (`2024-03-01T09:00:00Z`, any offset).
    pub fn parse_rfc3339(text: &str) -> Result<Self, TimeError> {
        let parsed = DateTime::parse_from_rfc3339(text).map_err(|_| TimeError::NotRfc3339)?;
        in_range(parsed.with_timezone(&Utc).timestamp_micros())
    }

    /// Parses an RFC 3339 time or a plain date (`2025-03-14`, the start of that day, UTC),
    /// the form the CLI accepts for `--at`.
    pub fn parse_lenient(text: &str) -> Result<Self, TimeError> {
        match Self::parse_rfc3339(text) {
            Err(TimeError::NotRfc3339) => {}
            other => return other,
        }
        let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| TimeError::NotTimeOrDate)?;
        let midnight = date.and_hms_opt(0, 0, 0).ok_or(TimeError::NotTimeOrDate)?;
        in_range(midnight.and_utc().timestamp_micros())
    }

    pub fn to_datetime(self) -> Option<DateTime<Utc>> {
        DateTime::<Utc>::from_timestamp_micros(self.0)
    }

    /// RFC 3339 with `Z`, seconds precision unless sub-second digits are present (then
    /// three or six digits, as chrono's `SecondsFormat::AutoSi` writes them).
    pub fn to_rfc3339(self) -> String {
        if let Some(text) = Rfc3339::of(self) {
            return text.as_str().to_string();
        }
        match self.to_datetime() {
            Some(dt) => dt.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            None if self.0 == i64::MAX => "+infinity".to_string(),
            None => format!("@{}us", self.0),
        }
    }
}

/// The calendar fields of a time, UTC, in the proleptic Gregorian calendar (as chrono).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: i64,
    pub day: i64,
    pub second_of_day: i64,
    pub micros: i64,
}

impl Timestamp {
    /// The calendar fields of this time (days to a date as Howard Hinnant's
    /// `civil_from_days`): what reports write millions of dates from without chrono's
    /// formatter, which costs about five times as much.
    pub fn civil(self) -> Civil {
        let (secs, micros) = (self.0.div_euclid(1_000_000), self.0.rem_euclid(1_000_000));
        let (days, second_of_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let z = days + 719_468;
        let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        Civil { year: yoe + era * 400 + i64::from(month <= 2), month, day, second_of_day, micros }
    }
}

/// The RFC 3339 text of a time between 1900 and 9999 (every time an event may carry),
/// written on the stack.
struct Rfc3339 {
    text: [u8; 27],
    len: usize,
}

impl Rfc3339 {
    fn of(t: Timestamp) -> Option<Rfc3339> {
        if !(EARLIEST..END).contains(&t.0) {
            return None;
        }
        let Civil { year, month, day, second_of_day: of_day, micros } = t.civil();
        let mut text = *b"0000-00-00T00:00:00.000000Z";
        // Two digits at a time: every field is below 100 once the year is split.
        let mut two = |at: usize, v: i64| {
            text[at] = b'0' + (v / 10) as u8;
            text[at + 1] = b'0' + (v % 10) as u8;
        };
        two(0, year / 100);
        two(2, year % 100);
        two(5, month);
        two(8, day);
        two(11, of_day / 3_600);
        two(14, of_day / 60 % 60);
        two(17, of_day % 60);
        two(20, micros / 10_000);
        two(22, micros / 100 % 100);
        two(24, micros % 100);
        // Cut after the seconds, the milliseconds or the microseconds.
        let len = if micros == 0 {
            19
        } else if micros % 1_000 == 0 {
            23
        } else {
            26
        };
        text[len] = b'Z';
        Some(Rfc3339 { text, len: len + 1 })
    }

    fn as_str(&self) -> &str {
        // Only ASCII digits and punctuation are written.
        std::str::from_utf8(&self.text[..self.len]).unwrap_or_default()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// Why a time did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("not an RFC 3339 time")]
    NotRfc3339,
    #[error("not an RFC 3339 time or a YYYY-MM-DD date")]
    NotTimeOrDate,
    /// A well-formed time no identity event can have: before 1900 or after 9999.
    #[error("out of range (times run from 1900-01-01 to 9999-12-31)")]
    OutOfRange,
}

/// 1900-01-01T00:00:00Z and 10000-01-01T00:00:00Z, in µs since the epoch: the times an
/// event or an argument may name. Earlier ones are a source's error (a year 0 or 1 from an
/// empty date field), not history.
const EARLIEST: i64 = -2_208_988_800_000_000;
const END: i64 = 253_402_300_800_000_000;

fn in_range(t: i64) -> Result<Timestamp, TimeError> {
    if (EARLIEST..END).contains(&t) {
        Ok(Timestamp(t))
    } else {
        Err(TimeError::OutOfRange)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            match Rfc3339::of(*self) {
                Some(text) => s.serialize_str(text.as_str()),
                None => s.serialize_str(&self.to_rfc3339()),
            }
        } else {
            s.serialize_i64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    /// Accepts both forms whatever the format claims to be: serde's `flatten` buffers
    /// values and reports itself human-readable even inside MessagePack.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 time")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                Timestamp::parse_rfc3339(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
                Ok(Timestamp(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
                i64::try_from(v).map(Timestamp).map_err(|_| E::custom("time out of range"))
            }
        }
        if d.is_human_readable() {
            d.deserialize_any(V)
        } else {
            d.deserialize_i64(V)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_text_is_chronos_for_every_time_an_event_may_carry() {
        let chrono = |t: Timestamp| t.to_datetime().unwrap().to_rfc3339_opts(SecondsFormat::AutoSi, true);
        let mut edges = vec![EARLIEST, END - 1, 0, -1, 1, 951_782_400_000_000, 951_868_799_999_999];
        // Around every leap day and year end of the range, and whole, milli and micro seconds.
        for year in [1900, 1904, 1970, 1999, 2000, 2024, 2100, 2400, 9999] {
            let jan1 = NaiveDate::from_ymd_opt(year, 1, 1).unwrap().and_hms_opt(0, 0, 0).unwrap();
            let t = jan1.and_utc().timestamp_micros();
            edges.extend([t - 1, t, t + 1_000, t + 59 * 86_400_000_000, t + 60 * 86_400_000_000 - 1]);
        }
        let seed: u64 = std::env::var("TIME_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_1234);
        println!("TIME_SEED={seed}");
        let mut x = seed;
        for i in 0..200_000u64 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let t = EARLIEST + (x >> 1) as i64 % (END - EARLIEST);
            // A third whole seconds, a third whole milliseconds, a third any microsecond.
            edges.push(match i % 3 {
                0 => t - t.rem_euclid(1_000_000),
                1 => t - t.rem_euclid(1_000),
                _ => t,
            });
        }
        for t in edges.into_iter().map(Timestamp) {
            let inside = (EARLIEST..END).contains(&t.0);
            assert_eq!(Rfc3339::of(t).map(|r| r.as_str().to_string()), inside.then(|| chrono(t)), "{}", t.0);
            assert_eq!(t.to_rfc3339(), chrono(t));
            assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{}\"", chrono(t)));
        }
        assert!(Rfc3339::of(Timestamp(EARLIEST - 1)).is_none() && Rfc3339::of(Timestamp(END)).is_none());
        assert_eq!(Timestamp(END).to_rfc3339(), chrono(Timestamp(END)));
    }

    #[test]
    fn parses_rfc3339_and_dates() {
        let a = Timestamp::parse_rfc3339("2024-03-01T09:00:00Z").unwrap();
        let b = Timestamp::parse_rfc3339("2024-03-01T10:00:00+01:00").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_rfc3339(), "2024-03-01T09:00:00Z");
        let d = Timestamp::parse_lenient("2025-03-14").unwrap();
        assert_eq!(d.to_rfc3339(), "2025-03-14T00:00:00Z");
        assert_eq!(Timestamp::parse_rfc3339("2024-13-01T00:00:00Z"), Err(TimeError::NotRfc3339));
        assert_eq!(Timestamp::parse_lenient("yesterday"), Err(TimeError::NotTimeOrDate));
    }
}
