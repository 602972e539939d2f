use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Kiro subscription tiers, ordered: `PRO` < `PRO_PLUS` < `POWER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Tier {
    Pro,
    ProPlus,
    Power,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Pro, Tier::ProPlus, Tier::Power];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Pro => "PRO",
            Tier::ProPlus => "PRO_PLUS",
            Tier::Power => "POWER",
        }
    }

    /// How Kiro's console names the tier: Pro, Pro+, Power.
    pub fn label(self) -> &'static str {
        match self {
            Tier::Pro => "Pro",
            Tier::ProPlus => "Pro+",
            Tier::Power => "Power",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Money in millionths of a dollar: prices and overage add up exactly.
pub type MicroUsd = u64;

/// What the tiers cost and include (read from `TIER_PRICES_USD`, `TIER_CREDITS`,
/// `OVERAGE_PRICE_USD` by `config::pricing`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pricing {
    /// Monthly price, by tier in `Tier::ALL` order.
    pub prices: [MicroUsd; 3],
    /// Credits included per month, by tier in `Tier::ALL` order.
    pub credits: [u64; 3],
    /// One credit beyond the included ones.
    pub overage: MicroUsd,
}

impl Pricing {
    pub fn price(&self, tier: Tier) -> MicroUsd {
        self.prices[tier_index(tier)]
    }

    pub fn credits(&self, tier: Tier) -> u64 {
        self.credits[tier_index(tier)]
    }
}

fn tier_index(tier: Tier) -> usize {
    Tier::ALL.iter().position(|t| *t == tier).unwrap_or_default()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be one of PRO, PRO_PLUS, POWER")]
pub struct UnknownTier;

impl FromStr for Tier {
    type Err = UnknownTier;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tier::ALL.into_iter().find(|t| t.as_str() == s).ok_or(UnknownTier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_are_ordered_pro_pro_plus_power() {
        assert!(Tier::Pro < Tier::ProPlus && Tier::ProPlus < Tier::Power);
        assert_eq!(Tier::ALL.iter().max(), Some(&Tier::Power));
    }

    #[test]
    fn tiers_round_trip_through_their_wire_names() {
        for t in Tier::ALL {
            assert_eq!(t.as_str().parse::<Tier>(), Ok(t));
            assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{t}\""));
        }
        assert!("pro".parse::<Tier>().is_err());
    }
}
