//! The demonstrations: every shell command that shows a stack at work, one
//! file per chapter of `docs/` (with its scenario tests in
//! `tests/scenarios/<chapter>.rs`). Linux keeps its crash demos apart in the
//! same way (`drivers/misc/lkdtm`): demos call the mechanisms, and a
//! mechanism reaches a demo only through a hook the demo registered (an NMI
//! handler, a #DB hook, a claimed softirq, an interrupt vector).

pub mod backtraces;
pub mod dynamic_stacks;
pub mod entry_sweep;
pub mod foundation;
pub mod hostile_input;
pub mod irq;
pub mod ist;
pub mod performance;
pub mod running_out_of_stack;
pub mod smp;
pub mod stack_tools;
pub mod threads;
pub mod user_mode;

use crate::cmd::Spec;
use crate::ktest::KTest;

/// Register every demo's vectors, softirqs and hooks (from init, once).
pub fn init() {
    ist::init();
    irq::init();
    backtraces::init();
    performance::init();
    smp::nmi_storm::init();
    user_mode::init();
    entry_sweep::init();
}

/// The demos' ktests (the runner collects these with the mechanisms').
pub static KTESTS: &[&[KTest]] =
    &[ist::ktests::KTESTS, irq::ktests::KTESTS, entry_sweep::fences::KTESTS, dynamic_stacks::ktests::KTESTS];

