//! `record --stack`: the kernel stacks the programs stored in the `STACKS`
//! map (each distinct stack once; events carry its id), read after the
//! programs are detached and written as the `stacks` table, symbolised
//! through kallsyms here so analysis needs nothing from this box. Written
//! at stop: a recording killed with SIGKILL keeps the ids but has no
//! `stacks` table.

use aya::maps::{MapData, StackTraceMap};
use nft_schema::raw::names;

use super::kallsyms::Kallsyms;
use crate::drain::DrainError;
use crate::loader::LoadedObject;

/// One frame of one stack, as the `stacks` table holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackRow {
    pub stack_id: u32,
    /// 0 = innermost (where the probe ran).
    pub frame: u16,
    pub address: u64,
    pub symbol: Option<String>,
}

/// The `STACKS` map, taken out of the object so it stays readable after
/// the programs are detached.
pub struct StackMap(StackTraceMap<MapData>);

impl StackMap {
    pub fn take(obj: &mut LoadedObject) -> Result<Self, DrainError> {
        let map = obj
            .ebpf
            .take_map(names::MAP_STACKS)
            .ok_or(DrainError::NoMap(names::MAP_STACKS))?;
        StackTraceMap::try_from(map)
            .map(Self)
            .map_err(|source| DrainError::Map {
                name: names::MAP_STACKS,
                source,
            })
    }

    /// Every stored stack, frame by frame, in id order.
    pub fn rows(&self, kallsyms: Option<&Kallsyms>) -> Vec<StackRow> {
        let mut stacks: Vec<(u32, Vec<u64>)> = self
            .0
            .iter()
            .filter_map(Result::ok)
            .map(|(id, trace)| (id, trace.frames().iter().map(|f| f.ip).collect()))
            .collect();
        stacks.sort_unstable_by_key(|s| s.0);
        stacks
            .into_iter()
            .flat_map(|(stack_id, ips)| {
                ips.into_iter()
                    .enumerate()
                    .map(move |(frame, address)| StackRow {
                        stack_id,
                        frame: frame as u16,
                        address,
                        symbol: kallsyms.and_then(|k| k.resolve_near(address)),
                    })
            })
            .collect()
    }
}
