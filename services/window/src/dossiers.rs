//! The dossier table of a partition: one packed 36-byte slot per live dossier, in
//! fixed-size chunks (no reallocation doubling), found through a hash index of 4-byte
//! slot numbers. About 44 bytes a dossier in all; see the state benchmark.
//!
//! A slot keeps what [`Entry`] holds, narrowed without loss:
//! - the key's 96 bits ([`crate::state::dossier_key`] zeroes the rest);
//! - the content hash's 32 bits (it only tells duplicates apart);
//! - procedure, locality and agency as one id of the triple ([`crate::state::Names`]);
//! - the received day in 24 signed bits with status, channel and timeliness in 8;
//! - finished and due as 16-bit offsets from the received day;
//! - the closed day not at all: it follows from the others ([`Days::closed_day`]).
//!
//! An entry that does not fit (an offset beyond ±89 years) keeps its days in a side
//! table, so packing is exact for every entry.

use crate::fact::{Days, NO_DAY};
use crate::state::{Entry, Key};
use hashbrown::HashTable;
use std::collections::HashMap;

/// Slots per chunk.
const CHUNK: usize = 1 << 14;

/// Received day value meaning "not a received dossier" (24-bit minimum).
const NO_RECEIVED: i32 = -(1 << 23);
/// Day offset meaning "no day".
const NO_OFFSET: i16 = i16::MIN;
/// Flag: the days are in the side table.
const WIDE: u8 = 0x80;

/// One dossier, packed.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
struct Slot {
    key: [u32; 3],
    updated: [u32; 2],
    content: u32,
    names: u32,
    /// Received day (high 24 bits, signed) and flags (low 8: status 0-3, channel 4-5,
    /// on time 6, wide 7).
    received: u32,
    finished: i16,
    due: i16,
}

const _: () = assert!(std::mem::size_of::<Slot>() == 36);

fn pack_key(k: &Key) -> [u32; 3] {
    [(k[0] >> 32) as u32, k[0] as u32, (k[1] >> 32) as u32]
}

fn unpack_key(k: &[u32; 3]) -> Key {
    [((k[0] as u64) << 32) | k[1] as u64, (k[2] as u64) << 32]
}

fn offset(day: i32, received: i32) -> Option<i16> {
    if day == NO_DAY {
        return Some(NO_OFFSET);
    }
    let d = day as i64 - received as i64;
    (d > NO_OFFSET as i64 && d <= i16::MAX as i64).then_some(d as i16)
}

impl Slot {
    /// Packs an entry whose triple id is `names`; the days go to `wide` when they do not fit.
    fn pack(key: &Key, e: &Entry, names: u32) -> (Slot, Option<Days>) {
        let flags =
            (e.status & 0x0f) | ((e.days.channel & 0x03) << 4) | ((e.days.on_time as u8) << 6);
        let us = e.updated_us as u64;
        let mut slot = Slot {
            key: pack_key(key),
            updated: [(us >> 32) as u32, us as u32],
            content: e.content as u32,
            names,
            received: ((NO_RECEIVED << 8) as u32) | flags as u32,
            finished: NO_OFFSET,
            due: NO_OFFSET,
        };
        let fits = |r: i32| {
            let f = offset(e.days.finished, r)?;
            let d = offset(e.days.due, r)?;
            Some((f, d))
        };
        let narrow = if e.days.received == NO_DAY {
            (e.days.finished == NO_DAY && e.days.due == NO_DAY).then_some((NO_OFFSET, NO_OFFSET))
        } else if e.days.received > NO_RECEIVED && e.days.received < -NO_RECEIVED {
            fits(e.days.received)
        } else {
            None
        };
        let closed_derived =
            Days::closed_day(e.days.received, e.days.finished, e.status, e.updated_us);
        match narrow {
            Some((f, d)) if closed_derived == e.days.closed => {
                if e.days.received != NO_DAY {
                    slot.received = ((e.days.received << 8) as u32) | flags as u32;
                }
                slot.finished = f;
                slot.due = d;
                (slot, None)
            }
            _ => {
                slot.received |= WIDE as u32;
                (slot, Some(e.days))
            }
        }
    }

    fn flags(&self) -> u8 {
        self.received as u8
    }

    fn key(&self) -> Key {
        unpack_key(&self.key)
    }

    fn hash(&self) -> u64 {
        ((self.key[0] as u64) << 32) | self.key[1] as u64
    }

    fn updated_us(&self) -> i64 {
        (((self.updated[0] as u64) << 32) | self.updated[1] as u64) as i64
    }

