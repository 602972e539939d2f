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
