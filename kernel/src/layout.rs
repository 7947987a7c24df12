//! The virtual memory map and every stack-related constant, in one table
//! (Linux keeps these in `page_64_types.h` and `cpu_entry_area.h`, xv6 in
//! `memlayout.h`). It sits below everything: `mm` maps what it names and
//! `stacks` allocates what it sizes.
//!
//! Linux-shaped (Documentation/x86/x86_64/mm.rst) so that addresses in a
//! tristack oops read like addresses in a Linux oops. Nothing else in the
//! kernel may repeat these numbers as literals.

/// Size of a page and of a guard page.
pub const PAGE_SIZE: u64 = 4096;

/// Linux `STACKLEAK_POISON` (-0xBEEF): what erased thread stack holds.
pub const STACKLEAK_POISON: u64 = (-0xBEEFi64) as u64;

/// Linux: THREAD_SIZE = PAGE_SIZE << 2 on x86_64 since 3.15.
pub const THREAD_SIZE: u64 = 4 * PAGE_SIZE;
/// Linux: IRQ_STACK_SIZE = THREAD_SIZE.
pub const IRQ_STACK_SIZE: u64 = THREAD_SIZE;
/// Linux: EXCEPTION_STKSZ = 8 KiB since 2021 ("trivial to overflow" at 4 KiB).
pub const EXCEPTION_STKSZ: u64 = 2 * PAGE_SIZE;
/// The random offset each syscall moves the thread stack down by is
/// `kstack_offset & KSTACK_OFFSET_MASK` (then 16-aligned): at most 1 KiB,
/// as Linux's `KSTACK_OFFSET_MAX(x) ((x) & 0x3FF)`.
pub const KSTACK_OFFSET_MASK: u64 = 0x3ff;
/// Written at the lowest word of every thread stack (Linux STACK_END_MAGIC).
pub const STACK_END_MAGIC: u64 = 0x57AC_6E9D;
/// Freed thread stacks each CPU keeps for reuse (Linux NR_CACHED_STACKS).
pub const NR_CACHED_STACKS: usize = 2;
/// Most thread stacks alive at once (the size of the stack registry).
pub const MAX_THREAD_STACKS: usize = 1024;

// --- Mixed stack sizes (Tim Bird) and the stack limit (Sony) -------------------

/// The sizes a thread stack may have (`spawn --stack-size`, `child-stack-size`),
/// smallest first; each is allocated aligned to itself. The per-CPU stack
/// cache keeps `NR_CACHED_STACKS` of each.
pub const THREAD_STACK_SIZES: [u64; 4] = [PAGE_SIZE, 2 * PAGE_SIZE, THREAD_SIZE, 2 * THREAD_SIZE];
/// A stack limit (`spawn --stack-limit`) leaves the task this many bytes at
/// least, at most, and in steps of (the top stays 16-byte aligned).
pub const STACK_LIMIT_MIN: u64 = 512;
/// The limit's guard page must fit inside the `THREAD_SIZE` stack.
pub const STACK_LIMIT_MAX: u64 = THREAD_SIZE - PAGE_SIZE;
pub const STACK_LIMIT_ALIGN: u64 = 16;

// --- Extra stacks (Keith Owens' RFC) ----------------------------------------------

/// Each extra stack is a thread-sized stack with a guard page below.
pub const EXTRA_STACK_SIZE: u64 = THREAD_SIZE;
/// The pool's most stacks (the size of its lock-free registry).
pub const MAX_EXTRA_STACKS: usize = 64;
/// Extra stacks created for each CPU at boot (`extrastacks PER_CPU` changes it).
pub const EXTRA_STACKS_PER_CPU: usize = 2;
/// The generic submit path switches to an extra stack when more than this
/// many bytes of the current stack are in use.
pub const EXTRA_STACK_THRESHOLD: u64 = THREAD_SIZE / 2;

// --- Thread stacks that grow on demand (docs/dynamic-stacks.md) -------------------

