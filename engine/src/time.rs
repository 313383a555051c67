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

    /// RFC 3339 with `Z`, seconds precision unless sub-second digits are present.
    pub fn to_rfc3339(self) -> String {
        match self.to_datetime() {
            Some(dt) => dt.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            None if self.0 == i64::MAX => "+infinity".to_string(),
            None => format!("@{}us", self.0),
        }
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
            s.serialize_str(&self.to_rfc3339())
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
