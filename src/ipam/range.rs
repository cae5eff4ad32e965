//! Address ranges as operators write them in a pool: a CIDR (`10.0.0.0/24`, `fd00:10::/120`)
//! or an inclusive range (`192.168.10.10-192.168.10.30`). Pure: parsing and arithmetic only.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::IpNet;

/// An IP family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(ip: IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// Bits in an address of this family (32 or 128).
    pub fn bits(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// Why a range string was refused. Each message says what would be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// Neither a CIDR nor a range.
    #[error("{input:?} is not an address range: expected a CIDR like \"192.168.10.0/24\" or a range like \"192.168.10.10-192.168.10.30\"")]
    Malformed {
        /// The text as written.
        input: String,
    },
    /// One side of `a-b` is not an IP address.
    #[error("{part:?} in {input:?} is not an IP address")]
    BadAddress {
        /// The whole range as written.
        input: String,
        /// The side that failed.
        part: String,
    },
    /// A CIDR whose address has bits set past the prefix.
    #[error("{input:?} has host bits set; did you mean \"{suggestion}\"?")]
    HostBits {
        /// The CIDR as written.
        input: String,
        /// The network it most likely means.
        suggestion: String,
    },
    /// `a-b` with `b < a`.
    #[error("range {input:?} ends before it starts; write the lower address first")]
    EndBeforeStart {
        /// The range as written.
        input: String,
    },
    /// `a-b` with one IPv4 and one IPv6 side.
    #[error("range {input:?} mixes IPv4 and IPv6; a range must stay within one family")]
    MixedFamilies {
        /// The range as written.
        input: String,
    },
}

/// An inclusive range of addresses of one family: `start <= end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpRange {
    start: IpAddr,
    end: IpAddr,
}

impl IpRange {
    /// A range from `start` to `end` inclusive; both of one family, `start <= end`.
    pub fn new(start: IpAddr, end: IpAddr) -> Result<IpRange, RangeError> {
        let input = format!("{start}-{end}");
        if Family::of(start) != Family::of(end) {
            return Err(RangeError::MixedFamilies { input });
        }
        if to_u128(end) < to_u128(start) {
            return Err(RangeError::EndBeforeStart { input });
        }
        Ok(IpRange { start, end })
    }

    /// The range covering exactly one network.
    pub fn from_net(net: IpNet) -> IpRange {
        IpRange {
            start: net.network(),
            end: net.broadcast(),
        }
    }

    /// First address.
    pub fn start(&self) -> IpAddr {
        self.start
    }

    /// Last address (inclusive).
    pub fn end(&self) -> IpAddr {
        self.end
    }

    /// The family of both ends.
    pub fn family(&self) -> Family {
        Family::of(self.start)
    }

    /// Whether `ip` lies in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        Family::of(ip) == self.family() && {
            let v = to_u128(ip);
            to_u128(self.start) <= v && v <= to_u128(self.end)
        }
    }

    /// Whether the two ranges share at least one address.
    pub fn overlaps(&self, other: &IpRange) -> bool {
        self.family() == other.family()
            && to_u128(self.start) <= to_u128(other.end)
            && to_u128(other.start) <= to_u128(self.end)
    }

    /// Number of addresses, saturating at `u128::MAX` for `::/0`.
    pub fn size(&self) -> u128 {
        (to_u128(self.end) - to_u128(self.start)).saturating_add(1)
    }

    /// The `n`-th address of the range (0 = start), if the range is that long.
    pub fn nth(&self, n: u128) -> Option<IpAddr> {
        let v = to_u128(self.start).checked_add(n)?;
        (v <= to_u128(self.end)).then(|| from_u128(self.family(), v))
    }

    /// Offset of `ip` from the start, if it lies in the range.
    pub fn offset_of(&self, ip: IpAddr) -> Option<u128> {
        self.contains(ip).then(|| to_u128(ip) - to_u128(self.start))
    }

    /// The smallest list of CIDRs that covers exactly this range, lowest first.
    pub fn to_cidrs(&self) -> Vec<IpNet> {
        let bits = u32::from(self.family().bits());
        let mut out = Vec::new();
        let mut cur = to_u128(self.start);
        let end = to_u128(self.end);
        loop {
            // The largest block aligned at `cur` that does not pass `end`.
            let mut size_log2 = if cur == 0 {
                bits
            } else {
                cur.trailing_zeros().min(bits)
            };
            while size_log2 > 0 && block_last(cur, size_log2).is_none_or(|last| last > end) {
                size_log2 -= 1;
            }
            let prefix = (bits - size_log2) as u8;
            let net = IpNet::new(from_u128(self.family(), cur), prefix)
                .unwrap_or_else(|_| unreachable!("prefix {prefix} is at most {bits}"));
            out.push(net);
            match block_last(cur, size_log2) {
                Some(last) if last < end => cur = last + 1,
                _ => break,
            }
        }
        out
    }
}

/// Last value of the block of `2^size_log2` values starting at `start`, if it fits in a u128.
fn block_last(start: u128, size_log2: u32) -> Option<u128> {
    if size_log2 >= 128 {
        return (start == 0).then_some(u128::MAX);
    }
    start.checked_add((1u128 << size_log2) - 1)
}

impl FromStr for IpRange {
    type Err = RangeError;

