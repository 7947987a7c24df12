//! Address spaces of processes (Linux `mm_struct`, `pgd_alloc`,
//! `free_pgtables`): a top-level page table of its own whose lower half
//! maps the process's pages and whose upper half is a copy of the kernel's
//! 256 top-level entries — so thread stacks, IRQ and IST stacks, the heap
//! and the kernel image stay mapped whichever process runs.
//!
//! The kernel never touches user memory through user addresses: it finds
//! the frame in this table and goes through the direct map (`read`,
//! `write`), which is also how the user-pointer checks work. The lookup and
//! the copy of each page are one step under the table's lock, so `munmap`
//! cannot free a frame in the middle of a copy.

use alloc::vec::Vec;

use x86_64::structures::paging::mapper::{MapToError, TranslateResult};
use x86_64::structures::paging::{
    Mapper, OffsetPageTable, Page, PageTable, PageTableFlags, PhysFrame, Size4KiB, Translate,
};
use x86_64::{PhysAddr, VirtAddr};

use super::paging::{kernel_root, MapError};
use super::phys;
use crate::layout::{DIRECT_MAP_BASE, KERNEL_PML4_FIRST, PAGE_SIZE, USER_TOP};
use crate::sync::IrqMutex;

crate::define_per_cpu! {
    /// The address space whose CR3 this CPU has loaded (0: the kernel's).
    pub static LOADED_MM: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
}

/// Leaf flags of user pages (text is mapped without WRITABLE, data NX).
pub const USER_PAGE: PageTableFlags = PageTableFlags::PRESENT.union(PageTableFlags::USER_ACCESSIBLE);
/// Flags of the intermediate tables of user mappings: the leaf decides.
const USER_TABLE: PageTableFlags = USER_PAGE.union(PageTableFlags::WRITABLE);

pub struct AddressSpace {
    root: PhysFrame<Size4KiB>,
    /// Guards every change and walk of the lower half.
    lock: IrqMutex<()>,
    /// The program's mapped range (Linux `mm->start_code`, `end_code`),
    /// for the `segfault ... in PROG[BASE+SIZE]` line.
    code: spin::Once<(u64, u64)>,
    /// CPUs that have this CR3 loaded (Linux `mm_cpumask`): the ones whose
    /// TLBs an unmap must shoot down.
    cpus: core::sync::atomic::AtomicU64,
}

/// What a user access found (the syscall gets `-EFAULT` for either).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Outside user space, or wrapping around the address space.
    BadRange,
    /// A page in the range is not mapped for user access (or not writable).
    NotMapped(u64),
}

impl AddressSpace {
    /// A new, empty user half over a copy of the kernel half.
    pub fn new() -> Result<AddressSpace, MapError> {
        let root = phys::alloc_frame().ok_or(MapError)?;
        let new = phys::phys_to_virt(root.start_address().as_u64()) as *mut PageTable;
        let kernel = phys::phys_to_virt(kernel_root()) as *const PageTable;
        // SAFETY: `root` is a fresh frame; the kernel's top-level table is
        // read through the direct map, and its kernel-half entries never
        // change after `paging::init` (every one is filled).
        unsafe {
            core::ptr::write_bytes(new as *mut u8, 0, PAGE_SIZE as usize);
            let (new, kernel) = (&mut *new, &*kernel);
            for i in KERNEL_PML4_FIRST..512 {
                new[i] = kernel[i].clone();
            }
        }
        Ok(AddressSpace {
            root,
            lock: IrqMutex::new(()),
            code: spin::Once::new(),
            cpus: core::sync::atomic::AtomicU64::new(0),
        })
    }

    /// `cpu` loaded this address space's CR3 / switched away from it.
    pub fn entered_cpu(&self, cpu: usize) {
        self.cpus.fetch_or(1 << cpu, core::sync::atomic::Ordering::AcqRel);
    }
    pub fn left_cpu(&self, cpu: usize) {
        self.cpus.fetch_and(!(1 << cpu), core::sync::atomic::Ordering::AcqRel);
    }

    /// The CPUs that have it loaded right now.
    pub fn cpu_mask(&self) -> u64 {
        self.cpus.load(core::sync::atomic::Ordering::Acquire)
    }