/// Pages of a dynamic `THREAD_SIZE` stack backed when it is created (the
/// top ones); the rest are mapped by the #PF that first touches them.
pub const DYNAMIC_STACK_INITIAL_PAGES: u64 = 1;
/// Frames each CPU keeps zeroed for growth faults, which may not take the
/// frame allocator's lock: enough for one thread to grow to its full size
/// (refilled at every context switch).
pub const DYNAMIC_RESERVE_FRAMES: usize = (THREAD_SIZE / PAGE_SIZE - DYNAMIC_STACK_INITIAL_PAGES) as usize;
/// Most pages a dynamic stack keeps when it goes back to the per-CPU cache
/// (`trim` gives the rest back, and whatever its last thread did not use).
pub const DYNAMIC_CACHE_KEEP_PAGES: u64 = 2;
// 1 <= initial <= kept in the cache < the whole stack (a cached one always lacks a page).
const _: () = assert!(1 <= DYNAMIC_STACK_INITIAL_PAGES && DYNAMIC_STACK_INITIAL_PAGES <= DYNAMIC_CACHE_KEEP_PAGES);
const _: () = assert!(DYNAMIC_CACHE_KEEP_PAGES < THREAD_SIZE / PAGE_SIZE);

// --- The virtual memory map --------------------------------------------------

/// User space of the current process: program text from 4 MiB (Linux's
/// non-PIE base) up to `USER_TOP`. Never mapped for the kernel's own use.
pub const USER_TEXT_BASE: u64 = 0x40_0000;
/// One past the highest user address: Linux `TASK_SIZE_MAX`, 2^47 minus a
/// page. The last canonical page stays unmapped so that a `syscall` at the
/// very end of user space cannot leave a non-canonical return RIP in RCX.
pub const USER_TOP: u64 = (1 << 47) - PAGE_SIZE;
/// Each process's user stack, just below `USER_TOP`; the page under it is
/// never mapped (the user stack's guard page).
pub const USER_STACK_SIZE: u64 = 16 * PAGE_SIZE;
pub const USER_STACK_TOP: u64 = USER_TOP;
pub const USER_STACK_BOTTOM: u64 = USER_STACK_TOP - USER_STACK_SIZE;
/// Programs may place segments only in `[USER_TEXT_BASE, USER_SEGMENTS_END)`:
/// below the stack's guard page.
pub const USER_SEGMENTS_END: u64 = USER_STACK_BOTTOM - PAGE_SIZE;
/// Top-level page-table entries 256..512 map the kernel half; every address
/// space shares them (copied from the kernel's table, which fills all of them
/// at boot so later kernel mappings appear everywhere at once).
pub const KERNEL_PML4_FIRST: usize = 256;

/// Direct map of all physical memory (Linux `page_offset_base`, unrandomised).
pub const DIRECT_MAP_BASE: u64 = 0xffff_8880_0000_0000;
/// Size reserved for the direct map: 64 TiB, as in Linux's 4-level map.
pub const DIRECT_MAP_SIZE: u64 = 64 << 40;

/// vmalloc/vmap area: thread stacks and IRQ stacks, each between unmapped guards.
pub const VMAP_BASE: u64 = 0xffff_c900_0000_0000;
/// Size of the vmap area: 32 TiB, as in Linux.
pub const VMAP_SIZE: u64 = 32 << 40;

/// Where the bootloader may place its own mappings (boot info, boot stack):
/// Linux's KASAN shadow range, which tristack does not use. It lies between
/// the vmap area and the cpu entry area, clear of every range above.
pub const BOOTLOADER_DYNAMIC_START: u64 = 0xffff_ec00_0000_0000;
pub const BOOTLOADER_DYNAMIC_END: u64 = 0xffff_fc00_0000_0000;

/// cpu entry area: the per-CPU exception (IST) stacks and their guard pages.
pub const CPU_ENTRY_AREA_BASE: u64 = 0xffff_fe00_0000_0000;

/// The kernel image, linked as a static executable at this address.
pub const KERNEL_IMAGE_BASE: u64 = 0xffff_ffff_8000_0000;

/// One row of the map, for `meminfo` and for the overlap check below.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub name: &'static str,
    pub start: u64,
    /// Exclusive end (0 means the top of the address space).
    pub end: u64,
}

/// The virtual memory map, lowest address first.
pub const MEMORY_MAP: [Region; 6] = [
    Region { name: "user space", start: USER_TEXT_BASE, end: USER_TOP },
    Region { name: "direct map", start: DIRECT_MAP_BASE, end: DIRECT_MAP_BASE + DIRECT_MAP_SIZE },
    Region { name: "vmap area", start: VMAP_BASE, end: VMAP_BASE + VMAP_SIZE },
    Region { name: "bootloader", start: BOOTLOADER_DYNAMIC_START, end: BOOTLOADER_DYNAMIC_END },
    Region { name: "cpu entry area", start: CPU_ENTRY_AREA_BASE, end: KERNEL_IMAGE_BASE },
    Region { name: "kernel image", start: KERNEL_IMAGE_BASE, end: 0 },
];

