//! Latency histograms that hold every sample of a large recording in a few
//! hundred counters: log-linear buckets (16 per power of two, so a bucket is
//! at most 1/16 of its value wide), from which p50 and p99 are read with that
//! precision. A vector of every duration would be exact but costs 8 bytes a
//! trace per flow and per hop; HDR-style buckets are what latency tools use.

use std::collections::BTreeMap;

use serde::Serialize;

/// Sub-buckets per power of two (a power of two itself).
const SUB_BITS: u32 = 4;
const SUB: u64 = 1 << SUB_BITS;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    counts: BTreeMap<u16, u64>,
    samples: u64,
}

/// One bucket as the page draws it: `[low_ns, high_ns]` inclusive.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Bucket {
    pub low_ns: u64,
    pub high_ns: u64,
    pub count: u64,
}

/// What the page shows of a histogram.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    pub samples: u64,
    /// The bucket's middle: within 1/32 of the true nearest-rank value.
    pub p50_ns: Option<u64>,
    pub p99_ns: Option<u64>,
    pub buckets: Vec<Bucket>,
}

fn index(v: u64) -> u16 {
    if v < SUB {
        return v as u16;
    }
    let exp = 63 - v.leading_zeros(); // >= SUB_BITS
    let mantissa = v >> (exp - SUB_BITS); // SUB..2*SUB
    ((exp - SUB_BITS + 1) as u64 * SUB + mantissa - SUB) as u16
}

fn bounds(i: u16) -> (u64, u64) {
    let i = i as u64;
    if i < SUB {
        return (i, i);
    }
    let exp = i / SUB - 1 + SUB_BITS as u64;
    let mantissa = i % SUB + SUB;
    let shift = exp - SUB_BITS as u64;
    let low = mantissa << shift;
    (low, low + (1u64 << shift) - 1)
}

impl Histogram {
    pub fn add(&mut self, v: u64) {
        *self.counts.entry(index(v)).or_default() += 1;
        self.samples += 1;
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (i, c) in &other.counts {
            *self.counts.entry(*i).or_default() += c;
        }
        self.samples += other.samples;
    }

    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// The nearest-rank `q`-quantile's bucket middle.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.samples == 0 {
            return None;
        }
        let rank = ((q * self.samples as f64).ceil() as u64).clamp(1, self.samples);
        let mut seen = 0;
        for (i, c) in &self.counts {
            seen += c;
            if seen >= rank {
                let (low, high) = bounds(*i);
                return Some(low + (high - low) / 2);
            }
        }
        None
    }

    pub fn summary(&self) -> Summary {
        Summary {
            samples: self.samples,
            p50_ns: self.quantile(0.5),
            p99_ns: self.quantile(0.99),
            buckets: self
                .counts
                .iter()
                .map(|(i, c)| {
                    let (low_ns, high_ns) = bounds(*i);
                    Bucket {
                        low_ns,
                        high_ns,
                        count: *c,
                    }
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::profile::quantile;

    #[test]
    fn buckets_tile_the_line_and_hold_their_values() {
        let mut next = 0;
        for i in 0..(64 - SUB_BITS as u16) * SUB as u16 {
            let (low, high) = bounds(i);
            assert_eq!(low, next, "bucket {i} starts where the last ended");
            assert!(high >= low);
            assert_eq!(index(low), i);
            assert_eq!(index(high), i);
            next = high.wrapping_add(1);
            if next == 0 {
                break;
            }
        }
        assert_eq!(index(u64::MAX) as u64, (64 - SUB_BITS as u64 + 1) * SUB - 1);
    }

    #[test]
    fn quantiles_are_within_a_32nd_of_the_exact_ones() {
        // Durations spread over five decades, like a recording's.
        let mut values: Vec<u64> = (1..20_000u64)
            .map(|i| (i * i * 7919) % 9_000_000 + 1)
            .collect();
        let mut h = Histogram::default();
        values.iter().for_each(|v| h.add(*v));
        for q in [0.5, 0.99, 0.01, 1.0] {
            let exact = quantile(&mut values, q).unwrap() as f64;
            let approx = h.quantile(q).unwrap() as f64;
            assert!(
                (approx - exact).abs() <= exact / 32.0 + 1.0,
                "q {q}: {approx} vs {exact}"
            );
        }
        assert_eq!(
            h.summary().buckets.iter().map(|b| b.count).sum::<u64>(),
            19_999
        );
    }
}
