//! Per-CPU data. A module that owns per-CPU state declares it itself with
//! `define_per_cpu!` (Linux `DEFINE_PER_CPU`): the NMI and #MC counts in
//! `arch::nmi`/`arch::mce`, the debug-register state in `arch::debug`, the
//! interrupt counts in `entry::irq`, the pending softirqs in `softirq`, the
//! loaded address space in `mm`, the stack cache in `stacks::thread`, the
//! running task and `need_resched` in `sched::runqueue`.
//!
//! The `PerCpu` area, reached through the GS base, keeps the rest: what the
//! entry stubs reach by fixed offset from GS (`top_of_stack`,
//! `user_rsp_scratch`, `kstack_offset`, `irq_count`, `irq_stack_top`,
//! `tracer_busy`, the TSS), the CPU's identity (number, APIC ID, online),
//! Linux's `preempt_count`, which every layer asks about (`irq_count`
//! apart, for the entry stubs; `preempt_count`: locks held, softirq, NMI
//! depth), and — still to
//! move to their owners — the handlers' last frames (read by the stacks'
//! ktests, below the entry layer) and the user-boundary counters.
//! One `PerCpu` per possible CPU, in a static array; word 0 of each area
//! points to the area itself, so `this_cpu()` is one `mov reg, gs:[0]`.

use core::cell::UnsafeCell;
use core::mem::offset_of;
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicU8, Ordering};

use ::x86_64::registers::model_specific::GsBase;
use ::x86_64::structures::gdt::GlobalDescriptorTable;
use ::x86_64::structures::tss::TaskStateSegment;
use ::x86_64::VirtAddr;

use super::vectors::NR_EXCEPTIONS;
use crate::layout::{Ist, MAX_CPUS};

/// A per-CPU variable declared by the module that owns it (Linux
/// `DEFINE_PER_CPU`): one `T` per possible CPU, found by CPU number. The
/// `PerCpu` area below keeps only what cannot live this way: what the entry
/// stubs reach by fixed offset from GS, and the parts of Linux's
/// `preempt_count` that every layer asks about together.
pub struct PerCpuVar<T>([T; MAX_CPUS]);

impl<T> PerCpuVar<T> {
    pub const fn new(each: [T; MAX_CPUS]) -> Self {
        PerCpuVar(each)
    }

    /// This CPU's instance (Linux `this_cpu_ptr`): one load of the CPU
    /// number from the GS area, no bounds check. Like `this_cpu`, only once
    /// `init` has set this CPU's GS base.
    #[inline(always)]
    pub fn this(&self) -> &T {
        let cpu: usize;
        // SAFETY: after `init`, GS points at this CPU's area, whose `cpu`
        // field holds its number, below MAX_CPUS (`init` indexed AREAS by it).
        unsafe {
            core::arch::asm!("mov {}, gs:[{off}]", out(reg) cpu, off = const CPU_OFFSET,
                options(nostack, readonly, preserves_flags));
            self.0.get_unchecked(cpu)
        }
    }

    /// CPU `cpu`'s instance (Linux `per_cpu_ptr`).
    #[inline(always)]
    pub fn of(&self, cpu: usize) -> &T {
        &self.0[cpu]
    }
}