const fn regions_ordered_and_disjoint() -> bool {
    let mut i = 1;
    while i < MEMORY_MAP.len() {
        let prev = MEMORY_MAP[i - 1];
        if prev.end == 0 || prev.end > MEMORY_MAP[i].start || prev.start >= prev.end {
            return false;
        }
        i += 1;
    }
    true
}

// The bootloader's dynamic mappings must never land inside a range we manage.
const _: () = assert!(regions_ordered_and_disjoint(), "memory map regions overlap");
// User space is the lower half, below the kernel's first shared PML4 entry.
const _: () = assert!(USER_TEXT_BASE < USER_SEGMENTS_END && USER_TOP < (KERNEL_PML4_FIRST as u64) << 39);
const _: () = assert!(USER_STACK_SIZE.is_multiple_of(PAGE_SIZE) && USER_TEXT_BASE.is_multiple_of(PAGE_SIZE));
// Stacks are allocated whole pages at a time, guards are one page.
const _: () = assert!(THREAD_SIZE.is_multiple_of(PAGE_SIZE) && EXCEPTION_STKSZ.is_multiple_of(PAGE_SIZE));
// The default size is one of the sizes; sizes are powers of two (aligned to
// themselves) and ascending.
const _: () = assert!(THREAD_STACK_SIZES[2] == THREAD_SIZE);
const _: () = assert!(THREAD_STACK_SIZES[0].is_power_of_two() && THREAD_STACK_SIZES[3] == 8 * THREAD_STACK_SIZES[0]);
// A limited stack's registry entry keeps limit/16 in 10 bits under a page-aligned base.
const _: () = assert!(STACK_LIMIT_MAX / STACK_LIMIT_ALIGN < 1024 && STACK_LIMIT_MIN.is_multiple_of(STACK_LIMIT_ALIGN));
const _: () = assert!(EXTRA_STACK_THRESHOLD < EXTRA_STACK_SIZE && EXTRA_STACK_SIZE.is_multiple_of(PAGE_SIZE));

// --- Per-CPU limits ------------------------------------------------------------

/// Most CPUs tristack brings up; per-CPU tables are sized by it.
pub const MAX_CPUS: usize = 64;

/// Physical address of the AP start-up trampoline. A SIPI names a 4 KiB page
/// below 1 MiB (vector = page number) where the AP starts in real mode;
/// 0x8000 is Linux's old `trampoline_base` choice, free once the BIOS
/// bootloader is done (the memory map must say it is usable RAM).
pub const TRAMPOLINE_PHYS: u64 = 0x8000;
const _: () = assert!(TRAMPOLINE_PHYS.is_multiple_of(PAGE_SIZE) && TRAMPOLINE_PHYS < 0x10_0000);

// --- The cpu entry area: exception (IST) stacks ----------------------------------

/// Interrupt Stack Table entries, in the hardware's numbering (the IDT gate's
/// 3-bit IST field; 0 there means "no stack switch").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Ist {
    DF = 1,
    NMI = 2,
    DB = 3,
    MCE = 4,
    /// #PF, only while thread stacks grow on demand (`dynamic-stacks on`):
    /// a growth fault must not be taken on the stack that faulted.
    PF = 5,
    /// External interrupts, likewise (their frame's push must not fault).
    ENTRY = 6,
}

impl Ist {
    /// Index into the TSS's `interrupt_stack_table` array, which is 0-based.
    /// The only place the two numberings meet.
    pub const fn tss_slot(self) -> usize {
        self as usize - 1
    }
}

/// The exception stacks of one CPU, lowest address first (Linux 5.2–5.7
/// `ESTACKS_MEMBERS`). Each has one unmapped guard page below it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EStack {
    DF,
    NMI,
    /// The hole: no pages. A third nested #DB pushes into its guard.
    DB2,
    DB1,
    DB,
    MCE,
    /// The #PF stacks exist for dynamic thread stacks (`stacks::dynamic`)
    /// and mirror #DB's: PF2 is a hole, PF1 where a #PF inside the #PF
    /// handler lands (the stub shifts IST[PF] by `PF_STACK_OFFSET`).
    PF2,
    PF1,
    PF,
    /// Linux's entry stack (`cpu_entry_stack`, its trampoline for user
    /// entries): here where external interrupts land while dynamic thread
    /// stacks exist, to be replayed onto the stack they interrupted.
    ENTRY,
}

