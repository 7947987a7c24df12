//! The stack tracer (Linux `kernel/trace/trace_stack.c`), over every kind
//! of stack: on each kernel function entry (`mcount`, `arch/x86_64/mcount.rs`),
//! while it is on, find the stack RSP is on and the depth on it; on a new
//! maximum for that kind of stack, record the call chain with each frame's
//! size, as Linux does (the distance between the stack slots of
//! consecutive return addresses). Linux's tracer skips interrupt stacks
//! ("we do not handle interrupt stacks yet"); this one keeps one record
//! each for the task stacks, the IRQ stacks and every IST stack.
//!
//! Safe anywhere, NMI and #MC included: the hook runs with this CPU's
//! `tracer_busy` set (so the functions it calls, instrumented too, return
//! at once), reads only stack memory that `stacks::info` vouches for,
//! allocates nothing, and never waits for a record another context is
//! writing (a busy record means this maximum goes unrecorded).

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

use crate::layout::EStack;
use crate::stacks::info::{self, StackKind};

/// The kinds of stack with a record, in table order.
pub const KINDS: [&str; 7] = ["TASK", "IRQ", "#DF", "NMI", "#DB", "#DB1", "#MC"];
/// Return addresses kept per record (Linux keeps 1024 words).
pub const MAX_ENTRIES: usize = 64;

/// The deepest depth seen per kind (Linux `stack_trace_max_size`).
static MAX: [AtomicU64; KINDS.len()] = [const { AtomicU64::new(0) }; KINDS.len()];

/// One recorded maximum: where each return address was and what it was.
#[derive(Clone, Copy)]
pub struct Record {
    pub cpu: usize,
    pub entries: usize,
    /// `location[i]`: entry 0 is the function whose entry hit the maximum;
    /// then each return address up the frame-pointer chain.
    pub location: [u64; MAX_ENTRIES],
    /// Bytes from the stack top to entry i's frame (entry 0: the maximum).
    pub depth: [u64; MAX_ENTRIES],
}

const EMPTY: Record = Record { cpu: 0, entries: 0, location: [0; MAX_ENTRIES], depth: [0; MAX_ENTRIES] };

/// A record and the CPU writing or reading it. Not a lock that waits: the
/// hook skips a busy record, and a CPU that dies inside the hook (a stack
/// overflow there is common: the hook is the deepest frame) gives its
/// records back from `die` (`abandon_cpu`).
struct Slot {
    owner: AtomicUsize,
    record: UnsafeCell<Record>,
}

const NO_OWNER: usize = usize::MAX;

// SAFETY: `record` is only touched by the CPU that set `owner` to its id.
unsafe impl Sync for Slot {}

static RECORDS: [Slot; KINDS.len()] =
    [const { Slot { owner: AtomicUsize::new(NO_OWNER), record: UnsafeCell::new(EMPTY) } }; KINDS.len()];

impl Slot {
    fn try_own(&self) -> bool {
        let me = crate::arch::percpu::current_cpu_id();
        self.owner.compare_exchange(NO_OWNER, me, Ordering::Acquire, Ordering::Relaxed).is_ok()
    }
    fn release(&self) {
        self.owner.store(NO_OWNER, Ordering::Release);
    }
    /// Run `f` on the record, waiting (bounded) for another CPU's update.
    fn with<R>(&self, f: impl FnOnce(&mut Record) -> R) -> Option<R> {
        if !crate::time::spin_until(100, || self.try_own()) {
            return None;
        }
        // SAFETY: owned by this CPU until `release`.
        let r = f(unsafe { &mut *self.record.get() });
        self.release();
        Some(r)
    }
}

/// `stacktrace-filter GLOB`: only entries of functions whose name matches
/// are checked (Linux `stack_trace_filter`). Null: every function. Set
/// filters are leaked (a few bytes each, set by hand).
static FILTER: AtomicPtr<alloc::string::String> = AtomicPtr::new(core::ptr::null_mut());

fn kind_index(kind: StackKind) -> Option<usize> {
    Some(match kind {
        StackKind::Task => 0,
        StackKind::Irq => 1,
        StackKind::Exception(EStack::DF) => 2,
        StackKind::Exception(EStack::NMI) => 3,
        StackKind::Exception(EStack::DB) => 4,
        StackKind::Exception(EStack::DB1) => 5,
        StackKind::Exception(EStack::MCE) => 6,
        // Extra stacks are entered only by the block layer's submit path;
        // `blk-io` prints the depth reached on them itself.
        StackKind::Exception(EStack::DB2) | StackKind::Extra => return None,
        // The #PF stacks run `grow` (untraced) and, for a guard hit, the
        // oops; the entry stack only the replay stub: no record of their own.
        StackKind::Exception(EStack::PF | EStack::PF1 | EStack::PF2 | EStack::ENTRY) => return None,
    })
}

