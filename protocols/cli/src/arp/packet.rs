//! An ARP packet in an Ethernet frame, field by field, in the order of RFC
//! 826's "Packet format": the Ethernet header, then `ar$hrd`, `ar$pro`,
//! `ar$hln`, `ar$pln`, `ar$op`, `ar$sha`, `ar$spa`, `ar$tha`, `ar$tpa`.
//!
//! The four addresses are variable width: ARP resolves any protocol's
//! addresses to any hardware's, so their widths are not fixed by ARP but
//! given in the packet itself, by `ar$hln` (hardware) and `ar$pln`
//! (protocol) before them. Ethernet and IPv4 make them 6 and 4.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// One field: where it is, how wide, what it holds and what that means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Byte offset in the frame.
    pub offset: usize,
    /// Width in bytes.
    pub width: usize,
    /// Its name (RFC 826's `ar$...` for the ARP body).
    pub name: &'static str,
    /// Its value, written the usual way for its kind.
    pub value: String,
    /// What the value means here.
    pub meaning: String,
}

/// Why a frame is not a whole ARP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Not hexadecimal digits (spaces and colons allowed).
    NotHex(String),
    /// Fewer bytes than the fields need: how many it has, how many it needs.
    Short(usize, usize),
    /// The Ethernet type is not ARP's 0x0806.
    NotArp(u16),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::NotHex(w) => write!(f, "not hexadecimal: '{w}'"),
            DecodeError::Short(have, need) => write!(f, "{have} bytes, but the fields need {need}"),
            DecodeError::NotArp(t) => write!(f, "Ethernet type 0x{t:04x} is not ARP (0x0806)"),
        }
    }
}

/// Bytes from hex text: `ffffffffffff...`, with spaces, colons or newlines
/// between bytes allowed.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, DecodeError> {
    let digits: String = text.chars().filter(|c| !c.is_whitespace() && *c != ':' && *c != '-').collect();
    if !digits.len().is_multiple_of(2) || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(DecodeError::NotHex(text.trim().chars().take(40).collect()));
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).map_err(|_| DecodeError::NotHex(digits[i..i + 2].into())))
        .collect()
}

fn mac(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(":")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A protocol address: dotted IPv4 when it is one, else hex.
fn proto_addr(ptype: u16, b: &[u8]) -> String {
    match <[u8; 4]>::try_from(b) {
        Ok(a) if ptype == 0x0800 => Ipv4Addr::from(a).to_string(),
        _ => hex(b),
    }
}

/// A hardware address: colon-separated hex.
fn hw_addr(b: &[u8]) -> String {
    mac(b)
}

/// Decodes an Ethernet frame holding an ARP packet into its fields, in RFC
/// 826 order (then any padding up to Ethernet's 60-byte minimum).
pub fn decode(frame: &[u8]) -> Result<Vec<Field>, DecodeError> {
    if frame.len() < 22 {
        return Err(DecodeError::Short(frame.len(), 22));
    }
    let u16_at = |i: usize| u16::from_be_bytes([frame[i], frame[i + 1]]);
    let ethertype = u16_at(12);
    if ethertype != 0x0806 {
        return Err(DecodeError::NotArp(ethertype));
    }
    let (hrd, pro, hln, pln, op) = (u16_at(14), u16_at(16), frame[18] as usize, frame[19] as usize, u16_at(20));
    let need = 22 + 2 * hln + 2 * pln;
    if frame.len() < need {
        return Err(DecodeError::Short(frame.len(), need));
    }
    let dst = &frame[0..6];
    let mut f = Vec::new();
    let mut push = |offset: usize, width: usize, name: &'static str, value: String, meaning: String| {
        f.push(Field { offset, width, name, value, meaning });
    };
    push(
        0,
        6,
        "ethernet destination",
        mac(dst),
        if dst == [0xff; 6] { "broadcast: every station on the link".into() } else { "one station (unicast)".into() },
    );
    push(6, 6, "ethernet source", mac(&frame[6..12]), "the station that sent the frame".into());
    push(
        12,
        2,
        "ethernet type",
        format!("0x{ethertype:04x}"),
        "ether_type$ADDRESS_RESOLUTION: an ARP packet follows".into(),
    );
    push(
        14,
        2,
        "ar$hrd",
        hrd.to_string(),
        match hrd {
            1 => "hardware space: Ethernet (ares_hrd$Ethernet)".into(),
            6 => "hardware space: IEEE 802".into(),
            n => format!("hardware space number {n}"),
        },
    );
    push(
        16,
        2,
        "ar$pro",
        format!("0x{pro:04x}"),
        match pro {
            0x0800 => "protocol space: IPv4 (its Ethernet type)".into(),
            n => format!("protocol space 0x{n:04x} (an Ethernet type)"),
        },
    );
    push(18, 1, "ar$hln", hln.to_string(), "bytes in each hardware address below (ar$sha, ar$tha)".into());
    push(19, 1, "ar$pln", pln.to_string(), "bytes in each protocol address below (ar$spa, ar$tpa)".into());
    push(
        20,
        2,
        "ar$op",
        op.to_string(),
        match op {
            1 => "opcode: REQUEST (ares_op$REQUEST): who has ar$tpa?".into(),
            2 => "opcode: REPLY (ares_op$REPLY): ar$sha has ar$spa".into(),
            n => format!("opcode {n} (RFC 826 defines 1 and 2)"),
        },
    );
    let sha = 22;
    let spa = sha + hln;
    let tha = spa + pln;
    let tpa = tha + hln;
    push(sha, hln, "ar$sha", hw_addr(&frame[sha..spa]), "sender hardware address (width ar$hln)".into());
    push(spa, pln, "ar$spa", proto_addr(pro, &frame[spa..tha]), "sender protocol address (width ar$pln)".into());
    let tha_bytes = &frame[tha..tpa];
    push(
        tha,
        hln,
        "ar$tha",
        hw_addr(tha_bytes),
        if op == 1 && tha_bytes.iter().all(|&b| b == 0) {
            "target hardware address (width ar$hln): unknown, what the request asks for".into()
        } else {
            "target hardware address (width ar$hln)".into()
        },
    );
    push(tpa, pln, "ar$tpa", proto_addr(pro, &frame[tpa..need]), "target protocol address (width ar$pln)".into());
    if frame.len() > need {
        push(need, frame.len() - need, "padding", hex(&frame[need..]), "to Ethernet's 60-byte minimum frame".into());
    }
    Ok(f)
}

