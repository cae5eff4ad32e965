//! Any bytes as a received Ethernet frame: the ARP and NDP parsers never panic, and whatever
//! they accept yields a reply of the right size that the parsers do not mistake for a request.
#![no_main]
use ferrolb::l2::frame::MacAddr;
use ferrolb::l2::{arp, ndp};
use libfuzzer_sys::fuzz_target;

const OURS: MacAddr = MacAddr(0x02, 0, 0x5e, 0x10, 0, 1);

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = arp::parse_request(data) {
        let reply = arp::reply(&request, OURS);
        assert_eq!(reply.len(), 60);
        assert_eq!(
            arp::parse_request(&reply),
            Err(ferrolb::l2::frame::FrameError::NotRequest)
        );
    }
    if let Ok(ns) = ndp::parse_solicitation(data) {
        assert!(!ns.target.is_multicast());
        let na = ndp::advertisement(&ns, OURS);
        assert_eq!(na.len(), ndp::ADVERTISEMENT_LEN);
        // Our advertisement is complete IPv6/ICMPv6 (no truncation error) of another type.
        assert_eq!(
            ndp::parse_solicitation(&na),
            Err(ferrolb::l2::frame::FrameError::NotSolicitation)
        );
    }
});
