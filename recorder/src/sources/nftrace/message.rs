//! Parses NFT_MSG_TRACE netlink messages (include/uapi/linux/netfilter/
//! nf_tables.h, `enum nft_trace_attributes`) into [`NftraceEvent`]s,
//! including the L3/L4 header bytes the kernel attaches, so the analyzer can
//! tie them to skb events by tuple and IP id.

/// One trace message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NftraceEvent {
    pub trace_id: u32,
    /// NFT_TRACETYPE_*: 1 policy, 2 return, 3 rule.
    pub kind: u32,
    /// NFPROTO_* of the table (nfgenmsg family).
    pub family: u8,
    pub table: String,
    pub chain: String,
    pub rule_handle: Option<u64>,
    /// NF_* / NFT_* verdict code.
    pub verdict: Option<i32>,
    pub target: Option<String>,
    pub policy: Option<u32>,
    pub iif: Option<u32>,
    pub oif: Option<u32>,
    pub mark: Option<u32>,
    pub headers: Headers,
    /// The network and transport header bytes the kernel attached, one
    /// after the other: what `--filter` matches (from the IP header).
    pub packet: Vec<u8>,
}

/// What the network and transport header bytes say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers {
    pub ip_version: u8,
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub l4_proto: u8,
    pub ip_id: u16,
    pub sport: u16,
    pub dport: u16,
    pub tcp_flags: u8,
    pub icmp_type: u8,
    pub icmp_code: u8,
    pub has_l4: bool,
}

const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;
const NLA_TYPE_MASK: u16 = 0x3fff;

// enum nft_trace_attributes
const NFTA_TRACE_TABLE: u16 = 1;
const NFTA_TRACE_CHAIN: u16 = 2;
const NFTA_TRACE_RULE_HANDLE: u16 = 3;
const NFTA_TRACE_TYPE: u16 = 4;
const NFTA_TRACE_VERDICT: u16 = 5;
const NFTA_TRACE_ID: u16 = 6;
const NFTA_TRACE_NETWORK_HEADER: u16 = 8;
const NFTA_TRACE_TRANSPORT_HEADER: u16 = 9;
const NFTA_TRACE_IIF: u16 = 10;
const NFTA_TRACE_OIF: u16 = 12;
const NFTA_TRACE_MARK: u16 = 14;
const NFTA_TRACE_NFPROTO: u16 = 15;
const NFTA_TRACE_POLICY: u16 = 16;
// enum nft_verdict_attributes
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;

/// Netlink attributes: (type, payload), 4-byte aligned.
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let ty = u16::from_ne_bytes([b[2], b[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > b.len() {
            return None;
        }
        let payload = &b[4..len];
        b = &b[((len + 3) & !3).min(b.len())..];
        Some((ty, payload))
    })
}

fn be32(p: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(p.get(..4)?.try_into().ok()?))
}

fn be64(p: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(p.get(..8)?.try_into().ok()?))
}

fn string(p: &[u8]) -> String {
    let end = p.iter().position(|b| *b == 0).unwrap_or(p.len());
    String::from_utf8_lossy(&p[..end]).into_owned()
}

/// Every NFT_MSG_TRACE in one received datagram; other messages are
/// skipped.
pub fn parse_datagram(buf: &[u8]) -> Vec<NftraceEvent> {
    let trace_type = ((libc::NFNL_SUBSYS_NFTABLES as u16) << 8) | libc::NFT_MSG_TRACE as u16;
    let mut out = Vec::new();
    let mut rest = buf;
    while rest.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if len < NLMSG_HDRLEN || len > rest.len() {
            break;
        }
        let ty = u16::from_ne_bytes([rest[4], rest[5]]);
        let msg = &rest[..len];
        if ty == trace_type && msg.len() >= NLMSG_HDRLEN + NFGENMSG_LEN {
            out.push(parse_trace(
                msg[NLMSG_HDRLEN],
                &msg[NLMSG_HDRLEN + NFGENMSG_LEN..],
            ));
        }
        rest = &rest[((len + 3) & !3).min(rest.len())..];
    }
    out
}

