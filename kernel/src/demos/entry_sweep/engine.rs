//! The sweep's mechanism: one instruction X armed as an execute breakpoint
//! on the target CPU; when X is reached the #DB hook makes the chosen
//! event pending there, so it arrives as the #DB returns, before X runs —
//! an NMI or #MC delivered by the #DB exit exactly as the CPU delivers one
//! (`arch::debug::deliver_at_return`), an IRQ as a real self-IPI the CPU
//! takes when the #DB's IRET restores IF. The event's own handler checks
//! that it interrupted X.

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};

use crate::arch::debug::{self, DebugEvent, DebugKind};
use crate::arch::percpu::this_cpu;
use crate::arch::regs::Regs;
use crate::arch::vectors::{ENTRY_SWEEP_VECTOR, LOCAL_TIMER_VECTOR, X86_TRAP_MC, X86_TRAP_NMI};
use crate::arch::{apic, irq, mce, nmi};
use crate::layout::{estack_range, EStack};
use crate::smp;
use crate::time::spin_until;

/// The events the sweep delivers at an instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Event {
    Nmi = 1,
    Irq = 2,
    Mce = 3,
}

impl Event {
    pub const ALL: [Event; 3] = [Event::Nmi, Event::Irq, Event::Mce];

    pub fn name(self) -> &'static str {
        match self {
            Event::Nmi => "nmi",
            Event::Irq => "irq",
            Event::Mce => "mce",
        }
    }
}

/// The breakpoint slot the sweep arms (the demos' `db`/`watch` use 0, user
/// watchpoints 3).
const SWEEP_SLOT: u8 = 1;
/// The carrier breakpoint: an #MC delivered at it on every pass (the
/// path "return into NMI context" exists only below such an #MC).
const CARRIER_SLOT: u8 = 2;
static CARRIER: AtomicU64 = AtomicU64::new(0);

/// How long an instruction may take to be reached, and an event to arrive.
pub const WAIT_MS: u64 = 30;
/// How long an instruction already reached once may take to be reached
/// again (a trigger that starts a process per pass can be slow under load).
pub const WAIT_AGAIN_MS: u64 = 500;

static TARGET: AtomicUsize = AtomicUsize::new(usize::MAX);
/// The armed instruction (0 once its #DB came, or when given up).
static ARMED: AtomicU64 = AtomicU64::new(0);
/// The instruction of the current trial, for the event handlers.
static AT: AtomicU64 = AtomicU64::new(0);
static EVENT: AtomicU8 = AtomicU8::new(0);
static HIT: AtomicBool = AtomicBool::new(false);
static MASKED: AtomicBool = AtomicBool::new(false);
static DELIVERED: AtomicBool = AtomicBool::new(false);
/// Sweep IRQs that interrupted something other than X (must stay 0).
pub static STRAY_IRQS: AtomicU64 = AtomicU64::new(0);

pub fn init() {
    debug::register_debug_hook(db_hook);
    nmi::register_nmi_handler(nmi_seen);
    mce::register_mce_hook(mce_seen);
    irq::register(ENTRY_SWEEP_VECTOR, irq_seen, "LAPIC  self-IPI entry-sweep");
}

fn on_target() -> bool {
    this_cpu().id() == TARGET.load(Ordering::Relaxed)
}

fn event() -> Option<Event> {
    Event::ALL.into_iter().find(|e| *e as u8 == EVENT.load(Ordering::Relaxed))
}

/// At X (on the #DB stack): make the event pending, or say it could not
/// arrive here on a real CPU (NMIs blocked, IF clear, on the #MC stack: a
/// second #MC would shut the CPU down). Decided from the hardware state
/// and the sweep's own knowledge, never by the kernel code under test.
fn db_hook(regs: &mut Regs, ev: &DebugEvent) -> bool {
    if ev.kind == DebugKind::Db && ev.slot == Some(CARRIER_SLOT) {
        let carrier = CARRIER.load(Ordering::SeqCst);
        if on_target() && carrier == regs.rip {
            // One-shot (the slot is disarmed already): the #MC returns
            // without IRET, which cannot set RF, so a breakpoint still armed
            // here would fire again at once. The trigger re-arms it.
            crate::arch::entry::debug::deliver_at_return(regs, X86_TRAP_MC);
        }
        return true;
    }
    if ev.kind != DebugKind::Db || ev.slot != Some(SWEEP_SLOT) {
        return false;
    }
    if !on_target() || ARMED.swap(0, Ordering::SeqCst) != regs.rip {
        return true; // ours, but given up on: nothing to deliver
    }
    let masked = match event() {
        // Inside the NMI handler (paths driven by NMIs get no NMI event).
        Some(Event::Nmi) => this_cpu().nmi_depth() > 0,
        Some(Event::Irq) => regs.rflags & crate::arch::regs::RFLAGS_IF == 0,
        Some(Event::Mce) => {
            let (bottom, top) = estack_range(this_cpu().id(), EStack::MCE);
            (bottom..=top).contains(&regs.rsp)
        }
        None => true,
    };
    if masked {
        MASKED.store(true, Ordering::SeqCst);
    } else {
        match event() {
            Some(Event::Nmi) => crate::arch::entry::debug::deliver_at_return(regs, X86_TRAP_NMI),
            Some(Event::Mce) => crate::arch::entry::debug::deliver_at_return(regs, X86_TRAP_MC),
            Some(Event::Irq) => {
                // The worst case every time: a timer tick pending at the
                // same moment. It must not be delivered first (its exit runs
                // softirqs with interrupts on, where the sweep's IRQ would
                // land): ENTRY_SWEEP_VECTOR is above it. With a demo vector
                // (below the timer's) this lost every IRQ of `call_on_stack`.
                apic::send_self_ipi(LOCAL_TIMER_VECTOR);
                apic::send_self_ipi(ENTRY_SWEEP_VECTOR)
            }
            None => {}
        }
    }
    HIT.store(true, Ordering::SeqCst);
    true
}

