//! Stacked drivers: each remaps or transforms a bio and resubmits it to the
//! device below through `submit_bio` — one more level of nesting each, with
//! a frame shaped like its Linux counterpart's per-I/O state.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::hint::black_box;

use super::map::{self, FileMap, Linear as LinearMap};
use super::{submit_bio, Bio, BlkError, BlockDevice, Op};
use crate::println;
use crate::sync::IrqMutex;

pub type Dev = Arc<dyn BlockDevice>;

/// dm-linear: a range of the device below.
pub struct Linear {
    below: Dev,
    map: LinearMap,
}

impl Linear {
    /// Skip the first `start` sectors of `below`.
    pub fn new(below: Dev, start: u64) -> Linear {
        let len = below.sectors().saturating_sub(start);
        Linear { below, map: LinearMap { start, len } }
    }
}

impl BlockDevice for Linear {
    fn name(&self) -> String {
        alloc::format!("linear(+{})", self.map.start)
    }
    fn sectors(&self) -> u64 {
        self.map.len
    }
    fn submit(&self, bio: &mut Bio) -> Result<(), BlkError> {
        // Linux remaps in place (`bio->bi_iter.bi_sector += start`).
        let sector = bio.sector;
        bio.sector = self.map.map(sector).ok_or(BlkError::OutOfRange)?;
        let r = submit_bio(&*self.below, bio);
        bio.sector = sector;
        r
    }
}

/// dm-crypt with an XOR "cipher": data below is the keystream of its
/// sector; the per-sector schedule (dm-crypt's IV and key state) is on
/// the stack while the bio is in flight.
pub struct Crypt {
    below: Dev,
    key: u64,
}

impl Crypt {
    pub fn new(below: Dev, key: u64) -> Crypt {
        Crypt { below, key }
    }
}

impl BlockDevice for Crypt {
    fn name(&self) -> String {
        String::from("crypt")
    }
    fn sectors(&self) -> u64 {
        self.below.sectors()
    }
    fn submit(&self, bio: &mut Bio) -> Result<(), BlkError> {
        let schedule = black_box(map::schedule(self.key, bio.sector));
        match bio.op {
            Op::Write => {
                // Encrypt into a clone: the caller's data stays plain.
                let mut clone = bio.clone_to(bio.sector);
                map::xor_keystream(&schedule, &mut clone.data[..]);
                let r = submit_bio(&*self.below, &mut clone);
                bio.depth.merge(clone.depth);
                r
            }
            Op::Read => {
                submit_bio(&*self.below, bio)?;
                map::xor_keystream(&schedule, &mut bio.data[..]);
                Ok(())
            }
        }
    }
}

/// An integrity layer (dm-integrity's idea): a CRC-32 per sector, kept
/// beside the device; a read whose data does not match fails with -EIO
/// rather than return bad data.
pub struct Integrity {
    below: Dev,
    sums: IrqMutex<Vec<Option<u32>>>,
}

impl Integrity {
    pub fn new(below: Dev) -> Integrity {
        let n = below.sectors() as usize;
        Integrity { below, sums: IrqMutex::new(vec![None; n]) }
    }
}

impl BlockDevice for Integrity {
    fn name(&self) -> String {
        String::from("integrity")
    }
    fn sectors(&self) -> u64 {
        self.below.sectors()
    }
    fn submit(&self, bio: &mut Bio) -> Result<(), BlkError> {
        // The tag buffer dm-integrity keeps per bio.
        let mut tags = black_box([0u32; 16]);
        tags[0] = map::crc32(&bio.data[..]);
        match bio.op {
            Op::Write => {
                submit_bio(&*self.below, bio)?;
                // Recorded only once the data is down: a failed write leaves
                // the old checksum, so a read of what is there still fails.
                self.sums.lock()[bio.sector as usize] = Some(tags[0]);
                Ok(())
            }
            Op::Read => {
                submit_bio(&*self.below, bio)?;
                tags[1] = map::crc32(&bio.data[..]);
                match self.sums.lock()[bio.sector as usize] {
                    Some(sum) if sum != tags[1] => {
                        println!("integrity: sector {}: checksum {:08x}, data {:08x}: -EIO", bio.sector, sum, tags[1]);
                        Err(BlkError::BadChecksum)
                    }
                    _ => Ok(()),
                }
            }
        }
    }
}

/// md RAID1: writes go to both legs, reads to the first and, if it fails,
/// the second.
pub struct Mirror {
    legs: [Dev; 2],
}

impl Mirror {
    pub fn new(primary: Dev, secondary: Dev) -> Mirror {
        Mirror { legs: [primary, secondary] }
    }
}

impl BlockDevice for Mirror {
    fn name(&self) -> String {
        alloc::format!("mirror(+{})", self.legs[1].name())
    }
    fn sectors(&self) -> u64 {
        self.legs[0].sectors().min(self.legs[1].sectors())
    }
    fn submit(&self, bio: &mut Bio) -> Result<(), BlkError> {
        match bio.op {
            Op::Write => {
                // One clone per leg (Linux `r1bio` with its `bios[]`).
                let mut clones = [bio.clone_to(bio.sector), bio.clone_to(bio.sector)];
                let mut ok = [false; 2];
                for (i, leg) in self.legs.iter().enumerate() {
                    ok[i] = submit_bio(&**leg, &mut clones[i]).is_ok();
                    bio.depth.merge(clones[i].depth);
                }
                // Reported written only when both legs hold it.
                if ok == [true, true] {
                    Ok(())
                } else {
                    Err(BlkError::Mirror)
                }
            }
            Op::Read => submit_bio(&*self.legs[0], bio).or_else(|_| submit_bio(&*self.legs[1], bio)),
        }
    }
}

/// The loop driver over a file: the file's blocks are scattered on the
/// device below (its block map), and each bio goes to where its block is.
pub struct Loop {
    below: Dev,
    file: FileMap,
}

impl Loop {
    pub fn new(below: Dev) -> Loop {
        let file = FileMap::interleaved(below.sectors());
        Loop { below, file }
    }
}

impl BlockDevice for Loop {
    fn name(&self) -> String {
        String::from("loop")
    }
    fn sectors(&self) -> u64 {
        self.file.blocks.len() as u64
    }
    fn submit(&self, bio: &mut Bio) -> Result<(), BlkError> {
        // The file position and the extent found for it, as the loop
        // worker's `iov_iter` and the filesystem's `bmap` would hold them.
        let pos = black_box([bio.sector * super::SECTOR_SIZE as u64, 0, 0, 0]);
        let sector = self.file.lookup(pos[0] / super::SECTOR_SIZE as u64).ok_or(BlkError::OutOfRange)?;
        let mut clone = bio.clone_to(sector);
        let r = submit_bio(&*self.below, &mut clone);
        bio.depth.merge(clone.depth);
        if r.is_ok() && bio.op == Op::Read {
            bio.data.copy_from_slice(&clone.data[..]);
        }
        r
    }
}