pub struct EStackDesc {
    pub kind: EStack,
    /// The stack-type name printed in markers and messages.
    pub name: &'static str,
    pub size: u64,
    /// The IST entry whose top is this stack's top (DB1/DB2 are reached by shifting DB's).
    pub ist: Option<Ist>,
}

/// The table every exception-stack fact derives from, indexed by `EStack as usize`.
pub const ESTACKS: [EStackDesc; 10] = [
    EStackDesc { kind: EStack::DF, name: "#DF", size: EXCEPTION_STKSZ, ist: Some(Ist::DF) },
    EStackDesc { kind: EStack::NMI, name: "NMI", size: EXCEPTION_STKSZ, ist: Some(Ist::NMI) },
    EStackDesc { kind: EStack::DB2, name: "#DB2", size: 0, ist: None },
    EStackDesc { kind: EStack::DB1, name: "#DB1", size: EXCEPTION_STKSZ, ist: None },
    EStackDesc { kind: EStack::DB, name: "#DB", size: EXCEPTION_STKSZ, ist: Some(Ist::DB) },
    EStackDesc { kind: EStack::MCE, name: "#MC", size: EXCEPTION_STKSZ, ist: Some(Ist::MCE) },
    EStackDesc { kind: EStack::PF2, name: "#PF2", size: 0, ist: None },
    EStackDesc { kind: EStack::PF1, name: "#PF1", size: EXCEPTION_STKSZ, ist: None },
    EStackDesc { kind: EStack::PF, name: "#PF", size: EXCEPTION_STKSZ, ist: Some(Ist::PF) },
    EStackDesc { kind: EStack::ENTRY, name: "ENTRY", size: PAGE_SIZE, ist: Some(Ist::ENTRY) },
];

const fn estacks_indexed_by_kind() -> bool {
    let mut i = 0;
    while i < ESTACKS.len() {
        if ESTACKS[i].kind as usize != i {
            return false;
        }
        i += 1;
    }
    true
}
const _: () = assert!(estacks_indexed_by_kind(), "ESTACKS must be in EStack order");

impl EStack {
    pub const fn desc(self) -> &'static EStackDesc {
        &ESTACKS[self as usize]
    }
    pub const fn name(self) -> &'static str {
        self.desc().name
    }
    /// Only used while thread stacks grow on demand (the #PF stacks).
    pub const fn dynamic_only(self) -> bool {
        matches!(self, EStack::PF2 | EStack::PF1 | EStack::PF | EStack::ENTRY)
    }
    /// Offset of the stack's lowest byte from the CPU's entry-area base:
    /// every earlier stack plus one guard page per stack up to this one.
    pub const fn offset(self) -> u64 {
        let mut off = 0;
        let mut i = 0;
        while i < self as usize {
            off += PAGE_SIZE + ESTACKS[i].size;
            i += 1;
        }
        off + PAGE_SIZE
    }
}

/// Bytes of one CPU's entry area: the stacks, their guards and a top guard.
pub const CEA_PER_CPU_SIZE: u64 = EStack::ENTRY.offset() + EStack::ENTRY.desc().size + PAGE_SIZE;
/// Distance between two CPUs' entry areas (a power of two, for readable addresses).
pub const CEA_STRIDE: u64 = 128 * 1024;
/// What the #DB entry subtracts from TSS IST[DB] so a nested #DB lands on DB1
/// (Linux `DB_STACK_OFFSET`); a second shift lands on DB2, the hole.
pub const DB_STACK_OFFSET: u64 = EStack::DB.offset() - EStack::DB1.offset();

/// The same for #PF while thread stacks grow on demand.
pub const PF_STACK_OFFSET: u64 = EStack::PF.offset() - EStack::PF1.offset();
const _: () = assert!(DB_STACK_OFFSET == EXCEPTION_STKSZ + PAGE_SIZE);
const _: () = assert!(PF_STACK_OFFSET == DB_STACK_OFFSET);
const _: () = assert!(EStack::PF.offset() + EXCEPTION_STKSZ - 2 * PF_STACK_OFFSET == EStack::PF2.offset());
// Shifting DB's top twice must land exactly on the top of the DB2 hole.
const _: () = assert!(EStack::DB.offset() + EXCEPTION_STKSZ - 2 * DB_STACK_OFFSET == EStack::DB2.offset());
const _: () = assert!(CEA_PER_CPU_SIZE <= CEA_STRIDE);
const _: () = assert!(CPU_ENTRY_AREA_BASE + MAX_CPUS as u64 * CEA_STRIDE <= KERNEL_IMAGE_BASE);

