//! In-kernel tests: things only real hardware state can show (page tables,
//! the direct map, the running kernel's addresses). Run by the `ktest`
//! command; each prints `ktest <name> ... ok|FAILED` and the run ends with
//! `N passed, M failed`.

use alloc::string::String;

pub type KResult = Result<(), String>;

/// Fail the current ktest with a message unless `cond` holds.
#[macro_export]
macro_rules! kcheck {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(alloc::format!("{} ({}:{})", format_args!($($fmt)+), file!(), line!()));
        }
    };
}

pub struct KTest {
    pub name: &'static str,
    pub run: fn() -> KResult,
    /// The test kills a thread by an oops on purpose: its dumps are
    /// announced as expected, and a test without this flag that oopses fails.
    pub oopses: bool,
}

/// How `run` runs: `quiet` drops what the tests print (their oops dumps
/// too) and keeps the verdicts; `oops_count` is the oops layer's counter,
/// handed down by the `ktest` command (the oops code is above this one).
pub struct RunOptions {
    pub quiet: bool,
    pub oops_count: fn() -> u32,
}

/// Suites of layers above the `ktest` command (boot's), handed down at init.
static HANDED_DOWN: crate::sync::IrqMutex<alloc::vec::Vec<&'static [KTest]>> =
    crate::sync::IrqMutex::new(alloc::vec::Vec::new());

/// Add `suite` to the ones the `ktest` command runs first (a layer above
/// the command registers its own this way).
pub fn hand_down(suite: &'static [KTest]) {
    HANDED_DOWN.lock().push(suite);
}

/// The suites handed down, in the order they came.
pub fn handed_down() -> alloc::vec::Vec<&'static [KTest]> {
    HANDED_DOWN.lock().clone()
}

/// Run the tests of `suites` whose name contains `filter`; returns (passed,
/// failed). The caller (the `ktest` command) lists the suites, so this
/// runner names no module above it.
pub fn run(suites: &[&[KTest]], filter: Option<&str>, opts: &RunOptions) -> (usize, usize) {
    let (mut passed, mut failed) = (0, 0);
    for t in suites.iter().copied().flatten().filter(|t| filter.is_none_or(|f| t.name.contains(f))) {
        if t.oopses && !opts.quiet {
            crate::println!("ktest {}: (expected oops) it kills a thread on purpose; the dumps below are its", t.name);
        }
        let oopses0 = (opts.oops_count)();
        crate::console::set_muted(opts.quiet);
        let result = (t.run)();
        crate::console::set_muted(false);
        let oopses = (opts.oops_count)() - oopses0;
        let result = match result {
            Ok(()) if oopses > 0 && !t.oopses => Err(alloc::format!("{oopses} oops(es) in a test not marked `oopses`")),
            Ok(()) if t.oopses && oopses == 0 => Err("it should have killed a thread by an oops, and none came".into()),
            other => other,
        };
        let expected = match (t.oopses, oopses) {
            (false, _) => String::new(),
            (true, 1) => " (1 expected oops)".into(),
            (true, n) => alloc::format!(" ({n} expected oopses)"),
        };
        // The verdict comes after the run, so whatever the test printed
        // (demos do) never splits the verdict line.
        match result {
            Ok(()) => {
                crate::println!("ktest {} ... ok{expected}", t.name);
                passed += 1;
            }
            Err(why) => {
                crate::println!("ktest {} ... FAILED: {why}", t.name);
                failed += 1;
            }
        }
    }
    crate::println!("{passed} passed, {failed} failed");
    (passed, failed)
}
