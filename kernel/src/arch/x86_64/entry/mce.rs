//! The #MC handler (Linux `exc_machine_check` → `do_machine_check`, much
//! reduced): on the MCE IST stack, read and clear the banks, then resume or
//! die. The MSRs and hooks are `arch::mce`'s.

use core::sync::atomic::Ordering;

use crate::arch::mce::*;
use crate::arch::percpu::this_cpu;
use crate::arch::regs::Regs;
use crate::debug::oops::die;
use crate::println;
use crate::stacks::info;

/// What `do_machine_check` touches besides the per-CPU counters: the MCA
/// MSRs, the console and the dying path. `Hardware` is the real CPU; the
/// ktest below swaps in a recording fake to check the order of the writes.
trait MachineCheckHw {
    fn has_mca(&self) -> bool;
    fn rdmsr(&mut self, msr: u32) -> u64;
    fn wrmsr(&mut self, msr: u32, v: u64);
    fn report(&mut self, line: core::fmt::Arguments);
    /// The line of a software #MC (`int $18`), which a hook may silence.
    fn report_software(&mut self, line: core::fmt::Arguments) {
        self.report(line)
    }
    /// On hardware this never returns (`die`); a fake records it and returns.
    fn die(&mut self, regs: &mut Regs);
}

struct Hardware {
    /// A hook claimed this #MC: a software one is not reported.
    quiet_software: bool,
}

impl MachineCheckHw for Hardware {
    fn has_mca(&self) -> bool {
        supported()
    }
    fn rdmsr(&mut self, msr: u32) -> u64 {
        rdmsr(msr)
    }
    fn wrmsr(&mut self, msr: u32, v: u64) {
        wrmsr(msr, v)
    }
    fn report(&mut self, line: core::fmt::Arguments) {
        println!("{line}");
    }
    fn report_software(&mut self, line: core::fmt::Arguments) {
        if !self.quiet_software {
            println!("{line}");
        }
    }
    fn die(&mut self, regs: &mut Regs) {
        die("machine check", regs)
    }
}

pub fn handle(regs: &mut Regs) {
    // Every hook sees every #MC (no short cut after the first claim).
    let claimed = crate::arch::mce::hooks().filter(|hook| hook(regs)).count() > 0;
    let mut hw = Hardware { quiet_software: claimed };
    do_machine_check(&mut hw, regs)
}

// Never inlined: one frame of its own in traces, and an entry of
// checkstack's per-entry worst cases.
#[inline(never)]
fn do_machine_check(hw: &mut impl MachineCheckHw, regs: &mut Regs) {
    let cpu = this_cpu();
    crate::arch::mce::MCE_COUNT.this().fetch_add(1, Ordering::SeqCst);
    // #MC context, as NMI (Linux `do_machine_check` calls `nmi_enter`).
    // Inside an NMI: its handler, or its entry/exit stub on the NMI stack.
    // (`returns_into_nmi`: not by RSP alone, which the user may have chosen.)
    if super::nmi::returns_into_nmi(regs) {
        crate::arch::mce::MCE_IN_NMI.this().fetch_add(1, Ordering::SeqCst);
    }
    cpu.nmi_enter();
    let frame = regs as *const Regs as u64;
    let mca = hw.has_mca();
    let mcg_status = if mca { hw.rdmsr(MSR_MCG_STATUS) } else { 0 };
    let banks = if mca { (hw.rdmsr(MSR_MCG_CAP) & MCG_CAP_COUNT) as u32 } else { 0 };
    let mut valid = 0;
    for bank in 0..banks {
        let status = hw.rdmsr(mc_status(bank));
        if status & MCI_STATUS_VAL == 0 {
            continue;
        }
        valid += 1;
        // The registers as they are; STATUS.ADDRV/MISCV say whether the
        // hardware vouches for them (shown as "(valid)").
        let (addr, misc) = (hw.rdmsr(mc_addr(bank)), hw.rdmsr(mc_misc(bank)));
        let valid_tag = |bit: u64| if status & bit != 0 { " (valid)" } else { "" };
        hw.report(format_args!(
            "mce: CPU {}: Machine Check: bank {bank} status {status:#018x} addr {addr:#x}{} misc {misc:#x}{}",
            cpu.id(),
            valid_tag(MCI_STATUS_ADDRV),
            valid_tag(MCI_STATUS_MISCV)
        ));
        hw.wrmsr(mc_status(bank), 0);
    }
    let place = info::name_of(frame);
    if mcg_status & MCG_STATUS_MCIP == 0 {
        hw.report_software(format_args!(
            "mce: CPU {}: #MC handler ran on the {place} stack (frame {frame:016x}) with MCG_STATUS.MCIP clear: \
             a software int $18, {valid} valid banks",
            cpu.id()
        ));
        cpu.nmi_exit();
        return;
    }
    // MCIP stays set until the very end (Linux clears MCG_STATUS last in
    // `do_machine_check`): while it is set a second #MC shuts the CPU down
    // cleanly instead of starting over at the same IST top and overwriting
    // this live frame. The dying path never clears it.
    if mcg_status & MCG_STATUS_RIPV == 0 {
        hw.report(format_args!("mce: CPU {}: MCG_STATUS {mcg_status:#x}: RIPV clear, cannot resume", cpu.id()));
        hw.die(regs);
        return;
    }
    hw.report(format_args!(
        "mce: CPU {}: handled on the {place} stack (frame {frame:016x}), MCG_STATUS {mcg_status:#x}: RIPV set, resuming at {:016x}",
        cpu.id(),
        regs.rip
    ));
    cpu.nmi_exit();
    hw.wrmsr(MSR_MCG_STATUS, 0);
}

