//! The RAM disk at the bottom of every stack (Linux `brd`), completing
//! asynchronously: `submit` queues the request for the `kblockd` thread
//! and sleeps until it is done — so a submitter that switched to an extra
//! stack sleeps there, holding it, as the RFC allows.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

use super::{Bio, BlkError, BlockDevice, Op, SECTOR_SIZE};
use crate::layout::PAGE_SIZE;
use crate::mm::vmalloc::{self, ONE_PAGE_GUARDS};
use crate::mm::vmap::VmapError;
use crate::sched::{self, WaitQueue};
use crate::sync::IrqMutex;

pub struct RamDisk {
    id: u32,
    /// Its memory: pages from the vmap area (Linux `brd` keeps pages too),
    /// guarded by this lock while kblockd copies.
    data: IrqMutex<u64>,
    sectors: u64,
}

impl Drop for RamDisk {
    fn drop(&mut self) {
        vmalloc::vfree(*self.data.lock()).expect("RAM disks come from the vmap area");
    }
}

/// One queued request; it lives in the submitter's frame until done.
struct Request {
    disk: *const RamDisk,
    op: Op,
    sector: u64,
    buf: *mut [u8; SECTOR_SIZE],
    done: AtomicBool,
}

// SAFETY: a request is only touched by its submitter and by kblockd,
// which finishes with it (sets `done`) before the submitter goes on.
unsafe impl Send for Request {}

struct Queue(VecDeque<*const Request>);
// SAFETY: the pointers are to requests whose submitters wait for them.
unsafe impl Send for Queue {}

static QUEUE: IrqMutex<Queue> = IrqMutex::new(Queue(VecDeque::new()));
static QUEUED: WaitQueue = WaitQueue::new("kblockd queue");
static COMPLETED: WaitQueue = WaitQueue::new("bio completion");
static KBLOCKD: AtomicBool = AtomicBool::new(false);

/// Holding the next request at the bottom, as a slow disk would, so its
/// submitter can be looked at while it sleeps (`blk-io --hold`).
static HOLD: AtomicU8 = AtomicU8::new(NOT_HELD);
const NOT_HELD: u8 = 0;
const ARMED: u8 = 1;
const HOLDING: u8 = 2;
static RELEASED: WaitQueue = WaitQueue::new("ramdisk hold");

/// Hold the next request that reaches any RAM disk until `release`.
pub fn hold_next() {
    HOLD.store(ARMED, Ordering::SeqCst);
}

/// A request is being held.
pub fn holding() -> bool {
    HOLD.load(Ordering::SeqCst) == HOLDING
}

/// Let a held request (or an armed hold) go.
pub fn release() {
    HOLD.store(NOT_HELD, Ordering::SeqCst);
    RELEASED.wake_up();
}
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

impl RamDisk {
    /// A zeroed disk of `sectors`; the first one starts kblockd.
    pub fn new(sectors: u64) -> Result<Arc<RamDisk>, VmapError> {
        if !KBLOCKD.swap(true, Ordering::SeqCst) {
            sched::spawn("kblockd", kblockd, 0)?;
        }
        let bytes = (sectors * SECTOR_SIZE as u64).next_multiple_of(PAGE_SIZE);
        let r = vmalloc::vmalloc_guarded(bytes, PAGE_SIZE, ONE_PAGE_GUARDS)?;
        Ok(Arc::new(RamDisk {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed) as u32,
            data: IrqMutex::new(r.start),
            sectors,
        }))
    }
}

impl BlockDevice for RamDisk {
    fn name(&self) -> String {
        alloc::format!("ram{}", self.id)
    }

    fn sectors(&self) -> u64 {
        self.sectors
    }

    fn submit(&self, bio: &mut Bio) -> Result<(), BlkError> {
        bio.depth.note();
        let req =
            Request { disk: self, op: bio.op, sector: bio.sector, buf: &mut *bio.data, done: AtomicBool::new(false) };
        QUEUE.lock().0.push_back(&req);
        QUEUED.wake_up();
        COMPLETED.wait_until(|| req.done.load(Ordering::Acquire));
        Ok(())
    }
}

/// The disk's "interrupt": copies each queued request, then wakes its submitter.
fn kblockd(_: u64) -> i64 {
    loop {
        QUEUED.wait_until(|| !QUEUE.lock().0.is_empty());
        loop {
            // Its own statement: the lock must not be held while a request is served.
            let next = QUEUE.lock().0.pop_front();
            let Some(req) = next else { break };
            // SAFETY: the submitter sleeps until `done`; the disk outlives
            // the bios submitted to it (the caller holds an Arc).
            let req = unsafe { &*req };
            let disk = unsafe { &*req.disk };
            if HOLD.compare_exchange(ARMED, HOLDING, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
                RELEASED.wait_until(|| HOLD.load(Ordering::SeqCst) != HOLDING);
            }
            let at = req.sector as usize * SECTOR_SIZE;
            {
                let base = disk.data.lock();
                // SAFETY: the disk's mapped pages, under its lock; the
                // sector was checked against the disk's size by submit_bio.
                let data =
                    unsafe { core::slice::from_raw_parts_mut(*base as *mut u8, disk.sectors as usize * SECTOR_SIZE) };
                // SAFETY: the bio's buffer, not touched by its owner meanwhile.
                let buf = unsafe { &mut *req.buf };
                match req.op {
                    Op::Read => buf.copy_from_slice(&data[at..at + SECTOR_SIZE]),
                    Op::Write => data[at..at + SECTOR_SIZE].copy_from_slice(buf),
                }
            }
            req.done.store(true, Ordering::Release);
            COMPLETED.wake_up();
        }
    }
}
