//! Typed configuration, read once from the environment at start-up.

use std::env;

use crate::domain::Tier;

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

pub use crate::domain::tier::{MicroUsd, Pricing};

fn tier_index(tier: Tier) -> usize {
    Tier::ALL.iter().position(|t| *t == tier).unwrap_or_default()
}

pub const DEFAULT_TIER_PRICES_USD: &str = "PRO=20,PRO_PLUS=40,POWER=200";
pub const DEFAULT_TIER_CREDITS: &str = "PRO=1000,PRO_PLUS=2000,POWER=10000";
pub const DEFAULT_OVERAGE_PRICE_USD: &str = "0.04";

/// Reads the three pricing variables (their contract defaults when unset).
pub fn pricing(get: impl Fn(&str) -> Option<String>) -> Result<Pricing, ConfigError> {
    let per_tier = |name: &'static str, default: &str, parse: &dyn Fn(&str) -> Option<u64>| {
        let raw = non_empty(&get, name).unwrap_or_else(|| default.to_owned());
        let invalid = || ConfigError::Invalid {
            name,
            value: raw.clone(),
            expected: "TIER=value for each of PRO, PRO_PLUS and POWER, comma-separated",
        };
        let mut values: [Option<u64>; 3] = [None; 3];
        for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (tier, value) = pair.split_once('=').ok_or_else(invalid)?;
            let tier: Tier = tier.trim().parse().map_err(|_| invalid())?;
            values[tier_index(tier)] = Some(parse(value.trim()).ok_or_else(invalid)?);
        }
        match values {
            [Some(a), Some(b), Some(c)] => Ok([a, b, c]),
            _ => Err(invalid()),
        }
    };
    let prices = per_tier("TIER_PRICES_USD", DEFAULT_TIER_PRICES_USD, &parse_usd)?;
    let credits = per_tier("TIER_CREDITS", DEFAULT_TIER_CREDITS, &|v| v.parse::<u64>().ok())?;
    let raw = non_empty(&get, "OVERAGE_PRICE_USD").unwrap_or_else(|| DEFAULT_OVERAGE_PRICE_USD.to_owned());
    let overage = parse_usd(raw.trim()).ok_or(ConfigError::Invalid {
        name: "OVERAGE_PRICE_USD",
        value: raw.clone(),
        expected: "a price in dollars such as 0.04",
    })?;
    Ok(Pricing { prices, credits, overage })
}

/// `"20"`, `"0.04"`, `"39.99"` in millionths of a dollar; at most six decimals.
fn parse_usd(raw: &str) -> Option<MicroUsd> {
    let (whole, frac) = raw.split_once('.').unwrap_or((raw, ""));
    if whole.is_empty() && frac.is_empty()
        || frac.len() > 6
        || !(whole.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let whole: u64 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let frac: u64 = if frac.is_empty() { 0 } else { format!("{frac:0<6}").parse().ok()? };
    whole.checked_mul(1_000_000)?.checked_add(frac)
}

/// The console's sign-in settings (`CONSOLE_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleConfig {
    pub issuer: String,
    pub client_id: String,
    /// `None`: from each request's `requestContext.domainName`, https.
    pub base_url: Option<String>,
    pub user_claim: String,
    pub admin_group: String,
    pub viewer_group: String,
}

/// The console's `CONSOLE_*` settings (`CONSOLE_OIDC_ISSUER` and `CONSOLE_OIDC_CLIENT_ID` required).
pub fn console(get: impl Fn(&str) -> Option<String>) -> Result<ConsoleConfig, ConfigError> {
    let required = |name: &'static str| non_empty(&get, name).ok_or(ConfigError::Missing(name));
    let issuer = required("CONSOLE_OIDC_ISSUER")?.trim().trim_end_matches('/').to_owned();
    if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
        return Err(ConfigError::Invalid {
            name: "CONSOLE_OIDC_ISSUER",
            value: issuer,
            expected: "the issuer's URL, such as https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbCdEf",
        });
    }
    let base_url = non_empty(&get, "CONSOLE_BASE_URL").map(|b| b.trim().trim_end_matches('/').to_owned());
    Ok(ConsoleConfig {
        issuer,
        client_id: required("CONSOLE_OIDC_CLIENT_ID")?.trim().to_owned(),
        base_url,
        user_claim: non_empty(&get, "CONSOLE_USER_CLAIM").unwrap_or_else(|| "email".to_owned()),
        admin_group: non_empty(&get, "CONSOLE_ADMIN_GROUP").unwrap_or_else(|| "KiroAdmins".to_owned()),
        viewer_group: non_empty(&get, "CONSOLE_VIEWER_GROUP").unwrap_or_else(|| "KiroViewers".to_owned()),
    })
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
    fn pricing_defaults_to_the_contract_and_reads_dollars_exactly() {
        let p = pricing(env(&[])).unwrap();
        assert_eq!(p.prices, [20_000_000, 40_000_000, 200_000_000]);
        assert_eq!(p.credits, [1000, 2000, 10000]);
        assert_eq!(p.overage, 40_000);
        let p = pricing(env(&[("TIER_PRICES_USD", "POWER=199.99, PRO=19,PRO_PLUS=39.5")])).unwrap();
        assert_eq!(p.price(Tier::Power), 199_990_000);
        assert_eq!(p.price(Tier::ProPlus), 39_500_000);
        for bad in ["PRO=20,PRO_PLUS=40", "PRO=20,PRO_PLUS=40,POWER=x", "PRO=-1,PRO_PLUS=40,POWER=200", "ULTRA=1"] {
            assert!(pricing(env(&[("TIER_PRICES_USD", bad)])).is_err(), "{bad}");
        }
        assert!(pricing(env(&[("OVERAGE_PRICE_USD", "four cents")])).is_err());
    }

    #[test]
    fn the_console_needs_its_issuer_and_client() {
        assert_eq!(console(env(&[])).unwrap_err(), ConfigError::Missing("CONSOLE_OIDC_ISSUER"));
        let c = console(env(&[("CONSOLE_OIDC_ISSUER", "http://127.0.0.1:3001/"), ("CONSOLE_OIDC_CLIENT_ID", "kiro")]))
            .unwrap();
        assert_eq!(
            (c.issuer.as_str(), c.user_claim.as_str(), c.admin_group.as_str()),
            ("http://127.0.0.1:3001", "email", "KiroAdmins")
        );
        assert_eq!(c.base_url, None);
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