pub mod ktests {
    use alloc::string::String;
    use alloc::vec::Vec;

    use super::*;
    use crate::kcheck;
    use crate::ktest::{KResult, KTest};

    pub const KTESTS: &[KTest] = &[
        KTest { name: "mce_clears_mcip_last", run: mce_clears_mcip_last, oopses: false },
        KTest { name: "mce_dying_leaves_mcip_set", run: mce_dying_leaves_mcip_set, oopses: false },
    ];

    #[derive(Debug, PartialEq)]
    enum Event {
        Report(String),
        Write(u32, u64),
        Die,
    }

    /// Two banks, bank 1 holding an error; every access recorded in order.
    struct Fake {
        mcg_status: u64,
        events: Vec<Event>,
    }

    impl MachineCheckHw for Fake {
        fn has_mca(&self) -> bool {
            true
        }
        fn rdmsr(&mut self, msr: u32) -> u64 {
            match msr {
                MSR_MCG_CAP => 2,
                MSR_MCG_STATUS => self.mcg_status,
                m if m == mc_status(1) => MCI_STATUS_VAL | MCI_STATUS_ADDRV | 0x1234,
                _ => 0,
            }
        }
        fn wrmsr(&mut self, msr: u32, v: u64) {
            self.events.push(Event::Write(msr, v));
        }
        fn report(&mut self, line: core::fmt::Arguments) {
            self.events.push(Event::Report(alloc::format!("{line}")));
        }
        fn die(&mut self, _regs: &mut Regs) {
            self.events.push(Event::Die);
        }
    }

    fn run_fake(mcg_status: u64) -> Vec<Event> {
        let mut fake = Fake { mcg_status, events: Vec::new() };
        let mut regs = Regs::default();
        let cpu = this_cpu();
        let depth = cpu.nmi_depth();
        do_machine_check(&mut fake, &mut regs);
        // The fake dying path returns with the #MC context still counted.
        cpu.set_nmi_depth(depth);
        fake.events
    }

    /// A recoverable machine check: the bank is cleared, everything is
    /// reported, and only then MCG_STATUS (MCIP) is written: the last access.
    fn mce_clears_mcip_last() -> KResult {
        let events = run_fake(MCG_STATUS_MCIP | MCG_STATUS_RIPV);
        let writes: Vec<_> = events.iter().filter(|e| matches!(e, Event::Write(..))).collect();
        kcheck!(writes == [&Event::Write(mc_status(1), 0), &Event::Write(MSR_MCG_STATUS, 0)], "writes {writes:?}");
        kcheck!(events.last() == Some(&Event::Write(MSR_MCG_STATUS, 0)), "MCG_STATUS not written last: {events:?}");
        let reports = events.iter().filter(|e| matches!(e, Event::Report(_))).count();
        kcheck!(reports == 2, "expected the bank line and the resume line: {events:?}");
        Ok(())
    }

    /// Without RIPV the handler dies with MCIP still set, so a second #MC
    /// shuts the CPU down instead of reusing the live #MC stack.
    fn mce_dying_leaves_mcip_set() -> KResult {
        let events = run_fake(MCG_STATUS_MCIP);
        kcheck!(events.last() == Some(&Event::Die), "the dying path did not end in die: {events:?}");
        kcheck!(
            !events.iter().any(|e| matches!(e, Event::Write(MSR_MCG_STATUS, _))),
            "MCG_STATUS written on the dying path: {events:?}"
        );
        Ok(())
    }
}
