//! Packet filter flags (`--src-ip`, `--port`, ...) -> the `PacketFilter` the
//! eBPF programs apply. Everything is validated here, before anything is
//! attached.

use std::collections::BTreeMap;
use std::net::IpAddr;

use nft_schema::raw::{filter_flags as ff, PacketFilter};

/// The filter flags as typed by the user.
#[derive(Clone, Debug, Default)]
pub struct FilterArgs {
    pub src_ip: Option<String>,
    pub dst_ip: Option<String>,
    pub host: Option<String>,
    pub src_port: Option<String>,
    pub dst_port: Option<String>,
    pub port: Option<String>,
    pub proto: Option<String>,
    pub mark: Option<String>,
    /// `--filter`: a pcap-filter expression (compiled by `crate::pcap`).
    pub pcap: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("--{flag} {value:?}: {why}")]
pub struct FilterError {
    pub flag: &'static str,
    pub value: String,
    pub why: String,
}

fn err(flag: &'static str, value: &str, why: impl Into<String>) -> FilterError {
    FilterError {
        flag,
        value: value.to_string(),
        why: why.into(),
    }
}

/// `ADDR` or `ADDR/LEN`, IPv4 or IPv6 -> (IPv6 or IPv4-mapped bytes, prefix
/// length in IPv6 bits).
pub fn parse_prefix(flag: &'static str, text: &str) -> Result<([u8; 16], u8), FilterError> {
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let ip: IpAddr = addr.parse().map_err(|_| {
        err(
            flag,
            text,
            "not an IPv4 or IPv6 address (or ADDR/LEN prefix)",
        )
    })?;
    let (bytes, max, base) = match ip {
        IpAddr::V4(v4) => (v4.to_ipv6_mapped().octets(), 32u8, 96u8),
        IpAddr::V6(v6) => (v6.octets(), 128u8, 0u8),
    };
    let len = match len {
        None => max,
        Some(l) => l
            .parse::<u8>()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| err(flag, text, format!("prefix length must be 0..={max}")))?,
    };
    Ok((bytes, base + len))
}

fn parse_port(flag: &'static str, text: &str) -> Result<u16, FilterError> {
    text.parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| err(flag, text, "a port is a number from 1 to 65535"))
}

fn parse_proto(text: &str) -> Result<u8, FilterError> {
    match text.to_ascii_lowercase().as_str() {
        "tcp" => Ok(6),
        "udp" => Ok(17),
        "icmp" => Ok(1),
        "icmpv6" | "icmp6" => Ok(58),
        _ => Err(err("proto", text, "expected tcp, udp, icmp or icmpv6")),
    }
}

fn parse_mark(text: &str) -> Result<u32, FilterError> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => text.parse::<u32>(),
    };
    parsed.map_err(|_| err("mark", text, "expected a 32-bit number (decimal or 0x hex)"))
}

/// Parses every flag; returns the filter and the flags as given (for the
/// manifest).
pub fn parse_filter(
    args: &FilterArgs,
) -> Result<(PacketFilter, BTreeMap<String, String>), FilterError> {
    let mut f = PacketFilter::default();
    let mut given = BTreeMap::new();
    let mut note = |flag: &str, v: &str| {
        given.insert(flag.to_string(), v.to_string());
    };
    if let Some(v) = &args.src_ip {
        (f.src_ip, f.src_prefix) = parse_prefix("src-ip", v)?;
        f.flags |= ff::SRC_IP;
        note("src-ip", v);
    }
    if let Some(v) = &args.dst_ip {
        (f.dst_ip, f.dst_prefix) = parse_prefix("dst-ip", v)?;
        f.flags |= ff::DST_IP;
        note("dst-ip", v);
    }
    if let Some(v) = &args.host {
        (f.host, f.host_prefix) = parse_prefix("host", v)?;
        f.flags |= ff::HOST;
        note("host", v);
    }
    if let Some(v) = &args.src_port {
        f.src_port = parse_port("src-port", v)?;
        f.flags |= ff::SRC_PORT;
        note("src-port", v);
    }
    if let Some(v) = &args.dst_port {
        f.dst_port = parse_port("dst-port", v)?;
        f.flags |= ff::DST_PORT;
        note("dst-port", v);
    }
    if let Some(v) = &args.port {
        f.port = parse_port("port", v)?;
        f.flags |= ff::PORT;
        note("port", v);
    }
    if let Some(v) = &args.proto {
        f.proto = parse_proto(v)?;
        f.flags |= ff::PROTO;
        note("proto", v);
    }
    if let Some(v) = &args.mark {
        f.mark = parse_mark(v)?;
        f.flags |= ff::MARK;
        note("mark", v);
    }
    if let Some(v) = &args.pcap {
        note("filter", v);
    }
    let ports = f.flags & (ff::SRC_PORT | ff::DST_PORT | ff::PORT) != 0;
    if ports && f.flags & ff::PROTO != 0 && !matches!(f.proto, 6 | 17) {
        return Err(err(
            "proto",
            args.proto.as_deref().unwrap_or_default(),
            "port filters need --proto tcp or udp",
        ));
    }
    Ok((f, given))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_prefixes() {
        let (a, l) = parse_prefix("host", "10.1.2.3").unwrap();
        assert_eq!(&a[10..], &[0xff, 0xff, 10, 1, 2, 3]);
        assert_eq!(l, 128);
        assert_eq!(parse_prefix("host", "10.0.0.0/8").unwrap().1, 104);
        assert_eq!(parse_prefix("host", "fd00::/16").unwrap().1, 16);
        assert_eq!(
            parse_prefix("src-ip", "10.0.0.0/33")
                .unwrap_err()
                .to_string(),
            "--src-ip \"10.0.0.0/33\": prefix length must be 0..=32"
        );
        assert!(parse_prefix("src-ip", "10.0.0.256").is_err());
    }

    #[test]
    fn bad_values_are_named() {
        let bad = |args: FilterArgs| parse_filter(&args).unwrap_err().to_string();
        assert_eq!(
            bad(FilterArgs {
                port: Some("70000".into()),
                ..Default::default()
            }),
            "--port \"70000\": a port is a number from 1 to 65535"
        );
        assert!(bad(FilterArgs {
            proto: Some("sctp".into()),
            ..Default::default()
        })
        .contains("expected tcp, udp, icmp or icmpv6"));
        assert!(bad(FilterArgs {
            proto: Some("icmp".into()),
            port: Some("80".into()),
            ..Default::default()
        })
        .contains("port filters need"));
        assert!(bad(FilterArgs {
            mark: Some("0xzz".into()),
            ..Default::default()
        })
        .contains("--mark"));
    }

    #[test]
    fn flags_are_set_and_recorded() {
        let (f, given) = parse_filter(&FilterArgs {
            host: Some("10.0.0.1".into()),
            proto: Some("tcp".into()),
            dst_port: Some("443".into()),
            mark: Some("0x10".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(f.flags, ff::HOST | ff::PROTO | ff::DST_PORT | ff::MARK);
        assert_eq!((f.proto, f.dst_port, f.mark), (6, 443, 16));
        assert_eq!(given.len(), 4);
        assert_eq!(parse_filter(&FilterArgs::default()).unwrap().0.flags, 0);
    }
}