/// The fields as a table: offset, width, name, value, meaning; fields
/// whose name is in `changed` are marked with `*`.
pub fn table(fields: &[Field], changed: &[&str]) -> String {
    let mut s = String::from("  offset width field                value              meaning\n");
    for f in fields {
        let mark = if changed.contains(&f.name) { "*" } else { " " };
        let _ = writeln!(s, "{mark} {:>6} {:>5} {:<20} {:<18} {}", f.offset, f.width, f.name, f.value, f.meaning);
    }
    s
}

/// The value of field `name`.
pub fn value<'a>(fields: &'a [Field], name: &str) -> Option<&'a str> {
    fields.iter().find(|f| f.name == name).map(|f| f.value.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request: 10.9.1.1 (aa:..:01) asks who has 10.9.1.2, padded to 60 bytes.
    const REQUEST: &str = "ffffffffffff aa0000000001 0806 0001 0800 06 04 0001 \
        aa0000000001 0a090101 000000000000 0a090102 000000000000000000000000000000000000";

    #[test]
    fn a_request_decodes_field_by_field_in_rfc_order() {
        let f = decode(&parse_hex(REQUEST).unwrap()).unwrap();
        let names: Vec<&str> = f.iter().map(|x| x.name).collect();
        assert_eq!(
            names,
            [
                "ethernet destination",
                "ethernet source",
                "ethernet type",
                "ar$hrd",
                "ar$pro",
                "ar$hln",
                "ar$pln",
                "ar$op",
                "ar$sha",
                "ar$spa",
                "ar$tha",
                "ar$tpa",
                "padding"
            ]
        );
        let at = |n: &str| f.iter().find(|x| x.name == n).unwrap();
        assert_eq!((at("ar$sha").offset, at("ar$sha").width), (22, 6));
        assert_eq!((at("ar$tpa").offset, at("ar$tpa").width, at("ar$tpa").value.as_str()), (38, 4, "10.9.1.2"));
        assert_eq!(at("ar$spa").value, "10.9.1.1");
        assert!(at("ar$op").meaning.contains("REQUEST"));
        assert!(at("ar$tha").meaning.contains("unknown"));
        assert!(at("ethernet destination").meaning.contains("broadcast"));
        assert_eq!(at("padding").width, 18);
        let t = table(&f, &["ar$op"]);
        assert!(t.lines().any(|l| l.starts_with("*     20     2 ar$op")), "{t}");
    }

    #[test]
    fn widths_come_from_hln_and_pln() {
        // A made-up space: 2-byte hardware, 3-byte protocol addresses.
        let frame = parse_hex("ffffffffffff 010203040506 0806 0063 1234 02 03 0001 aaaa 010203 0000 040506").unwrap();
        let f = decode(&frame).unwrap();
        assert_eq!(value(&f, "ar$tpa"), Some("040506"));
        let tpa = f.iter().find(|x| x.name == "ar$tpa").unwrap();
        assert_eq!((tpa.offset, tpa.width), (22 + 2 + 3 + 2, 3));
    }

    #[test]
    fn bad_frames_are_refused_with_a_reason() {
        assert!(matches!(parse_hex("zz"), Err(DecodeError::NotHex(_))));
        assert!(matches!(decode(&[0; 10]), Err(DecodeError::Short(10, 22))));
        let mut ip = parse_hex(REQUEST).unwrap();
        ip[12..14].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(decode(&ip), Err(DecodeError::NotArp(0x0800)));
        assert!(matches!(decode(&parse_hex(REQUEST).unwrap()[..30]), Err(DecodeError::Short(30, 42))));
    }
}