    /// The entry, with its triple id; `wide` holds the days of wide slots.
    fn unpack(&self, wide: &HashMap<[u32; 3], Days>) -> (Entry, u32) {
        let flags = self.flags();
        let status = flags & 0x0f;
        let updated_us = self.updated_us();
        let days = if flags & WIDE != 0 {
            *wide.get(&self.key).expect("wide slots have their days")
        } else {
            let received = (self.received as i32) >> 8;
            let day = |o: i16| {
                if o == NO_OFFSET {
                    NO_DAY
                } else {
                    received + o as i32
                }
            };
            let (received, finished, due) = if received == NO_RECEIVED {
                (NO_DAY, NO_DAY, NO_DAY)
            } else {
                (received, day(self.finished), day(self.due))
            };
            Days {
                received,
                finished,
                closed: Days::closed_day(received, finished, status, updated_us),
                due,
                channel: (flags >> 4) & 0x03,
                on_time: flags & 0x40 != 0,
            }
        };
        let entry = Entry {
            updated_us,
            content: self.content as u64,
            procedure: 0,
            locality: 0,
            agency: 0,
            days,
            status,
        };
        (entry, self.names)
    }
}

/// The live dossiers of a partition.
#[derive(Debug, Clone, Default)]
pub struct DossierTable {
    chunks: Vec<Vec<Slot>>,
    len: usize,
    index: HashTable<u32>,
    wide: HashMap<[u32; 3], Days>,
}

impl DossierTable {
    fn slot(&self, i: u32) -> &Slot {
        &self.chunks[i as usize / CHUNK][i as usize % CHUNK]
    }

    fn slot_mut(&mut self, i: u32) -> &mut Slot {
        &mut self.chunks[i as usize / CHUNK][i as usize % CHUNK]
    }

    fn find(&self, key: &Key) -> Option<u32> {
        let k = pack_key(key);
        let h = ((k[0] as u64) << 32) | k[1] as u64;
        self.index.find(h, |&i| self.slot(i).key == k).copied()
    }

    /// Live dossiers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entry of `key` and its triple id.
    pub fn get(&self, key: &Key) -> Option<(Entry, u32)> {
        self.find(key).map(|i| self.slot(i).unpack(&self.wide))
    }

    /// Sets the entry of `key` (triple id `names`).
    pub fn insert(&mut self, key: &Key, e: &Entry, names: u32) {
        let (slot, wide) = Slot::pack(key, e, names);
        match wide {
            Some(d) => {
                self.wide.insert(slot.key, d);
            }
            None => {
                self.wide.remove(&slot.key);
            }
        }
        if let Some(i) = self.find(key) {
            *self.slot_mut(i) = slot;
            return;
        }
        let i = self.len;
        if i / CHUNK == self.chunks.len() {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        self.chunks[i / CHUNK].push(slot);
        self.len += 1;
        let hash = slot.hash();
        let chunks = &self.chunks;
        self.index.insert_unique(hash, i as u32, |&j| {
            chunks[j as usize / CHUNK][j as usize % CHUNK].hash()
        });
    }

    /// Removes `key`; the last slot moves into its place.
    pub fn remove(&mut self, key: &Key) -> bool {
        let k = pack_key(key);
        let h = ((k[0] as u64) << 32) | k[1] as u64;
        let chunks = &self.chunks;
        let Ok(found) = self.index.find_entry(h, |&i| {
            chunks[i as usize / CHUNK][i as usize % CHUNK].key == k
        }) else {
            return false;
        };
        let (i, _) = found.remove();
        self.wide.remove(&k);
        let last = (self.len - 1) as u32;
        let moved = *self.slot(last);
        if i != last {
            let slot = self
                .index
                .find_mut(moved.hash(), |&j| j == last)
                .expect("every slot is indexed");
            *slot = i;
            *self.slot_mut(i) = moved;
        }
        let c = self.chunks.last_mut().expect("not empty");
        c.pop();
        if c.is_empty() {
            self.chunks.pop();
        }
        self.len -= 1;
        true
    }

    /// Every key with its entry and triple id, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (Key, Entry, u32)> + '_ {
        self.chunks.iter().flatten().map(|s| {
            let (e, n) = s.unpack(&self.wide);
            (s.key(), e, n)
        })
    }

    /// Reserves room for `n` more dossiers in the index.
    pub fn reserve(&mut self, n: usize) {
        let chunks = &self.chunks;
        self.index.reserve(n, |&j| {
            chunks[j as usize / CHUNK][j as usize % CHUNK].hash()
        });
    }

    /// Bytes of heap held (capacities).
    pub fn heap_bytes(&self) -> usize {
        let slots = self.chunks.iter().map(Vec::capacity).sum::<usize>() * size_of::<Slot>();
        let index = self.index.allocation_size();
        let wide = self.wide.capacity() * (size_of::<([u32; 3], Days)>() + 1);
        slots + index + self.chunks.capacity() * size_of::<Vec<Slot>>() + wide
    }
}
