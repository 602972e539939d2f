//! Times on the wire: RFC 3339, UTC, millisecond precision, `Z` suffix.

use chrono::{DateTime, Datelike, SecondsFormat, TimeZone, Utc};

pub fn format(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn parse(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

/// The first instant of the calendar month after `t`, in UTC.
pub fn start_of_next_month(t: DateTime<Utc>) -> DateTime<Utc> {
    let (year, month) = if t.month() == 12 { (t.year() + 1, 1) } else { (t.year(), t.month() + 1) };
    Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0).single().expect("the first of a month at midnight UTC always exists")
}

/// `#[serde(with = "rfc3339")]` for `DateTime<Utc>` fields.
pub mod rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let raw = String::deserialize(d)?;
        super::parse(&raw).ok_or_else(|| D::Error::custom("not an RFC 3339 time"))
    }
}

/// `#[serde(with = "rfc3339_opt", default, skip_serializing_if = "Option::is_none")]`.
pub mod rfc3339_opt {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::format(t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(raw) => super::parse(&raw).map(Some).ok_or_else(|| D::Error::custom("not an RFC 3339 time")),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_month_starts_at_midnight_on_the_first() {
        let t = parse("2026-11-26T09:05:29Z").unwrap();
        assert_eq!(format(&start_of_next_month(t)), "2026-12-01T00:00:00.000Z");
        let dec = parse("2026-12-31T23:59:59.999Z").unwrap();
        assert_eq!(format(&start_of_next_month(dec)), "2027-01-01T00:00:00.000Z");
        let first = parse("2026-02-01T00:00:00Z").unwrap();
        assert_eq!(format(&start_of_next_month(first)), "2026-03-01T00:00:00.000Z");
    }
}
