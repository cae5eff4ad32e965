//! Classic BPF programs for `SO_ATTACH_FILTER` on an `AF_PACKET`/`SOCK_RAW` socket, so the
//! kernel hands the responders only the frames they answer instead of all the node's traffic.
//!
//! Offsets count from the start of the Ethernet header (a `SOCK_RAW` packet socket sees whole
//! frames). A load past the end of a frame makes the kernel return 0, so truncated frames are
//! rejected without explicit length checks. The filters are coarse on purpose; the parsers in
//! [`super::arp`] and [`super::ndp`] do the full validation.

/// One classic BPF instruction, laid out as the kernel's `struct sock_filter`
/// (`linux/filter.h`: `__u16 code; __u8 jt; __u8 jf; __u32 k;`), so a slice of these can be
/// passed in a `struct sock_fprog`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    /// Opcode: class | size | mode (loads), class | op | source (jumps, returns).
    pub code: u16,
    /// Instructions to skip when a jump's condition holds.
    pub jt: u8,
    /// Instructions to skip when it does not.
    pub jf: u8,
    /// The constant operand: an offset for loads, a value for jumps and returns.
    pub k: u32,
}

// The kernel reads `struct sock_filter` as 8 bytes; a different layout would be misread.
const _: () = assert!(std::mem::size_of::<Insn>() == 8);
const _: () = assert!(std::mem::align_of::<Insn>() == 4);

// Opcode parts, with the values of `linux/bpf_common.h`.
const BPF_LD: u16 = 0x00;
const BPF_JMP: u16 = 0x05;
const BPF_RET: u16 = 0x06;
const BPF_H: u16 = 0x08;
const BPF_B: u16 = 0x10;
const BPF_ABS: u16 = 0x20;
const BPF_JEQ: u16 = 0x10;
const BPF_K: u16 = 0x00;

/// `BPF_LD|BPF_H|BPF_ABS` (0x28): A = the big-endian 16-bit word at offset k.
pub const LD_H_ABS: u16 = BPF_LD | BPF_H | BPF_ABS;
/// `BPF_LD|BPF_B|BPF_ABS` (0x30): A = the byte at offset k.
pub const LD_B_ABS: u16 = BPF_LD | BPF_B | BPF_ABS;
/// `BPF_JMP|BPF_JEQ|BPF_K` (0x15): skip jt instructions if A == k, else jf.
pub const JEQ_K: u16 = BPF_JMP | BPF_JEQ | BPF_K;
/// `BPF_RET|BPF_K` (0x06): stop; keep the first k bytes of the frame (0 = drop it).
pub const RET_K: u16 = BPF_RET | BPF_K;

/// What an accepting program returns: the number of bytes to keep. 262144 is what tcpdump
/// uses for "the whole frame"; it exceeds any MTU.
pub const ACCEPT: u32 = 262_144;

/// What a rejecting program returns: keep nothing, so the frame is not queued at all.
pub const REJECT: u32 = 0;

/// Accepts Ethernet ARP requests for IPv4 addresses: ethertype 0x0806, htype 1 (Ethernet),
/// ptype 0x0800 (IPv4), operation 1 (request).
pub fn arp_requests() -> Vec<Insn> {
    all_equal(&[
        (LD_H_ABS, 12, 0x0806), // ethertype: ARP
        (LD_H_ABS, 14, 1),      // htype: Ethernet
        (LD_H_ABS, 16, 0x0800), // ptype: IPv4
        (LD_H_ABS, 20, 1),      // operation: request
    ])
}

/// Accepts ICMPv6 Neighbor Solicitations carried directly in IPv6 (no extension headers):
/// ethertype 0x86DD, next header 58 (offset 20), ICMPv6 type 135 (offset 54).
pub fn neighbor_solicitations() -> Vec<Insn> {
    all_equal(&[
        (LD_H_ABS, 12, 0x86DD), // ethertype: IPv6
        (LD_B_ABS, 20, 58),     // next header: ICMPv6
        (LD_B_ABS, 54, 135),    // ICMPv6 type: neighbor solicitation
    ])
}

/// A program accepting exactly the frames where every `(load, offset, value)` check holds:
/// a load and a jump-if-equal per check (falling through when equal, jumping to the final
/// reject otherwise), then `ret ACCEPT; ret REJECT`.
fn all_equal(checks: &[(u16, u32, u32)]) -> Vec<Insn> {
    let mut program = Vec::with_capacity(checks.len() * 2 + 2);
    for (index, &(load, offset, value)) in checks.iter().enumerate() {
        // From this jump, the reject is past the remaining checks' pairs and the accept.
        let to_reject = (checks.len() - index - 1) * 2 + 1;
        program.push(Insn {
            code: load,
            jt: 0,
            jf: 0,
            k: offset,
        });
        program.push(Insn {
            code: JEQ_K,
            jt: 0,
            // Programs here have a handful of checks, far below 255 instructions.
            jf: u8::try_from(to_reject).unwrap_or(u8::MAX),
            k: value,
        });
    }
    program.push(Insn {
        code: RET_K,
        jt: 0,
        jf: 0,
        k: ACCEPT,
    });
    program.push(Insn {
        code: RET_K,
        jt: 0,
        jf: 0,
        k: REJECT,
    });
    program
}

#[cfg(test)]
mod tests;
