//! BGP communities as a pool's `[pool.bgp] communities` lists them: standard (`"65000:100"`,
//! RFC 1997), their well-known names (`"no-export"`), and large (`"large:64500:1:2"`, RFC 8092).

use std::fmt;
use std::str::FromStr;

/// One community to attach to a pool's routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Community {
    /// A standard community (RFC 1997): two 16-bit halves, `high:low`.
    Standard(u32),
    /// A large community (RFC 8092): global administrator and two local data parts.
    Large(u32, u32, u32),
}

/// The well-known standard communities by name, and their values.
pub const WELL_KNOWN: [(&str, u32); 8] = [
    ("graceful-shutdown", 0xFFFF_0000),   // RFC 8326
    ("accept-own", 0xFFFF_0001),          // RFC 7611
    ("blackhole", 0xFFFF_029A),           // RFC 7999
    ("no-export", 0xFFFF_FF01),           // RFC 1997
    ("no-advertise", 0xFFFF_FF02),        // RFC 1997
    ("no-export-subconfed", 0xFFFF_FF03), // RFC 1997
    ("local-as", 0xFFFF_FF03),            // the same value under its other name
    ("no-peer", 0xFFFF_FF04),             // RFC 3765
];

impl Community {
    /// A standard community from its two halves.
    pub fn standard(high: u16, low: u16) -> Community {
        Community::Standard((u32::from(high) << 16) | u32::from(low))
    }
}

/// Why a community was refused; the message says what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a community ({why}); write \"65000:100\" (two numbers 0-65535), \"large:64500:1:2\" (three numbers 0-4294967295) or a well-known name: graceful-shutdown, accept-own, blackhole, no-export, no-advertise, no-export-subconfed, local-as, no-peer")]
pub struct CommunityError {
    /// The text as written.
    pub input: String,
    /// What is wrong with it.
    pub why: String,
}

impl FromStr for Community {
    type Err = CommunityError;

    fn from_str(s: &str) -> Result<Community, CommunityError> {
        let err = |why: &str| CommunityError {
            input: s.to_string(),
            why: why.to_string(),
        };
        let t = s.trim();
        if let Some((_, v)) = WELL_KNOWN.iter().find(|(name, _)| *name == t) {
            return Ok(Community::Standard(*v));
        }
        if let Some(rest) = t.strip_prefix("large:") {
            let parts: Vec<&str> = rest.split(':').collect();
            let [a, b, c] = parts.as_slice() else {
                return Err(err("a large community has three parts after \"large:\""));
            };
            let num = |p: &str| {
                p.parse::<u32>()
                    .map_err(|_| err(&format!("{p:?} is not a number 0-4294967295")))
            };
            return Ok(Community::Large(num(a)?, num(b)?, num(c)?));
        }
        let Some((high, low)) = t.split_once(':') else {
            return Err(err("expected two numbers separated by ':'"));
        };
        let half = |p: &str| {
            p.parse::<u16>()
                .map_err(|_| err(&format!("{p:?} is not a number 0-65535")))
        };
        Ok(Community::standard(half(high)?, half(low)?))
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Community::Standard(v) => match WELL_KNOWN.iter().find(|(_, w)| *w == v) {
                Some((name, _)) => f.write_str(name),
                None => write!(f, "{}:{}", v >> 16, v & 0xFFFF),
            },
            Community::Large(a, b, c) => write!(f, "large:{a}:{b}:{c}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn c(s: &str) -> Community {
        s.parse().unwrap()
    }

    #[test]
    fn parses_every_form() {
        assert_eq!(c("65000:100"), Community::standard(65000, 100));
        assert_eq!(c("0:0"), Community::Standard(0));
        assert_eq!(c("65535:65535"), Community::Standard(u32::MAX));
        assert_eq!(c("no-export"), Community::Standard(0xFFFF_FF01));
        assert_eq!(c("no-export"), c("65535:65281"));
        assert_eq!(c("local-as"), c("no-export-subconfed"));
        assert_eq!(c("blackhole"), c("65535:666"));
        assert_eq!(c("graceful-shutdown"), c("65535:0"));
        assert_eq!(c("large:1:2:3"), Community::Large(1, 2, 3));
        assert_eq!(
            c("large:4294967295:0:4294967295"),
            Community::Large(u32::MAX, 0, u32::MAX)
        );
    }

    #[test]
    fn refuses_malformed() {
        for bad in [
            "",
            "65000",
            "65536:1",
            "1:65536",
            "-1:1",
            "a:b",
            "1:2:3",
            "large:1:2",
            "large:1:2:3:4",
            "large:4294967296:1:1",
            "no_export",
            "NO-EXPORT",
        ] {
            let e = bad.parse::<Community>().unwrap_err();
            assert!(e.to_string().contains("65000:100"), "{bad}: {e}");
        }
    }

    #[test]
    fn displays_names_for_well_known_values() {
        assert_eq!(c("65535:65281").to_string(), "no-export");
        assert_eq!(c("local-as").to_string(), "no-export-subconfed");
        assert_eq!(c("65000:100").to_string(), "65000:100");
        assert_eq!(c("large:1:2:3").to_string(), "large:1:2:3");
    }

    fn any_community() -> impl Strategy<Value = Community> {
        prop_oneof![
            any::<u32>().prop_map(Community::Standard),
            (any::<u32>(), any::<u32>(), any::<u32>())
                .prop_map(|(a, b, c)| Community::Large(a, b, c)),
            proptest::sample::select(WELL_KNOWN.to_vec()).prop_map(|(_, v)| Community::Standard(v)),
        ]
    }

    proptest! {
        #[test]
        fn display_parses_back(community in any_community()) {
            prop_assert_eq!(community.to_string().parse::<Community>(), Ok(community));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,30}") {
            let _ = s.parse::<Community>();
        }
    }
}
