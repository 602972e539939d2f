//! Typed configuration, read once from the environment at start-up.

use std::env;

pub const DEFAULT_EVENT_BUS: &str = "default";
pub const DEFAULT_SUPPORTED_REGIONS: &str = "us-east-1,eu-central-1";
pub const DEFAULT_REVOKE_LIMIT_PERCENT: u8 = 25;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set: the function cannot start without it")]
    Missing(&'static str),
    #[error("{name} is invalid ({value:?}): {expected}")]
    Invalid { name: &'static str, value: String, expected: &'static str },
}

/// What every function needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub table_name: String,
    pub event_bus_name: String,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let table_name = non_empty(&get, "TABLE_NAME").ok_or(ConfigError::Missing("TABLE_NAME"))?;
        let event_bus_name = non_empty(&get, "EVENT_BUS_NAME").unwrap_or_else(|| DEFAULT_EVENT_BUS.to_owned());
        Ok(Self { table_name, event_bus_name })
    }
}

/// `SUPPORTED_REGIONS`: the Regions a profile may live in (create-profile).
pub fn supported_regions(get: impl Fn(&str) -> Option<String>) -> Result<Vec<String>, ConfigError> {
    let raw = non_empty(&get, "SUPPORTED_REGIONS").unwrap_or_else(|| DEFAULT_SUPPORTED_REGIONS.to_owned());
    let regions: Vec<String> = raw.split(',').map(str::trim).filter(|r| !r.is_empty()).map(str::to_owned).collect();
    let well_formed = |r: &String| r.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if regions.is_empty() || !regions.iter().all(well_formed) {
        return Err(ConfigError::Invalid {
            name: "SUPPORTED_REGIONS",
            value: raw,
            expected: "a comma-separated list of Region codes such as us-east-1,eu-central-1",
        });
    }
    Ok(regions)
}

/// `AUDIT_REVOKE_LIMIT_PERCENT`: the audit's revoke guard (sync-group).
pub fn revoke_limit_percent(get: impl Fn(&str) -> Option<String>) -> Result<u8, ConfigError> {
    match non_empty(&get, "AUDIT_REVOKE_LIMIT_PERCENT") {
        None => Ok(DEFAULT_REVOKE_LIMIT_PERCENT),
        Some(raw) => match raw.trim().parse::<u8>() {
            Ok(p) if p <= 100 => Ok(p),
            _ => Err(ConfigError::Invalid {
                name: "AUDIT_REVOKE_LIMIT_PERCENT",
                value: raw,
                expected: "a whole number from 0 to 100",
            }),
        },
    }
}

/// `SYNC_GROUP_CONCURRENCY`: how many sync-group invocations run at once at most (its reserved
/// concurrency, set from the same template parameter). Identity Store allows 20 requests a
/// second; each process paces itself to its share, `20 / n` (at least 1). Unset: 1, the whole
/// rate (local runs, tests).
pub fn identity_store_share(get: impl Fn(&str) -> Option<String>) -> Result<u32, ConfigError> {
    let total = crate::aws::identitystore::REQUESTS_PER_SECOND;
    match non_empty(&get, "SYNC_GROUP_CONCURRENCY") {
        None => Ok(total),
        Some(raw) => match raw.trim().parse::<u32>() {
            Ok(n) if (1..=1000).contains(&n) => Ok((total / n).max(1)),
            _ => Err(ConfigError::Invalid {
                name: "SYNC_GROUP_CONCURRENCY",
                value: raw,
                expected: "a whole number from 1 to 1000 (sync-group's reserved concurrency)",
            }),
        },
    }
}

/// The process environment, for the `*_from(get)` readers above.
pub fn env_var(name: &str) -> Option<String> {
    env::var(name).ok()
}

fn non_empty(get: &impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    get(name).filter(|v| !v.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn table_name_is_required_and_the_message_says_so() {
        let err = Config::from_lookup(env(&[])).unwrap_err();
        assert_eq!(err, ConfigError::Missing("TABLE_NAME"));
        assert!(err.to_string().contains("TABLE_NAME is not set"));
        assert!(Config::from_lookup(env(&[("TABLE_NAME", " ")])).is_err());
    }

    #[test]
    fn event_bus_defaults_to_default() {
        let c = Config::from_lookup(env(&[("TABLE_NAME", "t")])).unwrap();
        assert_eq!(c.event_bus_name, "default");
    }

    #[test]
    fn supported_regions_default_and_parse() {
        assert_eq!(supported_regions(env(&[])).unwrap(), ["us-east-1", "eu-central-1"]);
        let r = supported_regions(env(&[("SUPPORTED_REGIONS", " us-west-2 , ap-south-1,")])).unwrap();
        assert_eq!(r, ["us-west-2", "ap-south-1"]);
        assert!(supported_regions(env(&[("SUPPORTED_REGIONS", ",")])).is_err());
        assert!(supported_regions(env(&[("SUPPORTED_REGIONS", "US EAST")])).is_err());
    }

    #[test]
    fn revoke_limit_is_a_percentage() {
        assert_eq!(revoke_limit_percent(env(&[])).unwrap(), 25);
        assert_eq!(revoke_limit_percent(env(&[("AUDIT_REVOKE_LIMIT_PERCENT", "0")])).unwrap(), 0);
        assert!(revoke_limit_percent(env(&[("AUDIT_REVOKE_LIMIT_PERCENT", "101")])).is_err());
        assert!(revoke_limit_percent(env(&[("AUDIT_REVOKE_LIMIT_PERCENT", "ten")])).is_err());
    }

    #[test]
    fn concurrent_sync_group_processes_share_the_identity_store_rate() {
        let with = |v: &str| {
            let v = v.to_owned();
            identity_store_share(move |k| (k == "SYNC_GROUP_CONCURRENCY").then(|| v.clone()))
        };
        assert_eq!(identity_store_share(|_| None), Ok(20), "alone: the whole 20 a second");
        assert_eq!((with("1"), with("2"), with("3"), with("40")), (Ok(20), Ok(10), Ok(6), Ok(1)));
        for bad in ["0", "-1", "two", "1001"] {
            assert!(matches!(with(bad), Err(ConfigError::Invalid { name: "SYNC_GROUP_CONCURRENCY", .. })), "{bad}");
        }
    }
}