/// An event's handler: did it interrupt X?
fn seen(kind: Event, regs: &Regs) -> bool {
    let ours = on_target() && event() == Some(kind) && HIT.load(Ordering::SeqCst);
    if ours && regs.rip == AT.load(Ordering::SeqCst) && !regs.from_user() {
        DELIVERED.store(true, Ordering::SeqCst);
    }
    ours
}

fn nmi_seen(regs: &Regs) {
    seen(Event::Nmi, regs);
}

fn mce_seen(regs: &Regs) -> bool {
    seen(Event::Mce, regs) || super::triggers::claims_mce()
}

fn irq_seen(regs: &mut Regs) {
    seen(Event::Irq, regs);
    if regs.rip != AT.load(Ordering::SeqCst) {
        STRAY_IRQS.fetch_add(1, Ordering::Relaxed);
    }
}

/// How one instruction's trial ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Never executed while armed.
    NotReached,
    /// Reached; the event arrived at X.
    Delivered,
    /// Reached; a real CPU could not take the event there.
    Masked,
    /// Reached; the event was due but never arrived at X.
    Lost,
}

fn arm(x: u64) {
    debug::arm_execute(SWEEP_SLOT, x);
}

fn disarm(_: u64) {
    debug::disarm(SWEEP_SLOT);
}

fn disarm_carrier(_: u64) {
    debug::disarm(CARRIER_SLOT);
}

/// Deliver an #MC at `at` on the target CPU once after each
/// `rearm_carrier` there (None: stop).
pub fn set_carrier(at: Option<u64>) {
    CARRIER.store(at.unwrap_or(0), Ordering::SeqCst);
    if at.is_none() {
        smp::call_on(core::iter::once(TARGET.load(Ordering::SeqCst)), disarm_carrier, 0);
    }
}

/// On the target CPU, from the trigger's thread: arm the carrier for the
/// next pass (interrupts off: the sweep's IPI also writes DR7).
pub fn rearm_carrier() {
    let carrier = CARRIER.load(Ordering::SeqCst);
    if carrier != 0 {
        ::x86_64::instructions::interrupts::without_interrupts(|| debug::arm_execute(CARRIER_SLOT, carrier));
    }
}

/// Set the CPU the sweep arms its breakpoints on.
pub fn set_target(cpu: usize) {
    TARGET.store(cpu, Ordering::SeqCst);
}

/// Arm X on the target CPU with `event`, wait up to `reach_ms` for it to be
/// reached (calling `feed` meanwhile, e.g. to send NMIs) and for the event
/// to settle.
pub fn trial(x: u64, event: Event, reach_ms: u64, mut feed: impl FnMut()) -> Outcome {
    let target = TARGET.load(Ordering::SeqCst);
    HIT.store(false, Ordering::SeqCst);
    MASKED.store(false, Ordering::SeqCst);
    DELIVERED.store(false, Ordering::SeqCst);
    EVENT.store(event as u8, Ordering::SeqCst);
    AT.store(x, Ordering::SeqCst);
    ARMED.store(x, Ordering::SeqCst);
    smp::call_on(core::iter::once(target), arm, x);
    let reached = spin_until(reach_ms, || {
        feed();
        HIT.load(Ordering::SeqCst)
    });
    if !reached {
        // Give up first (a late #DB then delivers nothing), then disarm.
        if ARMED.swap(0, Ordering::SeqCst) != 0 {
            smp::call_on(core::iter::once(target), disarm, 0);
            return Outcome::NotReached;
        }
    }
    let settled = spin_until(WAIT_MS, || MASKED.load(Ordering::SeqCst) || DELIVERED.load(Ordering::SeqCst));
    EVENT.store(0, Ordering::SeqCst);
    match (settled, MASKED.load(Ordering::SeqCst)) {
        (_, true) => Outcome::Masked,
        (true, false) => Outcome::Delivered,
        (false, false) => Outcome::Lost,
    }
}
