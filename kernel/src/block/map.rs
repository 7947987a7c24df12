//! The block layer's arithmetic, apart from any device (host-tested): how
//! each stacked driver maps a sector, transforms data or checks it.

/// Bytes per sector, and per bio (one sector each).
pub const SECTOR_SIZE: usize = 512;

/// dm-linear: `[start, start + len)` of the device below, seen from 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Linear {
    pub start: u64,
    pub len: u64,
}

impl Linear {
    /// The sector below, or None past the end.
    pub fn map(&self, sector: u64) -> Option<u64> {
        (sector < self.len).then(|| self.start + sector)
    }
}

/// A file's blocks on the device below, for the loop driver: file block
/// `i` lives at sector `blocks[i]`. Files are rarely contiguous; this one
/// is laid out by a fixed permutation so the mapping is not the identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileMap {
    pub blocks: alloc::vec::Vec<u64>,
}

impl FileMap {
    /// A file of `len` blocks over sectors `0..len` of the device below,
    /// interleaved: even blocks from the front, odd ones from the back.
    pub fn interleaved(len: u64) -> FileMap {
        let blocks = (0..len).map(|i| if i % 2 == 0 { i / 2 } else { len - 1 - i / 2 }).collect();
        FileMap { blocks }
    }

    pub fn lookup(&self, block: u64) -> Option<u64> {
        self.blocks.get(block as usize).copied()
    }
}

/// The XOR "cipher" of the crypt layer: a keystream from the key and the
/// sector (like dm-crypt's per-sector IV), expanded into a schedule first.
pub const SCHEDULE_WORDS: usize = 60;

/// Expand `key` and `sector` into the per-sector schedule (dm-crypt keeps
/// an AES key schedule of 60 words; this one is xorshift, not a cipher).
pub fn schedule(key: u64, sector: u64) -> [u32; SCHEDULE_WORDS] {
    let mut x = key ^ sector.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x2545_F491_4F6C_DD1D;
    core::array::from_fn(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as u32
    })
}

/// XOR `data` with the keystream of the schedule (its own inverse).
pub fn xor_keystream(schedule: &[u32; SCHEDULE_WORDS], data: &mut [u8]) {
    for (i, b) in data.iter_mut().enumerate() {
        let w = schedule[(i / 4) % SCHEDULE_WORDS].rotate_left((i / (4 * SCHEDULE_WORDS)) as u32);
        *b ^= (w >> (8 * (i % 4))) as u8;
    }
}

/// CRC-32 (IEEE, bitwise): the integrity layer's per-sector checksum.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// The data `blk-io` writes to `sector` in round `seed`: different for
/// every sector and round, so a misdirected or stale block shows.
pub fn pattern(sector: u64, seed: u64, out: &mut [u8]) {
    let mut x = (sector + 1).wrapping_mul(0xD134_2543_DE82_EF95) ^ seed.rotate_left(29) ^ 1;
    for chunk in out.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_offsets_and_refuses_past_its_end() {
        let l = Linear { start: 8, len: 100 };
        assert_eq!(l.map(0), Some(8));
        assert_eq!(l.map(99), Some(107));
        assert_eq!(l.map(100), None);
    }

    #[test]
    fn the_loop_files_map_is_a_permutation_and_not_the_identity() {
        let f = FileMap::interleaved(7);
        assert_eq!(f.blocks, [0, 6, 1, 5, 2, 4, 3]);
        let mut sorted = FileMap::interleaved(1000).blocks;
        sorted.sort_unstable();
        assert!(sorted.iter().enumerate().all(|(i, &b)| b == i as u64));
        assert_eq!(f.lookup(7), None);
    }

    #[test]
    fn the_keystream_is_its_own_inverse_and_differs_per_sector() {
        let mut data = [0u8; SECTOR_SIZE];
        pattern(3, 1, &mut data);
        let plain = data;
        xor_keystream(&schedule(42, 3), &mut data);
        assert_ne!(data, plain);
        let mut other = plain;
        xor_keystream(&schedule(42, 4), &mut other);
        assert_ne!(data, other);
        xor_keystream(&schedule(42, 3), &mut data);
        assert_eq!(data, plain);
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn patterns_differ_by_sector_and_by_round() {
        let (mut a, mut b, mut c) = ([0u8; 64], [0u8; 64], [0u8; 64]);
        pattern(1, 0, &mut a);
        pattern(2, 0, &mut b);
        pattern(1, 1, &mut c);
        assert!(a != b && a != c);
    }
}
