//! Reads events and loss counters out of a loaded object.

use aya::maps::{MapData, PerCpuArray, RingBuf};
use nft_schema::raw::{loss_index, names, EventKind, LossReason, NftPart, NftRecord, SkbEvent};

use crate::loader::LoadedObject;

#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    #[error("eBPF object has no map {0}")]
    NoMap(&'static str),
    #[error("map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("ring buffer record of {got} bytes, expected {expected}: eBPF object and recorder disagree on the event layout")]
    BadRecord { got: usize, expected: usize },
}

/// The consumer side of the `EVENTS` ring buffer.
pub struct EventReader {
    ring: RingBuf<MapData>,
}

impl EventReader {
    /// Takes the ring buffer out of `obj` (one reader per object).
    pub fn take(obj: &mut LoadedObject) -> Result<Self, DrainError> {
        let map = obj
            .ebpf
            .take_map(names::MAP_EVENTS)
            .ok_or(DrainError::NoMap(names::MAP_EVENTS))?;
        let ring = RingBuf::try_from(map).map_err(|source| DrainError::Map {
            name: names::MAP_EVENTS,
            source,
        })?;
        Ok(Self { ring })
    }

    /// Appends every event available now to `out`; returns how many.
    pub fn drain_into(&mut self, out: &mut Drained) -> Result<usize, DrainError> {
        let mut n = 0;
        while let Some(item) = self.ring.next() {
            let event = parse_event(&item)?;
            if event.kind == EventKind::Nft as u8 {
                out.nft.push((out.events.len() as u32, parse_nft(&item)?));
            }
            out.events.push(event);
            n += 1;
        }
        Ok(n)
    }

    /// The ring buffer's file descriptor, for polling.
    pub fn as_raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.ring.as_raw_fd()
    }
}

/// Decodes one ring buffer record. Records are copied out because the ring
/// buffer gives no alignment guarantee for our u64 fields.
pub fn parse_event(bytes: &[u8]) -> Result<SkbEvent, DrainError> {
    let expected = std::mem::size_of::<SkbEvent>();
    if bytes.len() < expected {
        return Err(DrainError::BadRecord {
            got: bytes.len(),
            expected,
        });
    }
    // SAFETY: length checked; SkbEvent is Pod (any bit pattern is valid).
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<SkbEvent>()) })
}

/// Decodes the nft part of an [`EventKind::Nft`] record.
pub fn parse_nft(bytes: &[u8]) -> Result<NftPart, DrainError> {
    let expected = std::mem::size_of::<NftRecord>();
    if bytes.len() < expected {
        return Err(DrainError::BadRecord {
            got: bytes.len(),
            expected,
        });
    }
    // SAFETY: length checked; NftRecord is Pod.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<NftRecord>()) }.nft)
}

/// Events drained from the ring buffer, in order; the nft hook's events
/// also have their [`NftPart`], by index into `events` (most events have
/// none, so it is kept apart instead of widening every event).
#[derive(Debug, Default, Clone)]
pub struct Drained {
    pub events: Vec<SkbEvent>,
    pub nft: Vec<(u32, NftPart)>,
}

impl Drained {
    pub fn with_capacity(n: usize) -> Self {
        Self {
            events: Vec::with_capacity(n),
            nft: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// One non-zero loss counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LossCount {
    pub cpu: u32,
    pub probe_id: u32,
    pub reason: LossReason,
    pub count: u64,
}

/// Name of a loss reason as written in the `losses` table.
pub fn loss_reason_name(reason: LossReason) -> &'static str {
    match reason {
        LossReason::RingbufFull => "ringbuf_full",
        LossReason::NoConfig => "no_config",
        LossReason::TrackFull => "tracking_full",
        LossReason::UnknownFunction => "unknown_function",
        LossReason::NftStackFull => "nft_chain_stack_full",
        LossReason::StackMissing => "stack_missing",
    }
}

/// The per-CPU `LOSSES` counters, taken out of the object so they can be
/// read after the programs are detached (the final count).
pub struct LossCounters {
    map: PerCpuArray<MapData, u64>,
}

impl LossCounters {
    pub fn take(obj: &mut LoadedObject) -> Result<Self, DrainError> {
        let map = obj
            .ebpf
            .take_map(names::MAP_LOSSES)
            .ok_or(DrainError::NoMap(names::MAP_LOSSES))?;
        let map = PerCpuArray::try_from(map).map_err(|source| DrainError::Map {
            name: names::MAP_LOSSES,
            source,
        })?;
        Ok(Self { map })
    }

    /// Every non-zero counter of `probes` (cumulative since load).
    pub fn read(&self, probes: &[u32]) -> Result<Vec<LossCount>, DrainError> {
        let mut out = Vec::new();
        for reason in LossReason::ALL {
            for &probe_id in probes {
                let index = loss_index(probe_id, reason);
                let per_cpu = self.map.get(&index, 0).map_err(|source| DrainError::Map {
                    name: names::MAP_LOSSES,
                    source,
                })?;
                for (cpu, count) in per_cpu.iter().enumerate() {
                    if *count != 0 {
                        out.push(LossCount {
                            cpu: cpu as u32,
                            probe_id,
                            reason,
                            count: *count,
                        });
                    }
                }
            }
        }
        Ok(out)
    }
}