/// The memory map for debuggers. Constants live in no section of the ELF,
/// so `scripts/gdb/tristack.py` (`./x gdb`) reads the sizes it needs from
/// this static, in the kernel's memory (as Linux's gdb scripts and crash
/// tools read `vmcoreinfo`). `#[used]`: nothing in the kernel reads it.
pub struct DebuggerLayout {
    pub page_size: u64,
    pub thread_size: u64,
    pub irq_stack_size: u64,
    pub extra_stack_size: u64,
    pub cea_base: u64,
    pub cea_stride: u64,
    /// `ESTACKS`, lowest first; each has a guard page below it.
    pub estacks: [DebuggerEStack; ESTACKS.len()],
}

pub struct DebuggerEStack {
    pub name: &'static str,
    pub size: u64,
    /// The TSS `interrupt_stack_table` index whose top is this stack's, or
    /// -1 (DB1, DB2: reached by shifting IST[DB]).
    pub ist_slot: i64,
}

const fn debugger_estack(i: usize) -> DebuggerEStack {
    let d = &ESTACKS[i];
    let ist_slot = match d.ist {
        Some(ist) => ist.tss_slot() as i64,
        None => -1,
    };
    DebuggerEStack { name: d.name, size: d.size, ist_slot }
}

#[used]
pub static DEBUGGER_LAYOUT: DebuggerLayout = DebuggerLayout {
    page_size: PAGE_SIZE,
    thread_size: THREAD_SIZE,
    irq_stack_size: IRQ_STACK_SIZE,
    extra_stack_size: EXTRA_STACK_SIZE,
    cea_base: CPU_ENTRY_AREA_BASE,
    cea_stride: CEA_STRIDE,
    estacks: {
        let mut all = [const { DebuggerEStack { name: "", size: 0, ist_slot: -1 } }; ESTACKS.len()];
        let mut i = 0;
        while i < ESTACKS.len() {
            all[i] = debugger_estack(i);
            i += 1;
        }
        all
    },
};

/// Base of `cpu`'s entry area. Wrapping arithmetic: for any CPU number
/// (below `MAX_CPUS`) it cannot overflow (the assert above), and every
/// return to user mode computes it (`check_user_return`).
pub const fn cea_base(cpu: usize) -> u64 {
    CPU_ENTRY_AREA_BASE.wrapping_add((cpu as u64).wrapping_mul(CEA_STRIDE))
}

/// [bottom, top) of one exception stack of one CPU.
pub const fn estack_range(cpu: usize, kind: EStack) -> (u64, u64) {
    let bottom = cea_base(cpu) + kind.offset();
    (bottom, bottom + kind.desc().size)
}

/// Where an address falls in the cpu entry area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CeaPart {
    Stack,
    /// The unmapped page just below the stack.
    GuardBelow,
}

/// Which CPU's which exception stack (or the guard below it) holds `addr`.
pub fn classify_cea(addr: u64) -> Option<(usize, EStack, CeaPart)> {
    let rel = addr.checked_sub(CPU_ENTRY_AREA_BASE)?;
    let cpu = (rel / CEA_STRIDE) as usize;
    if cpu >= MAX_CPUS {
        return None;
    }
    let off = rel % CEA_STRIDE;
    ESTACKS.iter().find_map(|d| {
        let bottom = d.kind.offset();
        if (bottom..bottom + d.size).contains(&off) {
            Some((cpu, d.kind, CeaPart::Stack))
        } else if (bottom - PAGE_SIZE..bottom).contains(&off) {
            Some((cpu, d.kind, CeaPart::GuardBelow))
        } else {
            None
        }
    })
}

/// The region of the map that holds `addr`, if any.
pub fn region_of(addr: u64) -> Option<&'static Region> {
    MEMORY_MAP.iter().find(|r| addr >= r.start && (r.end == 0 || addr < r.end))
}

#[cfg(test)]
mod tests;