    /// Unmap the user pages of `[start, end)` (page-aligned) and return
    /// their frames, still allocated: the caller shoots down every TLB that
    /// may hold them before freeing them (Linux `unmap_region` then
    /// `tlb_finish_mmu`). This CPU's entries are flushed here. The walk
    /// skips whole empty tables (512 GiB, 1 GiB, 2 MiB at a time), so even
    /// `munmap(0, 2^47)` costs only the tables that exist — not 2^35 steps
    /// with interrupts off.
    pub fn unmap(&self, start: u64, end: u64) -> Vec<PhysFrame> {
        assert!(end <= USER_TOP && start.is_multiple_of(PAGE_SIZE) && end.is_multiple_of(PAGE_SIZE));
        let _guard = self.lock.lock();
        let mut frames = Vec::new();
        let table = |pa: u64| phys::phys_to_virt(pa) as *mut PageTable;
        let mut va = start;
        // User mappings are 4 KiB pages only (`map_zeroed`): no huge entries.
        while va < end {
            // Each level: the entry for `va`, or skip to the end of what an
            // unused entry would have covered.
            let mut pt = table(self.cr3());
            let mut level_shift = 39;
            let leaf = loop {
                let index = ((va >> level_shift) & 511) as usize;
                // SAFETY: a live table of this address space (the lock is
                // held), reached through the direct map.
                let entry = unsafe { &mut (&mut *pt)[index] };
                if entry.is_unused() {
                    break None;
                }
                if level_shift == 12 {
                    break Some(entry);
                }
                pt = table(entry.addr().as_u64());
                level_shift -= 9;
            };
            let span = 1u64 << level_shift;
            if let Some(entry) = leaf {
                frames.push(PhysFrame::containing_address(entry.addr()));
                entry.set_unused();
                x86_64::instructions::tlb::flush(VirtAddr::new(va));
            }
            va = (va & !(span - 1)).saturating_add(span);
        }
        frames
    }

    /// Give back frames `unmap` returned, once no TLB can hold them.
    pub fn free_frames(frames: Vec<PhysFrame>) {
        for f in frames {
            phys::free_frame(f).expect("user frames come from phys");
        }
    }

    /// Record the program's range (once, after loading it).
    pub fn set_code(&self, start: u64, end: u64) {
        self.code.call_once(|| (start, end));
    }

    /// The program's range, if loaded.
    pub fn code(&self) -> Option<(u64, u64)> {
        self.code.get().copied()
    }

    /// The CR3 value that runs this address space.
    pub fn cr3(&self) -> u64 {
        self.root.start_address().as_u64()
    }

