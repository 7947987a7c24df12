//! Backtraces across every stack (docs/backtraces.md): `bt`, `bt PID`,
//! `bt-irq`, `bt-nmi`, `stale`.

use core::hint::black_box;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::arch::regs::Regs;
use crate::arch::{apic, cpu, irq, nmi};
use crate::cmd::cmdline::{self, ArgError};
use crate::cmd::{CmdError, CmdResult};
use crate::debug::backtrace::print_trace;
use crate::time::{spin_until, SPIN_WAIT_MS};
use crate::{println, sched};

/// The self-IPI vectors of `bt-irq` and `bt-nmi`, claimed at init.
static BT_IRQ_OUTER_VECTOR: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);
static BT_IRQ_INNER_VECTOR: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);
static BT_NMI_VECTOR: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);

pub fn init() {
    BT_IRQ_OUTER_VECTOR.store(irq::claim(bt_irq_outer, "LAPIC  self-IPI bt-irq (outer)"), Ordering::Relaxed);
    BT_IRQ_INNER_VECTOR.store(irq::claim(bt_irq_inner, "LAPIC  self-IPI bt-irq (inner)"), Ordering::Relaxed);
    BT_NMI_VECTOR.store(irq::claim(bt_nmi_irq, "LAPIC  self-IPI bt-nmi"), Ordering::Relaxed);
    BT_SOFTIRQ.claim(bt_softirq);
    nmi::register_nmi_handler(bt_nmi_handler);
}

/// The softirq level of `bt-irq`'s nest.
static BT_SOFTIRQ: crate::softirq::Claimed = crate::softirq::Claimed::new();

/// Print the trace of the code calling this (its caller's frames on).
#[inline(never)]
fn trace_here() {
    print_trace(cpu::stack_pointer(), cpu::frame_pointer());
}

pub fn bt(args: &[&str]) -> CmdResult {
    match args {
        [] => {
            trace_here();
            Ok(())
        }
        [pid] => {
            let pid = cmdline::number("PID", pid, 0..=u64::from(u32::MAX))? as u32;
            // Interrupts off: the task must not run while its stack is read.
            // (A task on another CPU can still run: its stack stays pinned.)
            x86_64::instructions::interrupts::without_interrupts(|| match sched::saved_context(pid) {
                Some(ctx) => {
                    println!("bt: {} ({pid}), sleeping:", ctx.name);
                    // The switch frame is a frame record: [rbp_slot] = the
                    // caller's RBP, [rbp_slot + 8] = where it resumes.
                    print_trace(ctx.saved_rsp, ctx.rbp_slot);
                    Ok(())
                }
                None => Err(CmdError::Failed(alloc::format!(
                    "no sleeping or runnable task with pid {pid} (see ps; the running one is `bt`)"
                ))),
            })
        }
        [_, extra, ..] => Err(ArgError::Unexpected((*extra).into()).into()),
    }
}

// --- bt-irq: IRQ -> softirq -> nested IRQ, trace from the innermost ----------

static BT_STEP: AtomicU32 = AtomicU32::new(0);

fn bt_irq_outer(_: &mut Regs) {
    BT_SOFTIRQ.raise();
}

fn bt_softirq() {
    if BT_STEP.load(Ordering::SeqCst) != 1 {
        return;
    }
    apic::send_self_ipi(BT_IRQ_INNER_VECTOR.load(Ordering::Relaxed));
    while BT_STEP.load(Ordering::SeqCst) < 2 {
        core::hint::spin_loop();
    }
}

fn bt_irq_inner(_: &mut Regs) {
    println!("bt-irq: in a hard IRQ nested in a softirq of a hard IRQ:");
    trace_here();
    BT_STEP.store(2, Ordering::SeqCst);
}

pub fn bt_irq(args: &[&str]) -> CmdResult {
    cmdline::no_args(args)?;
    BT_STEP.store(1, Ordering::SeqCst);
    apic::send_self_ipi(BT_IRQ_OUTER_VECTOR.load(Ordering::Relaxed));
    let done = spin_until(SPIN_WAIT_MS, || BT_STEP.load(Ordering::SeqCst) >= 2);
    BT_STEP.store(0, Ordering::SeqCst);
    if done {
        Ok(())
    } else {
        Err(CmdError::Failed("the nested interrupt never arrived".into()))
    }
}

// --- bt-nmi: an NMI interrupting an IRQ handler -----------------------------

/// Set while the `bt-nmi` demo wants its NMI handler to print its trace.
static NMI_BACKTRACE: AtomicBool = AtomicBool::new(false);
static BT_NMI_DONE: AtomicBool = AtomicBool::new(false);

fn bt_nmi_irq(_: &mut Regs) {
    // In the IRQ handler: NMI ourselves; its handler prints the trace.
    if !nmi::self_nmi_quiet() {
        println!("bt-nmi: no NMI arrived");
    }
    BT_NMI_DONE.store(true, Ordering::SeqCst);
}

/// Runs on every NMI; prints only while `NMI_BACKTRACE` is set. Allowed to
/// print: the interrupted IRQ handler holds no lock (it is spinning), the
/// console writes through for its own CPU, and the unwinder allocates nothing.
fn bt_nmi_handler(_: &Regs) {
    if !NMI_BACKTRACE.load(Ordering::SeqCst) {
        return;
    }
    println!("bt-nmi: NMI backtrace for cpu {}", crate::arch::percpu::current_cpu_id());
    trace_here();
}

pub fn bt_nmi(args: &[&str]) -> CmdResult {
    cmdline::no_args(args)?;
    BT_NMI_DONE.store(false, Ordering::SeqCst);
    NMI_BACKTRACE.store(true, Ordering::SeqCst);
    apic::send_self_ipi(BT_NMI_VECTOR.load(Ordering::Relaxed));
    let done = spin_until(SPIN_WAIT_MS, || BT_NMI_DONE.load(Ordering::SeqCst));
    NMI_BACKTRACE.store(false, Ordering::SeqCst);
    if done {
        Ok(())
    } else {
        Err(CmdError::Failed("the interrupt never arrived".into()))
    }
}

// --- stale: a return address left behind on the stack -------------------------

/// Whose address `stale` leaves on the stack.
#[inline(never)]
pub fn stale_marker() -> u64 {
    black_box(0x5a1e)
}

#[inline(never)]
fn plant_stale() {
    // A dead local holding what looks like a return address into
    // stale_marker: exactly what stale stack memory looks like.
    let mut slots = [0u64; 8];
    slots[4] = stale_marker as *const () as u64 + 1;
    black_box(&mut slots);
}

pub fn stale(args: &[&str]) -> CmdResult {
    cmdline::no_args(args)?;
    plant_stale();
    println!(
        "stale: left {:#x} (stale_marker+0x1) in a dead frame; the trace must print it with '? ':",
        stale_marker as *const () as u64 + 1
    );
    deep_trace(black_box(3));
    Ok(())
}

/// Recurse a little so the trace's own frames cover the dead one.
#[inline(never)]
fn deep_trace(n: u64) {
    let pad = [0u8; 32];
    black_box(&pad);
    if n == 0 {
        trace_here();
    } else {
        deep_trace(n - 1);
    }
}
