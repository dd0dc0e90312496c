//! Timestamps: milliseconds since the Unix epoch on the wire, RFC 3339 in files people read.

use std::fmt;

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::GenesisError;

/// A point in time, in whole milliseconds since 1970-01-01T00:00:00Z.
///
/// JSON shows it as RFC 3339 in UTC (`2026-11-25T08:00:00Z`) and accepts any
/// RFC 3339 offset (`2026-11-25T16:00:00+08:00` is the same instant).
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, BorshSerialize, BorshDeserialize,
)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The current wall-clock time, truncated to milliseconds.
    pub fn now() -> Timestamp {
        let millis = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        Timestamp(u64::try_from(millis).unwrap_or(0))
    }

    /// Milliseconds since the Unix epoch.
    pub fn as_millis(self) -> u64 {
        self.0
    }

    /// Parses an RFC 3339 date-time at or after the Unix epoch.
    pub fn parse_rfc3339(text: &str) -> Result<Timestamp, GenesisError> {
        let invalid = |reason: String| GenesisError::InvalidTime {
            value: text.to_owned(),
            reason,
        };
        let parsed = OffsetDateTime::parse(text, &Rfc3339).map_err(|e| {
            invalid(format!(
                "not RFC 3339 ({e}); write e.g. 2026-11-25T08:00:00Z"
            ))
        })?;
        let millis = parsed.unix_timestamp_nanos() / 1_000_000;
        u64::try_from(millis)
            .map(Timestamp)
            .map_err(|_| invalid("before 1970-01-01T00:00:00Z".to_owned()))
    }

    /// RFC 3339 in UTC, with milliseconds only when there are any.
    pub fn to_rfc3339(self) -> String {
        let nanos = i128::from(self.0) * 1_000_000;
        match OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
        {
            Some(text) => text,
            // Beyond year 9999: RFC 3339 cannot show it; fall back to the raw count.
            None => format!("@{}ms", self.0),
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <String as Deserialize>::deserialize(deserializer)?;
        Timestamp::parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_name_the_same_instant() {
        let utc = Timestamp::parse_rfc3339("2026-11-25T08:00:00Z").unwrap();
        let beijing = Timestamp::parse_rfc3339("2026-11-25T16:00:00+08:00").unwrap();
        assert_eq!(utc, beijing);
        assert_eq!(utc.as_millis(), 1_795_593_600_000);
        assert_eq!(utc.to_rfc3339(), "2026-11-25T08:00:00Z");
    }

    #[test]
    fn keeps_milliseconds() {
        let t = Timestamp::parse_rfc3339("2026-11-25T08:00:00.250Z").unwrap();
        assert_eq!(t.as_millis() % 1000, 250);
        assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()).unwrap(), t);
    }

    #[test]
    fn refuses_garbage_and_pre_epoch() {
        assert!(matches!(
            Timestamp::parse_rfc3339("yesterday"),
            Err(GenesisError::InvalidTime { .. })
        ));
        assert!(matches!(
            Timestamp::parse_rfc3339("1969-12-31T23:59:59Z"),
            Err(GenesisError::InvalidTime { .. })
        ));
    }
}