fn parse_trace(family: u8, body: &[u8]) -> NftraceEvent {
    let mut e = NftraceEvent {
        family,
        ..Default::default()
    };
    let mut network = None;
    let mut transport = None;
    for (ty, p) in attrs(body) {
        match ty {
            NFTA_TRACE_TABLE => e.table = string(p),
            NFTA_TRACE_CHAIN => e.chain = string(p),
            NFTA_TRACE_RULE_HANDLE => e.rule_handle = be64(p),
            NFTA_TRACE_TYPE => e.kind = be32(p).unwrap_or(0),
            NFTA_TRACE_ID => e.trace_id = be32(p).unwrap_or(0),
            NFTA_TRACE_IIF => e.iif = be32(p),
            NFTA_TRACE_OIF => e.oif = be32(p),
            NFTA_TRACE_MARK => e.mark = be32(p),
            NFTA_TRACE_POLICY => e.policy = be32(p),
            NFTA_TRACE_NFPROTO => {}
            NFTA_TRACE_NETWORK_HEADER => network = Some(p),
            NFTA_TRACE_TRANSPORT_HEADER => transport = Some(p),
            NFTA_TRACE_VERDICT => {
                for (vty, vp) in attrs(p) {
                    match vty {
                        NFTA_VERDICT_CODE => e.verdict = be32(vp).map(|v| v as i32),
                        NFTA_VERDICT_CHAIN => e.target = Some(string(vp)),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(net) = network {
        e.headers = parse_headers(net, transport);
        e.packet = [net, transport.unwrap_or_default()].concat();
    }
    e
}

fn parse_headers(net: &[u8], transport: Option<&[u8]>) -> Headers {
    let mut h = Headers::default();
    let Some(first) = net.first() else { return h };
    match first >> 4 {
        4 if net.len() >= 20 => {
            h.ip_version = 4;
            h.l4_proto = net[9];
            h.ip_id = u16::from_be_bytes([net[4], net[5]]);
            h.saddr = std::net::Ipv4Addr::new(net[12], net[13], net[14], net[15])
                .to_ipv6_mapped()
                .octets();
            h.daddr = std::net::Ipv4Addr::new(net[16], net[17], net[18], net[19])
                .to_ipv6_mapped()
                .octets();
        }
        6 if net.len() >= 40 => {
            h.ip_version = 6;
            h.l4_proto = net[6];
            h.saddr.copy_from_slice(&net[8..24]);
            h.daddr.copy_from_slice(&net[24..40]);
        }
        _ => return h,
    }
    if let Some(t) = transport {
        match h.l4_proto {
            6 | 17 if t.len() >= 4 => {
                h.has_l4 = true;
                h.sport = u16::from_be_bytes([t[0], t[1]]);
                h.dport = u16::from_be_bytes([t[2], t[3]]);
                if h.l4_proto == 6 && t.len() >= 14 {
                    h.tcp_flags = t[13];
                }
            }
            1 | 58 if t.len() >= 2 => {
                h.has_l4 = true;
                h.icmp_type = t[0];
                h.icmp_code = t[1];
            }
            _ => {}
        }
    }
    h
}

/// NFT_TRACETYPE_* as written in the `nftrace.type` column.
pub fn kind_name(kind: u32) -> &'static str {
    match kind {
        1 => "policy",
        2 => "return",
        3 => "rule",
        _ => "unspec",
    }
}

/// A verdict code as `nft` prints it.
pub fn verdict_name(code: i32) -> String {
    match code {
        0 => "drop".into(),
        1 => "accept".into(),
        2 => "stolen".into(),
        4 => "repeat".into(),
        -1 => "continue".into(),
        -2 => "break".into(),
        -3 => "jump".into(),
        -4 => "goto".into(),
        -5 => "return".into(),
        c if c & 0xff == 3 => "queue".into(),
        c => format!("verdict#{c}"),
    }
}

/// NFPROTO_* as `nft` names families.
pub fn family_name(family: u8) -> String {
    match family {
        1 => "inet".into(),
        2 => "ip".into(),
        3 => "arp".into(),
        5 => "netdev".into(),
        7 => "bridge".into(),
        10 => "ip6".into(),
        f => format!("family#{f}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(ty: u16, payload: &[u8]) -> Vec<u8> {
        let len = 4 + payload.len();
        let mut v = Vec::new();
        v.extend_from_slice(&(len as u16).to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(payload);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    /// A message as the kernel builds it (nf_tables_trace.c): a TCP SYN
    /// from 10.0.0.1:40000 to 10.0.0.2:9 dropped by rule handle 4 of
    /// inet/filter/input.
    fn message() -> Vec<u8> {
        let mut ip = vec![0x45, 0, 0, 60, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0];
        ip.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        let mut tcp = vec![0x9c, 0x40, 0, 9, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02];
        tcp.extend_from_slice(&[0; 6]);
        let mut verdict = attr(NFTA_VERDICT_CODE, &0u32.to_be_bytes());
        verdict.extend(attr(NFTA_VERDICT_CHAIN, b"unused\0"));
        let mut body = vec![1, 0, 0, 0]; // nfgenmsg: NFPROTO_INET
        body.extend(attr(NFTA_TRACE_ID, &0xdeadbeefu32.to_be_bytes()));
        body.extend(attr(NFTA_TRACE_TABLE, b"filter\0"));
        body.extend(attr(NFTA_TRACE_CHAIN, b"input\0"));
        body.extend(attr(NFTA_TRACE_TYPE, &3u32.to_be_bytes()));
        body.extend(attr(NFTA_TRACE_RULE_HANDLE, &4u64.to_be_bytes()));
        body.extend(attr(NFTA_TRACE_VERDICT | 0x8000, &verdict));
        body.extend(attr(NFTA_TRACE_IIF, &7u32.to_be_bytes()));
        body.extend(attr(NFTA_TRACE_NETWORK_HEADER, &ip));
        body.extend(attr(NFTA_TRACE_TRANSPORT_HEADER, &tcp));
        let ty = ((libc::NFNL_SUBSYS_NFTABLES as u16) << 8) | libc::NFT_MSG_TRACE as u16;
        let mut msg = Vec::new();
        msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        msg.extend_from_slice(&ty.to_ne_bytes());
        msg.extend_from_slice(&[0; 10]);
        msg.extend(body);
        msg
    }

    #[test]
    fn parses_a_rule_verdict_with_headers() {
        let mut dgram = message();
        dgram.extend(message());
        let events = parse_datagram(&dgram);
        assert_eq!(events.len(), 2);
        let e = &events[0];
        assert_eq!(e.trace_id, 0xdeadbeef);
        assert_eq!((e.table.as_str(), e.chain.as_str()), ("filter", "input"));
        assert_eq!(kind_name(e.kind), "rule");
        assert_eq!(e.rule_handle, Some(4));
        assert_eq!(e.verdict.map(verdict_name).as_deref(), Some("drop"));
        assert_eq!(e.iif, Some(7));
        assert_eq!(family_name(e.family), "inet");
        let h = &e.headers;
        assert_eq!((h.ip_version, h.l4_proto, h.ip_id), (4, 6, 0x1234));
        assert_eq!((h.sport, h.dport, h.tcp_flags), (40000, 9, 0x02));
        assert_eq!(&h.daddr[12..], &[10, 0, 0, 2]);
    }

    #[test]
    fn truncated_input_never_panics() {
        let msg = message();
        for cut in 0..msg.len() {
            let _ = parse_datagram(&msg[..cut]);
        }
    }
}