/// Called by `mcount` (with this CPU's `tracer_busy` set): `fp` is the
/// entered function's frame pointer, `sp` its RSP at the `call mcount`,
/// `ip` the address in it just after that call.
pub extern "C" fn hook(fp: u64, sp: u64, ip: u64) {
    // Most entries are on the running thread's own stack: check it first
    // (a per-CPU read), before the search over every stack.
    let own = crate::sched::current_stack_range()
        .map(|(bottom, top)| info::StackInfo { kind: StackKind::Task, cpu: 0, bottom, top })
        .filter(|s| s.contains(sp));
    let Some(stack) = own.or_else(|| info::stack_of(sp)) else { return };
    let Some(k) = kind_index(stack.kind) else { return };
    let depth = stack.top - sp;
    if depth <= MAX[k].load(Ordering::Relaxed) {
        return;
    }
    if let Some(glob) = filter() {
        match crate::debug::symbols::resolve(ip) {
            Some(r) if super::glob::matches(glob.as_bytes(), r.symbol.name.as_bytes()) => {}
            _ => return,
        }
    }
    // A record busy on this CPU (we interrupted its update) or another:
    // this maximum goes unrecorded; the next deeper one will be.
    let slot = &RECORDS[k];
    if !slot.try_own() {
        return;
    }
    if depth <= MAX[k].load(Ordering::Relaxed) {
        slot.release();
        return;
    }
    // SAFETY: owned by this CPU until `release` below.
    let rec = unsafe { &mut *slot.record.get() };
    MAX[k].store(depth, Ordering::Relaxed);
    rec.cpu = crate::arch::percpu::current_cpu_id();
    rec.location[0] = ip;
    rec.depth[0] = depth;
    let mut n = 1;
    // Up the frame-pointer chain, within this stack: each frame's return
    // address sits at fp + 8; the caller's frame pointer at fp.
    let mut fp = fp;
    while n < MAX_ENTRIES && fp >= sp && fp.checked_add(16).is_some_and(|end| end <= stack.top) && fp.is_multiple_of(8)
    {
        // SAFETY: [fp, fp + 16) lies inside the stack `stacks::info` found
        // RSP on, which is mapped.
        let (next, ret) = unsafe { ((fp as *const u64).read(), ((fp + 8) as *const u64).read()) };
        if !crate::debug::symbols::is_text(ret) {
            break;
        }
        rec.location[n] = ret;
        rec.depth[n] = stack.top - (fp + 8);
        n += 1;
        if next <= fp {
            break;
        }
        fp = next;
    }
    rec.entries = n;
    slot.release();
}

/// From `die`: this CPU will never return to what the oops interrupted.
/// If that was the hook, let the tracer run again on this CPU (and trace
/// the oops itself), and give back the record it was writing, emptied.
pub fn abandon_cpu() {
    let cpu = crate::arch::percpu::this_cpu();
    cpu.tracer_busy.store(0, Ordering::SeqCst);
    for (k, slot) in RECORDS.iter().enumerate() {
        if slot.owner.load(Ordering::Acquire) == cpu.id() {
            // SAFETY: owned by this CPU, whose writer will never resume.
            unsafe { *slot.record.get() = EMPTY };
            MAX[k].store(0, Ordering::SeqCst);
            slot.release();
        }
    }
}

fn filter() -> Option<&'static str> {
    // SAFETY: FILTER is null or a leaked, never freed String.
    unsafe { FILTER.load(Ordering::Acquire).as_ref() }.map(|s| s.as_str())
}

pub fn set_on(on: bool) {
    crate::arch::mcount::set(on.then_some(hook as crate::arch::mcount::McountHook));
}

pub fn is_on() -> bool {
    crate::arch::mcount::is_on()
}

/// Forget every maximum and record.
pub fn reset() {
    for (k, slot) in RECORDS.iter().enumerate() {
        slot.with(|rec| {
            MAX[k].store(0, Ordering::SeqCst);
            *rec = EMPTY;
        });
    }
}

pub fn set_filter(glob: Option<&str>) {
    let new = glob.map_or(core::ptr::null_mut(), |g| alloc::boxed::Box::into_raw(alloc::boxed::Box::new(g.into())));
    FILTER.store(new, Ordering::Release);
}

pub fn current_filter() -> Option<&'static str> {
    filter()
}

/// The deepest depth recorded on stacks of kind `k` (index into `KINDS`).
pub fn max_size(k: usize) -> u64 {
    MAX[k].load(Ordering::SeqCst)
}

/// A copy of kind `k`'s record, on the heap (a kilobyte: not for the
/// frame of the command that prints it). None: another CPU kept it busy
/// for 100 ms.
pub fn record(k: usize) -> Option<alloc::boxed::Box<Record>> {
    // SAFETY: a Record is integers only; all zeroes is a valid one.
    let mut copy: alloc::boxed::Box<Record> = unsafe { alloc::boxed::Box::new_zeroed().assume_init() };
    RECORDS[k].with(|rec| (*copy).clone_from(rec))?;
    Some(copy)
}