/// The commands, by chapter (the foundation's first); the shell adds `help`.
#[rustfmt::skip]
pub static COMMANDS: &[Spec] = &[
    Spec { name: "echo", usage: "[WORD...]", help: "print the words", run: foundation::echo },
    Spec { name: "meminfo", usage: "", help: "free/used frames, heap and vmap area usage", run: foundation::meminfo },
    Spec { name: "ktest", usage: "[-q] [FILTER]", help: "run the in-kernel tests (names containing FILTER); -q: verdicts only", run: foundation::ktest_cmd },
    Spec { name: "panic", usage: "[MESSAGE...]", help: "Rust panic: the panic path, then failure", run: foundation::panic_cmd },
    Spec { name: "triple-fault", usage: "", help: "load an empty IDT and trap: the CPU resets", run: foundation::triple_fault },
    Spec { name: "fail", usage: "", help: "end the boot reporting failure (runner status 1)", run: foundation::fail },
    Spec { name: "poweroff", usage: "", help: "end the boot reporting success (runner status 0)", run: foundation::poweroff },
    Spec { name: "ps", usage: "", help: "tasks (sysrq-t shape) with free stack bytes; per-CPU IST stack high-water marks", run: threads::ps },
    Spec { name: "spawn", usage: "[--stack-size 4K|8K|16K|32K] [--stack-limit BYTES] [--dynamic] N", help: "start N worker threads (yield/sleep loops with a checksum), on stacks of size S (4K 8K 16K 32K), with a stack limit of B bytes, or on dynamic 16K stacks", run: threads::spawn },
    Spec { name: "sleep", usage: "MS", help: "sleep MS milliseconds (the shell thread blocks; others run)", run: threads::sleep },
    Spec { name: "overflow", usage: "[--holding-lock]", help: "a thread recurses into its guard page: #DF, oops, the thread dies, the system carries on (with a spin lock held: panic)", run: threads::overflow },
    Spec { name: "overrun", usage: "", help: "a thread overwrites its STACK_END_MAGIC: caught at the next switch", run: threads::overrun },
    Spec { name: "threads-stress", usage: "N M", help: "N threads x M switches: checksums, and no frames or vmap space leaked", run: threads::threads_stress },
    Spec { name: "bench", usage: "[all|switch|spawn|irq|exceptions|ipi|syscall|yield-user|tracer|dynamic]", help: "per operation, min and median, beside its physical minimum: yield round trip, spawn + join (cached and new stack), IRQ entry with and without the IRQ-stack switch, #BP/#DB/NMI entries on their IST stacks, cross-CPU call, syscall from user mode, the tracer's cost, a growth fault and spawn + join on dynamic stacks (instructions under ./x bench)", run: performance::bench },
    Spec { name: "irqs", usage: "", help: "/proc/interrupts-style counts per vector and CPU, nesting depth", run: irq::irqs },
    Spec { name: "irqnest", usage: "N", help: "N nested self-IPIs: level 1 switches to the IRQ stack, deeper levels stay", run: irq::irqnest },
    Spec { name: "softirq", usage: "", help: "hard IRQ -> softirq -> nested hard IRQ, all on the IRQ stack", run: irq::softirq_cmd },
    Spec { name: "softirq-flood", usage: "N", help: "a softirq that re-raises itself N times: 10 rounds at the IRQ exit, the rest in ksoftirqd", run: irq::softirq_flood },
    Spec { name: "irq-storm", usage: "N", help: "N self-IPIs while threads switch: none lost, checksums intact", run: irq::irq_storm },
    Spec { name: "irq-overflow", usage: "", help: "an IRQ handler recurses into the IRQ stack's guard page: #DF, oops", run: irq::irq_overflow },
    Spec { name: "bt", usage: "[PID]", help: "backtrace of the shell, or of a sleeping thread from its saved frame", run: backtraces::bt },
    Spec { name: "bt-irq", usage: "", help: "backtrace from a hard IRQ nested in a softirq of a hard IRQ: <IRQ> markers", run: backtraces::bt_irq },
    Spec { name: "bt-nmi", usage: "", help: "backtrace from an NMI that interrupted an IRQ handler: <NMI>, <IRQ>, task", run: backtraces::bt_nmi },
    Spec { name: "stale", usage: "", help: "leave a stale return address on the stack; the trace prints it with '? '", run: backtraces::stale },
    Spec { name: "cpus", usage: "", help: "each CPU: APIC id, online, its IRQ stack and IST stack tops (from its live TSS), current task", run: smp::cpus },
    Spec { name: "chatter", usage: "MS", help: "a thread prints a line in a loop for MS ms (to race bt-all or a panic for the console)", run: smp::chatter },
    Spec { name: "bt-all", usage: "", help: "this CPU's backtrace, then every other CPU's, taken by NMI (sysrq-l)", run: smp::bt_all },
    Spec { name: "bt-ipi", usage: "CPU", help: "CPU's backtrace from a function-call IPI handler: on its IRQ stack, then what it interrupted (user mode too)", run: smp::bt_ipi },
    Spec { name: "nmi-storm", usage: "SECONDS", help: "NMIs to every other CPU while they run self-IPIs, switches and nested #DB; every count must add up", run: smp::nmi_storm::nmi_storm },
    Spec { name: "tlb-shootdown", usage: "CPU [skip]", help: "free a page another CPU reads: its next read faults (skip: no shoot-down, it reads freed memory)", run: smp::tlb_shootdown },
    Spec { name: "stack-tracer", usage: "on|off|reset", help: "the stack tracer: on every kernel function entry, the deepest depth per stack kind and its call chain", run: stack_tools::stack_tracer },
    Spec { name: "stacktrace", usage: "", help: "boot parameter: start the stack tracer (first on the command line)", run: stack_tools::stacktrace },
    Spec { name: "stacktrace-filter", usage: "[GLOB|off]", help: "trace only entries of functions whose name matches GLOB (* and ?)", run: stack_tools::stacktrace_filter },
    Spec { name: "stack-trace", usage: "[KIND]", help: "Linux's stack_trace table of the deepest recorded chain, per stack kind (TASK IRQ #DF NMI #DB #DB1 #MC)", run: stack_tools::stack_trace },
    Spec { name: "stack-max-size", usage: "[KIND]", help: "the deepest depth recorded (TASK, or the kind given)", run: stack_tools::stack_max_size },
    Spec { name: "oops=panic", usage: "", help: "setting: an oops in a thread panics the kernel (default oops=kill kills the thread)", run: |_| threads::set_oops("panic") },
    Spec { name: "oops=kill", usage: "", help: "setting: an oops in a thread kills only that thread", run: |_| threads::set_oops("kill") },
    Spec { name: "stacks", usage: "", help: "every stack of every CPU, read from the live TSS and page tables", run: ist::stacks },
    Spec { name: "int3", usage: "", help: "breakpoint instruction: #BP on the #DB stack", run: ist::int3 },
    Spec { name: "db", usage: "N [nmi]", help: "N=1..3 nested #DB: #DB, #DB1, then the DB2 hole; nmi: self-NMI at the deepest level", run: ist::db },
    Spec { name: "watch", usage: "", help: "data-write hardware breakpoint (DR0, DR7 RW=01) hit once", run: ist::watch },
    Spec { name: "nmi", usage: "[wait]", help: "self-NMI through the local APIC: runs on the NMI stack; wait: for one from the QEMU monitor", run: ist::nmi },
    Spec { name: "mce", usage: "[wait]", help: "#MC by int $18 on the MCE stack; wait: for a real one (QEMU monitor `mce`)", run: ist::mce },
    Spec { name: "nmi-mce", usage: "", help: "an #MC inside an NMI handler with another NMI pending: the #MC returns without IRET", run: ist::nmi_mce },
    Spec { name: "doublefault", usage: "", help: "force a #DF that is not an overflow (oops)", run: ist::doublefault },
    Spec { name: "run", usage: "[--bg] PROG [ARGS...]", help: "run a user program in a new process (ring 3); --bg: do not wait", run: user_mode::run },
    Spec { name: "run-many", usage: "N PROG [ARGS...]", help: "run PROG N times in turn; one summary line (process setup and teardown)", run: user_mode::run_many },
    Spec { name: "wait", usage: "[PID]", help: "wait for a background process (default: all of this shell's) and report its status", run: user_mode::wait },
    Spec { name: "kill", usage: "PID", help: "end a user process at its next return to user mode, and reap it", run: user_mode::kill },
    Spec { name: "userstate", usage: "", help: "per CPU: syscalls, returns by SYSRET/IRET, frames moved off IST stacks, return-to-user check violations", run: user_mode::userstate },
    Spec { name: "hardening", usage: "[randomize_kstack_offset on|off | stackleak on|off]", help: "randomize_kstack_offset and stackleak (both on by default)", run: user_mode::hardening },
    Spec { name: "kstack-offset", usage: "[N]", help: "N syscalls: how many distinct random kernel stack offsets, and their range", run: user_mode::kstack_offset },
    Spec { name: "attacks", usage: "", help: "every attack program against real kernel addresses: each must fail safely, the kernel stay intact", run: hostile_input::attacks_cmd },
    Spec { name: "fuzz-syscalls", usage: "N [SEED]", help: "N random syscalls from one fuzzer process per CPU, NMIs landing throughout: no oops, no violation, no lost frame", run: hostile_input::fuzz_syscalls },
    Spec { name: "oom", usage: "", help: "start processes until memory runs out: a clean error, then every frame back after killing them", run: hostile_input::oom },
    Spec { name: "soak", usage: "SECONDS [SEED]", help: "every demo that keeps the machine up, in random order, with user programs in the background on the other CPUs; tallies and memory before/after", run: hostile_input::soak::soak },
    Spec { name: "blk-stack", usage: "LAYERS", help: "a RAM disk under LAYERS stacked drivers (linear, crypt, integrity, loop, mirror): the nested I/O of Owens' RFC", run: running_out_of_stack::blk_stack },
    Spec { name: "blk-io", usage: "[--threads T] [--blocks N] [--hold]", help: "T threads write, read back and verify N blocks each through the block stack; the depth reached on each stack", run: running_out_of_stack::blk_io },
    Spec { name: "extra-stacks", usage: "[N | on | off | threshold BYTES]", help: "the extra-stack pool: total, free, in use, high-water, switches, -EIO; N: a new total (never below the number in use)", run: running_out_of_stack::extra_stacks },
    Spec { name: "extra-overflow", usage: "", help: "a thread on an extra stack recurses into its guard page: oops, killed, the stack back in the pool", run: running_out_of_stack::extra_overflow },
    Spec { name: "extrastacks", usage: "PER_CPU [THRESHOLD]", help: "boot parameter: PER_CPU extra stacks for each CPU, and the threshold in bytes of stack used (of a 16 KiB stack: the pool steps in when less than 16 KiB minus it is left)", run: running_out_of_stack::extrastacks },
    Spec { name: "child-stack-size", usage: "[PID] 4K|8K|16K|32K", help: "the stack size (4K 8K 16K 32K) children of PID (default: the shell) get; inherited", run: running_out_of_stack::child_stack_size },
    Spec { name: "stack-sizes", usage: "", help: "mixed stack sizes: a shallow worker on 4 KiB, a deep one on 16 KiB, the deep work on 4 KiB (overflows)", run: running_out_of_stack::stack_sizes },
    Spec { name: "stack-limit-default", usage: "BYTES|off", help: "boot parameter: every new 16 KiB thread gets a stack limit of BYTES (a guard page inside its stack)", run: running_out_of_stack::stack_limit_default },
    Spec { name: "stack-limit-search", usage: "deep LEVELS | blk-io", help: "by bisection, the smallest stack limit under which the workload completes, beside its measured stack usage", run: running_out_of_stack::stack_limit_search },
    Spec { name: "threads-fit", usage: "", help: "how many threads fit in memory with 4, 8, 16 and 32 KiB stacks (frames per stack measured)", run: running_out_of_stack::threads_fit },
    Spec { name: "entry-sweep", usage: "[nmi|irq|mce|all] [--from user|kernel|both]", help: "an execute breakpoint on every instruction of every entry and exit path, and at each an NMI, IRQ or #MC delivered right there: the kernel must hold", run: entry_sweep::entry_sweep },
    Spec { name: "nmi-user-rsp", usage: "N", help: "a user program loops on syscall with RSP = another CPU's NMI stack while N NMIs hit that CPU (run with --singlestep)", run: entry_sweep::nmi_user_rsp },
    Spec { name: "dynamic-stacks", usage: "[on [PAGES]|off]", help: "boot parameter and setting: new 16K threads get stacks that grow on demand, PAGES (1-3, default 1) of them backed from the start (on), or fixed ones (off, the default); no argument: the state", run: dynamic_stacks::dynamic_stacks },
    Spec { name: "grow", usage: "BYTES [--holding-lock] [--pf-on-stack] [--irq-at-edge] [--threads N]", help: "a thread on a dynamic stack uses BYTES of it: pages added by faults on the #PF stack (past 16K: the guard page); --holding-lock: with the frame allocator's lock held; --pf-on-stack: #PF without its own stack, the RFC's #DF; --irq-at-edge: first an interrupt whose frame is the first touch of a page; --threads N: N threads in waves of 32, then every frame must be back", run: dynamic_stacks::grow },
    Spec { name: "nested-oops", usage: "", help: "fault inside the oops printer: the recursion guard prints one line and stops", run: ist::nested_oops },
];