    fn with_table<R>(&self, f: impl FnOnce(&mut OffsetPageTable<'static>) -> R) -> R {
        let _guard = self.lock.lock();
        self.with_table_locked(f)
    }

    /// `with_table` for a caller that holds `lock` already.
    fn with_table_locked<R>(&self, f: impl FnOnce(&mut OffsetPageTable<'static>) -> R) -> R {
        let root = phys::phys_to_virt(self.cr3()) as *mut PageTable;
        // SAFETY: our own top-level table through the direct map; the lock
        // (held by the caller) makes this the only mutable view of its lower
        // half, and the kernel half is never changed through it (only user
        // addresses are mapped).
        let mut table = unsafe { OffsetPageTable::new(&mut *root, VirtAddr::new(DIRECT_MAP_BASE)) };
        f(&mut table)
    }

    /// Map a fresh zeroed frame at user address `va` with `flags` (plus
    /// PRESENT and USER_ACCESSIBLE).
    pub fn map_zeroed(&self, va: u64, flags: PageTableFlags) -> Result<(), MapError> {
        assert!(va < USER_TOP, "user mappings only below USER_TOP");
        let frame = phys::alloc_frame().ok_or(MapError)?;
        // SAFETY: a fresh frame, zeroed through the direct map.
        unsafe { core::ptr::write_bytes(phys::phys_to_virt(frame.start_address().as_u64()), 0, PAGE_SIZE as usize) };
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(va));
        let mapped = self.with_table(|t| {
            // SAFETY: a new frame at a user address of this address space;
            // nothing refers to it yet. No TLB flush: the page was unmapped.
            unsafe { t.map_to_with_table_flags(page, frame, flags | USER_PAGE, USER_TABLE, &mut Frames) }
                .map(|flush| flush.ignore())
        });
        mapped.map_err(|e| {
            let _ = phys::free_frame(frame);
            match e {
                MapToError::FrameAllocationFailed
                | MapToError::PageAlreadyMapped(_)
                | MapToError::ParentEntryHugePage => MapError,
            }
        })
    }

    /// The physical address behind user address `va`, if it is mapped for
    /// user access (and writable, if `write`).
    pub fn translate(&self, va: u64, write: bool) -> Option<PhysAddr> {
        let _guard = self.lock.lock();
        self.translate_locked(va, write)
    }

    /// `translate` for a caller that holds `lock`.
    fn translate_locked(&self, va: u64, write: bool) -> Option<PhysAddr> {
        if va >= USER_TOP {
            return None;
        }
        self.with_table_locked(|t| match t.translate(VirtAddr::new(va)) {
            TranslateResult::Mapped { frame, offset, flags }
                if flags.contains(USER_PAGE) && (!write || flags.contains(PageTableFlags::WRITABLE)) =>
            {
                Some(frame.start_address() + offset)
            }
            _ => None,
        })
    }

    /// Visit `[va, va + len)` page piece by page piece through the direct
    /// map. Each piece is looked up and visited under the lock `unmap`
    /// takes, so its frame stays mapped — and allocated — until the visit
    /// is over (Linux pins the pages of a copy, `get_user_pages`): a
    /// `munmap` on another CPU waits for at most one page's copy instead
    /// of freeing a frame the copy is still writing.
    fn for_each_piece(
        &self,
        va: u64,
        len: usize,
        write: bool,
        mut f: impl FnMut(*mut u8, usize, usize),
    ) -> Result<(), Fault> {
        let end = super::uaccess::user_range(va, len as u64).ok_or(Fault::BadRange)?;
        let mut addr = va;
        let mut done = 0usize;
        while addr < end {
            let in_page = ((PAGE_SIZE - addr % PAGE_SIZE).min(end - addr)) as usize;
            let _guard = self.lock.lock();
            let pa = self.translate_locked(addr, write).ok_or(Fault::NotMapped(addr))?;
            f(phys::phys_to_virt(pa.as_u64()), done, in_page);
            addr += in_page as u64;
            done += in_page;
        }
        Ok(())
    }

    /// Copy `buf` out of user memory at `va` (Linux `copy_from_user`).
    /// Every page is checked before any byte is read.
    pub fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), Fault> {
        self.for_each_piece(va, buf.len(), false, |_, _, _| {})?;
        // SAFETY: every page was just found mapped; each piece is read
        // through the direct map, inside one page.
        self.for_each_piece(va, buf.len(), false, |src, at, n| unsafe {
            core::ptr::copy_nonoverlapping(src, buf.as_mut_ptr().add(at), n)
        })
    }

    /// Copy `data` into user memory at `va` (Linux `copy_to_user`); the
    /// pages must be mapped writable for the user.
    pub fn write(&self, va: u64, data: &[u8]) -> Result<(), Fault> {
        self.write_as(va, data, true)
    }

    /// `write`, optionally ignoring the user's write permission (loading a
    /// read-only text segment).
    pub fn write_as(&self, va: u64, data: &[u8], need_writable: bool) -> Result<(), Fault> {
        self.for_each_piece(va, data.len(), need_writable, |_, _, _| {})?;
        // SAFETY: as in `read`; the frames belong to this address space.
        self.for_each_piece(va, data.len(), need_writable, |dst, at, n| unsafe {
            core::ptr::copy_nonoverlapping(data.as_ptr().add(at), dst, n)
        })
    }

    /// Pages mapped in the user half and page-table pages below the top
    /// level (what dropping this address space frees, plus the root).
    pub fn pages(&self) -> (usize, usize) {
        let _guard = self.lock.lock();
        let (mut leaves, mut tables) = (0, 0);
        // SAFETY: walked under the lock through the direct map.
        unsafe { walk_user_half(self.cr3(), &mut |_| leaves += 1, &mut |_| tables += 1) };
        (leaves, tables)
    }
}