/// `define_per_cpu! { pub static NAME: Type = init; }`: one `Type` per
/// possible CPU, each starting as `init` (a constant expression).
#[macro_export]
macro_rules! define_per_cpu {
    ($(#[$meta:meta])* $vis:vis static $name:ident: $t:ty = $init:expr;) => {
        $(#[$meta])*
        $vis static $name: $crate::arch::percpu::PerCpuVar<$t> =
            $crate::arch::percpu::PerCpuVar::new([const { $init }; $crate::layout::MAX_CPUS]);
    };
}

/// Entries of a per-CPU GDT: null, (Linux's KERNEL32_CS slot, unused),
/// kernel code 0x10, kernel data 0x18, user32 code 0x23, user data 0x2b,
/// user code 0x33, TSS (two slots).
pub const GDT_ENTRIES: usize = 9;

#[repr(C, align(64))]
pub struct PerCpu {
    /// This area's own address: `gs:[0]`.
    self_addr: AtomicU64,
    pub cpu: AtomicU64,
    /// The local APIC ID (what IPIs are addressed to).
    pub apic_id: AtomicU32,
    /// Set when the CPU has finished bring-up and runs its idle task.
    pub online: AtomicBool,
    /// Linux `irq_count`: -1 when not in an interrupt; the entry code
    /// increments it and switches to the IRQ stack when it becomes 0.
    pub irq_count: AtomicI64,
    /// One past the top of this CPU's IRQ stack (Linux `hardirq_stack_ptr`
    /// points one word lower; the entry code stores there).
    pub irq_stack_top: AtomicU64,
    /// Changed by hardware (RSP0) and by the #DB entry stub (IST[DB]).
    pub tss: UnsafeCell<TaskStateSegment>,
    pub gdt: UnsafeCell<GlobalDescriptorTable<GDT_ENTRIES>>,
    /// The stack tracer's hook is running on this CPU (`mcount` skips
    /// nested entries: the hook's own calls, an NMI inside it).
    pub tracer_busy: AtomicU8,
    /// Linux `preempt_count`, the fields tristack has (the hard-IRQ count
    /// is `irq_count`, which the entry stubs keep for the stack switch):
    /// `IrqMutex`es and the heap lock held (`PREEMPT_MASK`: an oops with one
    /// held cannot kill the thread, the lock would never be released),
    /// softirq handlers running (`SOFTIRQ_OFFSET`: an IRQ exit meanwhile
    /// must not run them again), NMI and #MC handlers nested (`NMI_MASK`,
    /// set by `nmi_enter`: an oops here cannot kill a thread either). One
    /// word, so "may this CPU switch?" is one load.
    preempt_count: AtomicU32,
    /// Per vector: the address of the register frame of the last handler run,
    /// i.e. where on which stack it ran (ktests and commands read it).
    pub handler_rsp: [AtomicU64; NR_EXCEPTIONS],
    /// Per vector: the interrupted RSP of the last handler run.
    pub interrupted_rsp: [AtomicU64; NR_EXCEPTIONS],
    /// The running thread's stack top (Linux `cpu_current_top_of_stack`):
    /// the syscall entry's RSP; equal to TSS RSP0.
    pub top_of_stack: AtomicU64,
    /// The user RSP while the syscall entry builds its frame (Linux
    /// `cpu_tss_rw.sp2` scratch).
    pub user_rsp_scratch: AtomicU64,
    /// Linux `kstack_offset`: mixed with the TSC at every return to user;
    /// its low 10 bits move the next syscall's frames down.
    pub kstack_offset: AtomicU32,
    /// Linux `current->lowest_stack`, kept per CPU for the running thread
    /// (saved in its task at a switch, `stackleak::save`): the lowest RSP
    /// an instrumented function was entered with since the last erase.
    /// `mcount` lowers it; 0: not tracking.
    pub stackleak_lowest: AtomicU64,
    /// The running thread's lowest usable stack word (above its end
    /// magic): `mcount` ignores an RSP below it (another stack).
    pub stackleak_bottom: AtomicU64,
    /// Entry and exit counts across the user boundary.
    pub user: UserCounters,
}

/// What crossed the user/kernel boundary on one CPU (`userstate`).
pub struct UserCounters {
    pub syscalls: AtomicU64,
    /// Returns to user mode, by instruction.
    pub sysret: AtomicU64,
    pub iret: AtomicU64,
    /// Syscalls that could not return by SYSRET (counted in `iret` too).
    pub syscall_iret: AtomicU64,
    /// IRETs to user mode that faulted (a non-canonical RIP), fixed up
    /// into a user #GP (Linux `fixup_bad_iret`).
    pub bad_iret: AtomicU64,
    /// Returns to user whose state broke the rule "kernel stack empty, no
    /// IRQ or IST stack live" (must stay 0).
    pub violations: AtomicU64,
    /// Entries from user mode that arrived on an IST stack and were moved
    /// to the thread stack (`sync_regs`).
    pub moved_off_ist: AtomicU64,
    /// External interrupts from user mode, and how many of their handlers
    /// ran on the IRQ stack (all of them: the frame is on the thread stack,
    /// the handler is not).
    pub irqs: AtomicU64,
    pub irqs_on_irq_stack: AtomicU64,
}

/// `preempt_count`'s fields (Linux `include/linux/preempt.h` has the same
/// three, with hard IRQs between softirq and NMI).
pub const PREEMPT_MASK: u32 = 0x0000_ffff;
pub const SOFTIRQ_OFFSET: u32 = 1 << 16;
pub const NMI_SHIFT: u32 = 24;
pub const NMI_OFFSET: u32 = 1 << NMI_SHIFT;

impl PerCpu {
    /// Any of `preempt_count`'s fields set: a lock held, softirq or NMI
    /// context (with `irq_count`, Linux `in_atomic()`).
    pub fn preempt_count(&self) -> u32 {
        self.preempt_count.load(Ordering::Relaxed)
    }

    /// NMI and #MC handlers nested on this CPU.
    pub fn nmi_depth(&self) -> u32 {
        self.preempt_count.load(Ordering::SeqCst) >> NMI_SHIFT
    }

    /// Linux `nmi_enter` / `nmi_exit` (only the count).
    pub fn nmi_enter(&self) {
        self.preempt_count.fetch_add(NMI_OFFSET, Ordering::SeqCst);
    }

    pub fn nmi_exit(&self) {
        self.preempt_count.fetch_sub(NMI_OFFSET, Ordering::SeqCst);
    }

    /// Put the NMI count back to `depth` (a test's fake machine check that
    /// "died" without leaving #MC context).
    pub fn set_nmi_depth(&self, depth: u32) {
        let _ = self.preempt_count.try_update(Ordering::SeqCst, Ordering::SeqCst, |pc| {
            Some((pc & !(u32::MAX << NMI_SHIFT)) | depth << NMI_SHIFT)
        });
    }

    /// Softirq handlers are running on this CPU.
    pub fn in_softirq(&self) -> bool {
        self.preempt_count.load(Ordering::SeqCst) & SOFTIRQ_OFFSET != 0
    }

    /// Mark softirq handlers running (or not); returns whether they were.
    pub fn set_softirq(&self, running: bool) -> bool {
        let old = if running {
            self.preempt_count.fetch_or(SOFTIRQ_OFFSET, Ordering::SeqCst)
        } else {
            self.preempt_count.fetch_and(!SOFTIRQ_OFFSET, Ordering::SeqCst)
        };
        old & SOFTIRQ_OFFSET != 0
    }

    /// Spin locks (`IrqMutex`es, the heap's) this CPU holds.
    pub fn locks_held(&self) -> u32 {
        self.preempt_count.load(Ordering::SeqCst) & PREEMPT_MASK
    }

    /// A lock taken / released on this CPU (Linux `preempt_disable` /
    /// `preempt_enable` in `spin_lock` / `spin_unlock`).
    pub fn lock_taken(&self) {
        self.preempt_count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn lock_released(&self) {
        self.preempt_count.fetch_sub(1, Ordering::Relaxed);
    }
}

// SAFETY: the UnsafeCell fields are written only by their own CPU (during
// init, by the #DB stub, by hardware); other CPUs only read them for display.
unsafe impl Sync for PerCpu {}

impl PerCpu {
    const fn new() -> Self {
        PerCpu {
            self_addr: AtomicU64::new(0),
            cpu: AtomicU64::new(0),
            apic_id: AtomicU32::new(0),
            online: AtomicBool::new(false),
            irq_count: AtomicI64::new(-1),
            irq_stack_top: AtomicU64::new(0),
            tss: UnsafeCell::new(TaskStateSegment::new()),
            gdt: UnsafeCell::new(GlobalDescriptorTable::empty()),
            tracer_busy: AtomicU8::new(0),
            preempt_count: AtomicU32::new(0),
            handler_rsp: [const { AtomicU64::new(0) }; NR_EXCEPTIONS],
            interrupted_rsp: [const { AtomicU64::new(0) }; NR_EXCEPTIONS],
            top_of_stack: AtomicU64::new(0),
            user_rsp_scratch: AtomicU64::new(0),
            kstack_offset: AtomicU32::new(0),
            stackleak_lowest: AtomicU64::new(0),
            stackleak_bottom: AtomicU64::new(0),
            user: UserCounters {
                syscalls: AtomicU64::new(0),
                sysret: AtomicU64::new(0),
                iret: AtomicU64::new(0),
                syscall_iret: AtomicU64::new(0),
                bad_iret: AtomicU64::new(0),
                violations: AtomicU64::new(0),
                moved_off_ist: AtomicU64::new(0),
                irqs: AtomicU64::new(0),
                irqs_on_irq_stack: AtomicU64::new(0),
            },
        }
    }

    pub fn id(&self) -> usize {
        self.cpu.load(Ordering::Relaxed) as usize
    }

    /// The live value of one IST slot of this CPU's TSS.
    pub fn ist(&self, ist: Ist) -> u64 {
        // SAFETY: a plain read of a u64 inside the TSS; the only writers are
        // this CPU's #DB stub and init, and a torn read is impossible for an
        // aligned u64 (the TSS places IST at offset 36, 4-aligned: reads are
        // still single instructions on x86).
        unsafe {
            let tss = self.tss.get();
            core::ptr::addr_of!((*tss).interrupt_stack_table[ist.tss_slot()]).read_unaligned().as_u64()
        }
    }

    /// Record where the handler for `vector` ran and what it interrupted.
    pub fn note_handler(&self, vector: u64, frame_addr: u64, interrupted_rsp: u64) {
        if let Some(slot) = self.handler_rsp.get(vector as usize) {
            slot.store(frame_addr, Ordering::Relaxed);
            self.interrupted_rsp[vector as usize].store(interrupted_rsp, Ordering::Relaxed);
        }
    }
}

static AREAS: [PerCpu; MAX_CPUS] = [const { PerCpu::new() }; MAX_CPUS];

/// Offsets from GS base of the fields the interrupt entry code uses.
/// Where `this()` finds the CPU number.
const CPU_OFFSET: usize = offset_of!(PerCpu, cpu);
pub const IRQ_COUNT_OFFSET: usize = offset_of!(PerCpu, irq_count);
pub const IRQ_STACK_TOP_OFFSET: usize = offset_of!(PerCpu, irq_stack_top);

/// The syscall entry's stack and scratch slot, and the random offset.
pub const TOP_OF_STACK_OFFSET: usize = offset_of!(PerCpu, top_of_stack);
pub const USER_RSP_SCRATCH_OFFSET: usize = offset_of!(PerCpu, user_rsp_scratch);
pub const KSTACK_OFFSET_OFFSET: usize = offset_of!(PerCpu, kstack_offset);

/// Offset from GS base of TSS IST[DB], which the #DB entry stub shifts.
pub const TSS_IST_DB_OFFSET: usize =
    offset_of!(PerCpu, tss) + offset_of!(TaskStateSegment, interrupt_stack_table) + 8 * Ist::DB.tss_slot();
/// Offset from GS base of TSS IST[PF], which the #PF entry stub shifts
/// (while thread stacks grow on demand).
pub const TSS_IST_PF_OFFSET: usize =
    offset_of!(PerCpu, tss) + offset_of!(TaskStateSegment, interrupt_stack_table) + 8 * Ist::PF.tss_slot();
/// Offset from GS base of the stack tracer's per-CPU recursion guard.
pub const TRACER_BUSY_OFFSET: usize = offset_of!(PerCpu, tracer_busy);
/// `MSR_GS_BASE`: the per-CPU base (the paranoid entries read it to learn
/// whose GS is loaded; an AP's trampoline writes it).
pub const MSR_GS_BASE: u32 = 0xc000_0101;
/// Offsets from GS base of what `mcount` tracks for stack erasing.
pub const STACKLEAK_LOWEST_OFFSET: usize = offset_of!(PerCpu, stackleak_lowest);
pub const STACKLEAK_BOTTOM_OFFSET: usize = offset_of!(PerCpu, stackleak_bottom);

/// The area of `cpu` (for display and for bring-up).
pub fn of(cpu: usize) -> &'static PerCpu {
    &AREAS[cpu]
}

/// Point GS base at `cpu`'s area. Must run on `cpu` before anything uses `this_cpu`.
pub fn init(cpu: usize) {
    let area = &AREAS[cpu];
    area.self_addr.store(area as *const PerCpu as u64, Ordering::Relaxed);
    area.cpu.store(cpu as u64, Ordering::Relaxed);
    GsBase::write(VirtAddr::from_ptr(area));
    BOOT_CPU_READY.store(true, Ordering::Release);
}

/// CPUs that finished bring-up, in order (Linux `for_each_online_cpu`).
pub fn online_cpus() -> impl Iterator<Item = usize> {
    (0..MAX_CPUS).filter(|&c| AREAS[c].online.load(Ordering::Acquire))
}

/// Whether `cpu` finished bring-up.
pub fn is_online(cpu: usize) -> bool {
    cpu < MAX_CPUS && AREAS[cpu].online.load(Ordering::Acquire)
}

/// Set once the boot CPU's GS base points at its area.
static BOOT_CPU_READY: AtomicBool = AtomicBool::new(false);

/// Whether `this_cpu` works on this CPU (the console and the oops path may
/// run before). Every CPU but the boot CPU sets GS before it runs any code
/// that asks, so one flag suffices.
pub fn ready() -> bool {
    BOOT_CPU_READY.load(Ordering::Acquire)
}

/// This CPU's id, or 0 before the per-CPU areas exist (only the boot CPU
/// runs then).
pub fn current_cpu_id() -> usize {
    if ready() {
        this_cpu().id()
    } else {
        0
    }
}

/// This CPU's area.
#[inline(always)]
pub fn this_cpu() -> &'static PerCpu {
    let addr: u64;
    // SAFETY: after `init`, gs:[0] holds the address of one of the static
    // areas, which live forever.
    unsafe {
        core::arch::asm!("mov {}, gs:[0]", out(reg) addr, options(nostack, readonly, preserves_flags));
        &*(addr as *const PerCpu)
    }
}