    fn from_str(s: &str) -> Result<IpRange, RangeError> {
        let input = s.trim();
        let malformed = || RangeError::Malformed {
            input: s.to_string(),
        };
        if input.contains('/') {
            let net: IpNet = input.parse().map_err(|_| malformed())?;
            if net.addr() != net.network() {
                return Err(RangeError::HostBits {
                    input: s.to_string(),
                    suggestion: net.trunc().to_string(),
                });
            }
            return Ok(IpRange::from_net(net));
        }
        if let Some((a, b)) = input.split_once('-') {
            let parse = |part: &str| {
                part.trim()
                    .parse::<IpAddr>()
                    .map_err(|_| RangeError::BadAddress {
                        input: s.to_string(),
                        part: part.trim().to_string(),
                    })
            };
            let (start, end) = (parse(a)?, parse(b)?);
            return IpRange::new(start, end).map_err(|e| match e {
                RangeError::MixedFamilies { .. } => RangeError::MixedFamilies {
                    input: s.to_string(),
                },
                RangeError::EndBeforeStart { .. } => RangeError::EndBeforeStart {
                    input: s.to_string(),
                },
                other => other,
            });
        }
        // A bare address is a range of one; operators write that for a single VIP.
        let ip: IpAddr = input.parse().map_err(|_| malformed())?;
        Ok(IpRange { start: ip, end: ip })
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_cidrs().as_slice() {
            [net] => write!(f, "{net}"),
            _ => write!(f, "{}-{}", self.start, self.end),
        }
    }
}

/// An address as an unsigned integer (IPv4 in the low 32 bits).
pub fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The address of `family` whose integer value is `v` (IPv4 keeps the low 32 bits).
pub fn from_u128(family: Family, v: u128) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(v as u32)),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn r(s: &str) -> IpRange {
        s.parse().unwrap()
    }

    #[test]
    fn parses_cidr_range_and_single() {
        assert_eq!(r("10.0.0.0/30").size(), 4);
        assert_eq!(r("10.0.0.10-10.0.0.30").size(), 21);
        assert_eq!(r("fd00:10::/120").size(), 256);
        assert_eq!(r(" 10.0.0.7 ").size(), 1);
        assert_eq!(r("::/0").size(), u128::MAX);
        assert_eq!(r("10.0.0.1 - 10.0.0.2").size(), 2);
    }

    #[test]
    fn rejects_bad_input_with_reasons() {
        assert!(matches!(
            "10.0.0.0/33".parse::<IpRange>(),
            Err(RangeError::Malformed { .. })
        ));
        assert!(matches!(
            "10.0.0.9-10.0.0.1".parse::<IpRange>(),
            Err(RangeError::EndBeforeStart { .. })
        ));
        assert!(matches!(
            "10.0.0.1-fd00::1".parse::<IpRange>(),
            Err(RangeError::MixedFamilies { .. })
        ));
        assert!(matches!(
            "10.0.0.1-banana".parse::<IpRange>(),
            Err(RangeError::BadAddress { .. })
        ));
        let e = "10.0.0.5/24".parse::<IpRange>().unwrap_err();
        assert!(e.to_string().contains("10.0.0.0/24"), "{e}");
    }

    #[test]
    fn cidrs_cover_ranges_exactly() {
        let nets: Vec<String> = r("10.0.0.1-10.0.0.6")
            .to_cidrs()
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(
            nets,
            ["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"]
        );
        assert_eq!(r("0.0.0.0/0").to_cidrs().len(), 1);
        assert_eq!(r("::/0").to_cidrs().len(), 1);
        assert_eq!(r("10.0.0.0/24").to_string(), "10.0.0.0/24");
        assert_eq!(r("10.0.0.1-10.0.0.6").to_string(), "10.0.0.1-10.0.0.6");
    }

    #[test]
    fn overlap_and_contains() {
        assert!(r("10.0.0.0/24").overlaps(&r("10.0.0.255-10.0.1.3")));
        assert!(!r("10.0.0.0/24").overlaps(&r("10.0.1.0/24")));
        assert!(!r("10.0.0.0/24").overlaps(&r("::/0")));
        assert!(r("fd00::/120").contains("fd00::ff".parse().unwrap()));
        assert!(!r("fd00::/120").contains("10.0.0.1".parse().unwrap()));
        assert_eq!(
            r("10.0.0.10-10.0.0.30").nth(20),
            Some("10.0.0.30".parse().unwrap())
        );
        assert_eq!(r("10.0.0.10-10.0.0.30").nth(21), None);
    }

    proptest! {
        #[test]
        fn cidrs_partition_the_range(a: u32, len in 0u32..100_000) {
            let b = a.saturating_add(len);
            let range = IpRange::new(IpAddr::V4(a.into()), IpAddr::V4(b.into())).unwrap();
            let nets = range.to_cidrs();
            let total: u128 = nets.iter().map(|n| IpRange::from_net(*n).size()).sum();
            prop_assert_eq!(total, range.size());
            prop_assert_eq!(nets.first().unwrap().network(), range.start());
            prop_assert_eq!(nets.last().unwrap().broadcast(), range.end());
            for w in nets.windows(2) {
                prop_assert_eq!(to_u128(w[0].broadcast()) + 1, to_u128(w[1].network()));
            }
        }

        #[test]
        fn display_parses_back(a: u128, len in 0u128..1_000_000) {
            let b = a.saturating_add(len);
            let range = IpRange::new(IpAddr::V6(a.into()), IpAddr::V6(b.into())).unwrap();
            prop_assert_eq!(range.to_string().parse::<IpRange>().unwrap(), range);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = s.parse::<IpRange>();
        }
    }
}
