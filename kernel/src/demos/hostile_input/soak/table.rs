//! What the soak runs: every demo that keeps the machine up, what each is
//! expected to do, and every command left out with the reason (a host test,
//! `conventions.rs`, checks that no command is in neither list).

/// One foreground entry: a command line, how many oopses it causes on
/// purpose (a range where the demo itself says either outcome is fine), and
/// whether it measures the whole machine (frames, NMI counts, stack cache)
/// and so needs the background threads paused while it runs.
pub struct Demo {
    pub line: &'static str,
    pub oopses: (u64, u64),
    pub exclusive: bool,
}

const fn d(line: &'static str) -> Demo {
    Demo { line, oopses: (0, 0), exclusive: false }
}
const fn oops(line: &'static str) -> Demo {
    Demo { line, oopses: (1, 1), exclusive: false }
}
const fn alone(line: &'static str) -> Demo {
    Demo { line, oopses: (0, 0), exclusive: true }
}

/// Every command soak leaves out, and why (a host test checks that each
/// command is either here or in `FOREGROUND`/`BACKGROUND`, so a new
/// chapter's demos cannot be forgotten). Also left out, as arguments of
/// commands that are in: `db 3` on the shell's own thread kills init (it
/// runs with `--cpu`); `nmi wait` and `mce wait` need the QEMU monitor;
/// `overflow --holding-lock` ends the boot.
pub static LEFT_OUT: &[(&str, &str)] = &[
    ("doublefault", "ends the boot when the #DF hits the shell's thread"),
    ("irq-overflow", "ends the boot (an overflow on the IRQ stack is fatal)"),
    ("nested-oops", "ends the boot"),
    ("panic", "ends the boot"),
    ("triple-fault", "ends the boot"),
    ("fail", "ends the boot"),
    ("poweroff", "ends the boot"),
    ("oops=panic", "makes the next intended oops end the boot"),
    ("kill", "needs a PID from an earlier command"),
    ("wait", "needs a PID from an earlier command"),
    ("ktest", "the in-kernel suite: its checks measure the whole machine and assume nothing else runs"),
    ("oom", "takes every frame (slow at 256 MiB; it has its own test)"),
    ("soak", "itself"),
    ("help", "prints the command table only"),
    ("echo", "prints its words only"),
    ("blk-stack", "keeps its RAM disk for later commands, so the frames are not back at the end"),
    ("blk-io", "needs blk-stack's RAM disk"),
    ("stack-limit-search", "bisects by overflowing: the number of oopses depends on the answer"),
    ("extrastacks", "boot parameter (first on the command line)"),
    ("stack-limit-default", "boot parameter: every later thread would get the limit"),
    ("stacktrace", "boot parameter (first on the command line)"),
    ("stack-tracer", "tracing every call slows every other demo down"),
    ("hardening", "turns a hardening off for every later demo"),
    ("entry-sweep", "arms breakpoints on the entry code of one CPU, which must run nothing else: every draw would pause the background (its own tests run it)"),
    ("nmi-user-rsp", "aims NMIs at one CPU, which must run nothing else: every draw would pause the background (its own tests run it)"),
    ("dynamic-stacks", "boot parameter: every later thread would get a dynamic stack (a soak of its own: `dynamic-stacks on` before `soak`)"),
];

/// Every demo that leaves the machine running.
pub static FOREGROUND: &[Demo] = &[
    d("ps"),
    d("stacks"),
    d("cpus"),
    d("irqs"),
    d("meminfo"),
    d("userstate"),
    d("spawn 4"),
    d("sleep 20"),
    oops("overflow"),
    oops("overflow --cpu 2"),
    oops("overrun"),
    alone("threads-stress 8 200"),
    d("bench switch"),
    d("bench spawn"),
    d("bench irq"),
    d("bench exceptions"),
    d("bench ipi"),
    d("bench syscall"),
    d("irqnest 3"),
    d("softirq"),
    d("softirq-flood 25"),
    d("irq-storm 500"),
    d("bt"),
    d("bt-irq"),
    d("bt-nmi"),
    d("stale"),
    d("chatter 30"),
    d("bt-all"),
    d("bt-ipi 1"),
    d("nmi-storm 1"),
    // The reader must run while the page is freed: no background load.
    Demo { line: "tlb-shootdown 3", oopses: (1, 1), exclusive: true },
    Demo { line: "tlb-shootdown 1 skip", oopses: (0, 1), exclusive: true },
    d("int3"),
    d("db 1"),
    d("db 2"),
    d("db 2 nmi"),
    Demo { line: "db 3 --cpu 1", oopses: (1, 1), exclusive: false },
    d("watch"),
    d("nmi"),
    d("mce"),
    d("nmi-mce"),
    d("oops=kill"),
    d("run hello soak"),
    d("run-many 10 true"),
    d("run uthreads"),
    d("run badcalls"),
    d("run segv"),
    d("run ud2"),
    d("run gpf"),
    d("run int3"),
    d("run watch"),
    d("run ustack-overflow"),
    d("run kstack 8000"),
    oops("run kstack 20000"),
    d("run stackleak"),
    d("run sysret noncanonical"),
    d("kstack-offset 50"),
    // Two planted kernel bugs end in the oopses SMAP and SMEP cause.
    Demo { line: "attacks", oopses: (2, 2), exclusive: true },
    alone("fuzz-syscalls 2000"),
    d("extra-stacks"),
    oops("extra-overflow"),
    oops("stack-sizes"),
    d("child-stack-size 16K"),
    // Counts the frames the stacks it allocates take: the background must not run.
    alone("threads-fit"),
    d("stack-max-size"),
    d("stack-trace"),
    d("stacktrace-filter off"),
    d("grow 12000"),
    d("grow 12000 --holding-lock"),
    d("grow 8000 --irq-at-edge"),
    oops("grow 20000"),
    // Takes #PF off its stack for every CPU: nothing else may grow meanwhile.
    Demo { line: "grow 12000 --pf-on-stack", oopses: (1, 1), exclusive: true },
    alone("grow 8000 --threads 64"),
    d("spawn --dynamic 4"),
];

/// What the background threads run, over and over: processes and threads
/// coming and going on every CPU while the foreground demos look.
pub static BACKGROUND: &[&str] =
    &["run true", "run hello bg", "run uthreads", "run segv", "run badcalls", "run-many 3 true", "spawn 2", "sleep 5"];