/// Load the next task's address space unless it is loaded already (Linux
/// `switch_mm_irqs_off`, without PCIDs or lazy TLB: a kernel thread gets
/// the kernel's table). Writing CR3 flushes every non-global TLB entry: the
/// user half's. Each address space knows which CPUs have it loaded (Linux
/// `mm_cpumask`), so unmapping user memory shoots down only those.
// Not traced (Linux `notrace`): on every context switch; see docs/performance.md.
#[instrument_fn = "off"]
pub fn switch_mm(next: Option<&AddressSpace>) {
    let cpu = crate::arch::percpu::this_cpu();
    let next_ptr = next.map_or(0, |mm| mm as *const _ as u64);
    let prev_ptr = LOADED_MM.this().swap(next_ptr, core::sync::atomic::Ordering::AcqRel);
    if prev_ptr == next_ptr {
        return;
    }
    // SAFETY: `loaded_mm` names the address space this CPU switched to
    // last; it stays alive until its last thread is reaped, which happens
    // only after that thread left this CPU — through here.
    if let Some(prev) = unsafe { (prev_ptr as *const AddressSpace).as_ref() } {
        prev.left_cpu(cpu.id());
    }
    let cr3 = next.map_or_else(super::paging::kernel_root, |mm| {
        mm.entered_cpu(cpu.id());
        mm.cr3()
    });
    // SAFETY: `cr3` is a top-level table whose kernel half is the kernel's
    // own, so the code, stack and data in use stay mapped.
    unsafe { crate::arch::regs::write_cr3(cr3) };
}

impl Drop for AddressSpace {
    /// Free every user frame, every page-table page of the user half and
    /// the root (Linux `exit_mmap` + `free_pgtables` + `pgd_free`). No CPU
    /// runs on this CR3 any more: its last thread was switched away from.
    fn drop(&mut self) {
        let mut frames = Vec::new();
        let mut tables = Vec::new();
        // SAFETY: nothing else can reach this address space any more.
        unsafe { walk_user_half(self.cr3(), &mut |f| frames.push(f), &mut |f| tables.push(f)) };
        for f in frames.into_iter().chain(tables).chain(core::iter::once(self.root)) {
            phys::free_frame(f).expect("user frames and tables come from phys");
        }
    }
}

/// Visit every 4 KiB leaf frame and every table frame (below the root) of
/// the lower half of the table at physical `root`.
///
/// # Safety
/// `root` is a live top-level table nobody changes meanwhile.
unsafe fn walk_user_half(root: u64, leaf: &mut dyn FnMut(PhysFrame), table: &mut dyn FnMut(PhysFrame)) {
    fn entries(pa: u64) -> &'static PageTable {
        // SAFETY: (by the caller's contract) a live table, via the direct map.
        unsafe { &*(phys::phys_to_virt(pa) as *const PageTable) }
    }
    for l4 in entries(root).iter().take(KERNEL_PML4_FIRST).filter(|e| !e.is_unused()) {
        let pdpt = l4.addr().as_u64();
        for l3 in entries(pdpt).iter().filter(|e| !e.is_unused()) {
            let pd = l3.addr().as_u64();
            for l2 in entries(pd).iter().filter(|e| !e.is_unused()) {
                let pt = l2.addr().as_u64();
                for l1 in entries(pt).iter().filter(|e| !e.is_unused()) {
                    leaf(PhysFrame::containing_address(l1.addr()));
                }
                table(PhysFrame::containing_address(PhysAddr::new(pt)));
            }
            table(PhysFrame::containing_address(PhysAddr::new(pd)));
        }
        table(PhysFrame::containing_address(PhysAddr::new(pdpt)));
    }
}

struct Frames;

// SAFETY: `phys::alloc_frame` returns each free frame at most once.
unsafe impl x86_64::structures::paging::FrameAllocator<Size4KiB> for Frames {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        let f = phys::alloc_frame()?;
        // SAFETY: a fresh frame becoming a page table: zero it first.
        unsafe { core::ptr::write_bytes(phys::phys_to_virt(f.start_address().as_u64()), 0, PAGE_SIZE as usize) };
        Some(f)
    }
}
